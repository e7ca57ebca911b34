"""The OPC UA connector: an asyncua client session with one subscription for all tags.

Per (re)connect the connector

1. opens the session (security policy/mode, client certificate, server trust by pinning or a
   trust list, user name and password);
2. reads the server's namespace array and resolves every ``nsu=<uri>;...`` address to the
   current index, so node ids survive a server restart that renumbers namespaces;
3. optionally browses for more tags (``[[connectors.discover]]``);
4. creates the subscription (publishing interval, keep-alive and lifetime counts) and its
   monitored items in batches of ``monitored_items_batch_size`` (per tag: sampling interval,
   queue size, deadband filter absolute or percent);
5. watches the connection: the server's ``CurrentTime`` (i=2258) is read every
   ``watchdog_interval_s``; a failed or late read, a dead subscription (no publish response for
   three keep-alive periods) or a status-change notification ends the session.

Then every tag is marked stale, the session is closed, and after a delay everything above runs
again from scratch: asyncua's own auto-reconnect is off, so a restarted server (which forgot every
subscription) is handled like any other. The delay (:class:`~circman5.connectors.base.
ReconnectPolicy`): ``reconnect_absent_s`` (with jitter) while no server answers (connection
refused, no route), so a returning server is found within about that; an exponential backoff
(``reconnect_initial_s`` doubling to ``reconnect_max_s``) when a live server refuses or times out
(too many sessions, a rejected login), so an overloaded server is not hammered. A security
refusal that waits for an administrator (our certificate not yet trusted, another server
certificate than the pinned one, a security mode not offered) is retried at least every
``ADMIN_FIX_RETRY_S`` (1.5 s), so values flow within seconds of the fix. Refusals are explained in
words (:mod:`circman5.connectors.opcua.refusals`), never logged as tracebacks.

Notifications bypass asyncua's per-item event objects: the subscription hands each publish
response's notification list to the connector, which turns it into one batch of samples with the
source timestamp and the status code as quality (Good, Uncertain, Bad).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import Subscription
from asyncua.crypto import security_policies
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from cryptography import x509

from circman5.connectors.base import BaseConnector
from circman5.connectors.config import (
    OpcUaConnectorSettings,
    OpcUaDiscovery,
    OpcUaTag,
    stale_timeout,
)
from circman5.connectors.mqtt.topics import is_path_part
from circman5.connectors.opcua.certificates import sha1_thumbprint
from circman5.connectors.opcua.expiry import CertificateExpiry
from circman5.connectors.opcua.nodeid import NodeAddress, parse_node_address
from circman5.connectors.opcua.refusals import (
    ADMIN_FIX_RETRY_S,
    SERVER_UNTRUSTED,
    USER_REJECTED,
    OpcUaRefused,
    check_local,
    diagnose,
    quiet_asyncua_logs,
)
from circman5.errors import DeviceUnavailable, TagWriteError
from circman5.reporting import ProblemReporter
from circman5.retry import ReconnectPolicy, server_absent
from circman5.samples import Quality, Sample, SampleValue, make_sample

logger = logging.getLogger(__name__)

CURRENT_TIME = ua.NodeId(ua.Int32(ObjectIds.Server_ServerStatus_CurrentTime))

_POLICIES: dict[str, Any] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
_MODES = {
    "Sign": ua.MessageSecurityMode.Sign,
    "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}
_KIND_TYPES = {
    "i": ua.NodeIdType.Numeric,
    "s": ua.NodeIdType.String,
    "g": ua.NodeIdType.Guid,
    "b": ua.NodeIdType.ByteString,
}
# DataType node ids (namespace 0) of the built-in scalar types -> variant type.
_DATA_TYPES: dict[int, ua.VariantType] = {
    1: ua.VariantType.Boolean,
    2: ua.VariantType.SByte,
    3: ua.VariantType.Byte,
    4: ua.VariantType.Int16,
    5: ua.VariantType.UInt16,
    6: ua.VariantType.Int32,
    7: ua.VariantType.UInt32,
    8: ua.VariantType.Int64,
    9: ua.VariantType.UInt64,
    10: ua.VariantType.Float,
    11: ua.VariantType.Double,
    12: ua.VariantType.String,
}
_INT_TYPES = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}
_FILTER_UNSUPPORTED = {
    StatusCodes.BadMonitoredItemFilterUnsupported,
    StatusCodes.BadFilterNotAllowed,
    StatusCodes.BadMonitoredItemFilterInvalid,
    StatusCodes.BadDeadbandFilterInvalid,
}


_EXPIRY_CHECK_S = 3600.0  # how often a long session checks the certificates' expiry


class SessionLost(Exception):
    """The session ended; the connector reconnects."""


# Library exceptions that mean "the server or the network is gone".
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    ConnectionError,
    UaError,
    SessionLost,
    EOFError,
)


@dataclass(slots=True)
class _Tag:
    """A tag compiled for the hot path."""

    path: str
    address: str
    node: NodeAddress
    settings: OpcUaTag
    convert: Callable[[object], SampleValue] | None
    scaled: bool
    nodeid: ua.NodeId | None = None


def _auto(value: object) -> SampleValue:
    kind = type(value)
    if kind is float or kind is int or kind is bool or kind is str:
        return value  # type: ignore[return-value]
    raise ValueError(f"unsupported value type {kind.__name__}")


def _to_float(value: object) -> SampleValue:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _to_int(value: object) -> SampleValue:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


def _to_bool(value: object) -> SampleValue:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    raise ValueError(f"expected a boolean, got {type(value).__name__}")


def _to_str(value: object) -> SampleValue:
    if hasattr(value, "Text"):  # LocalizedText
        return str(value.Text or "")
    return str(value)


_CONVERTERS: dict[str, Callable[[object], SampleValue]] = {
    "auto": _auto,
    "float": _to_float,
    "int": _to_int,
    "bool": _to_bool,
    "str": _to_str,
}


def _snake(name: str) -> str:
    text = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    text = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower()
    if not text or text[0].isdigit():
        text = "n" + text
    return text


def _compile_glob(pattern: str) -> list[re.Pattern[str] | None]:
    """Per pattern level a regex with one group per ``*``; None for ``**``."""
    levels: list[re.Pattern[str] | None] = []
    for level in pattern.strip("/").split("/"):
        if level == "**":
            levels.append(None)
            continue
        regex = "".join("(.*)" if ch == "*" else re.escape(ch) for ch in level)
        levels.append(re.compile(f"^{regex}$"))
    return levels


def _match_levels(
    levels: Sequence[re.Pattern[str] | None], names: Sequence[str]
) -> tuple[bool, bool, tuple[str, ...]]:
    """(full match, prefix could still match deeper, captures) of browse ``names``."""
    captures: list[str] = []
    for index, name in enumerate(names):
        if index >= len(levels):
            return False, False, ()
        level = levels[index]
        if level is None:
            # '**': match anything from here (captures only come from '*').
            rest = levels[index + 1 :]
            for skip in range(len(names) - index + 1):
                full, _, more = _match_levels(rest, names[index + skip :])
                if full:
                    return True, True, (*captures, *more)
            return False, True, ()
        match = level.match(name)
        if match is None:
            return False, False, ()
        captures.extend(match.groups())
    full = len(names) == len(levels) or (len(levels) == len(names) + 1 and levels[-1] is None)
    return full, True, tuple(captures)


class _NoHandler:
    """Handler mode without handler calls (publish_callback is replaced below)."""

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        return None


_NO_HANDLER = _NoHandler()


class _Notifications(Subscription):
    """A subscription that passes each publish response straight to a callback."""

    def __init__(
        self,
        session: Any,
        params: ua.CreateSubscriptionParameters,
        on_data: Callable[[list[Any]], None],
    ) -> None:
        super().__init__(session, params, handler=_NO_HANDLER)
        self._on_data = on_data

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        self.last_publish_at = time.monotonic()
        message = publish_result.NotificationMessage
        data = message.NotificationData
        if data:
            self.last_sequence_number = int(message.SequenceNumber)
            self._on_data(data)


class _TrustList:
    """Trusts a server certificate that is in ``directory`` (DER or PEM) or signed by a CA there."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _load(self) -> list[x509.Certificate]:
        certificates: list[x509.Certificate] = []
        if not self.directory.is_dir():
            return certificates
        for path in sorted(self.directory.iterdir()):
            if not path.is_file():
                continue
            data = path.read_bytes()
            with contextlib.suppress(ValueError):
                if b"-----BEGIN CERTIFICATE-----" in data:
                    certificates.extend(x509.load_pem_x509_certificates(data))
                else:
                    certificates.append(x509.load_der_x509_certificate(data))
        return certificates

    async def __call__(self, certificate: x509.Certificate, _description: Any) -> None:
        trusted = await asyncio.to_thread(self._load)
        for candidate in trusted:
            if candidate == certificate:
                return
        for candidate in trusted:
            if candidate.subject != certificate.issuer:
                continue
            with contextlib.suppress(Exception):
                certificate.verify_directly_issued_by(candidate)
                return
        raise OpcUaRefused(
            SERVER_UNTRUSTED,
            f"server certificate untrusted (BadCertificateUntrusted): "
            f"{certificate.subject.rfc4514_string()} (SHA-1 {sha1_thumbprint(certificate)}) is "
            f"neither in the trust list {self.directory} nor issued by a CA there; check it "
            "and store it with 'circman5 opcua trust'",
        )


class OpcUaConnector(BaseConnector):
    """Subscribes to the configured (and discovered) nodes of one OPC UA server."""

    protocol = "opcua"

    def __init__(
        self, settings: OpcUaConnectorSettings, reporter: ProblemReporter | None = None
    ) -> None:
        super().__init__(
            settings.name, reporter, max_buffered_samples=settings.max_buffered_samples
        )
        self.settings = settings
        self._configure_timestamp_window(
            settings.timestamp_max_age_s, settings.timestamp_max_future_s
        )
        self._configured = [self._compile(tag) for tag in settings.tags]
        self._tags: list[_Tag] = list(self._configured)
        self._by_handle: dict[int, _Tag] = {}
        self._by_target: dict[str, _Tag] = {}
        self._index_targets(self._configured)
        self._client: Client | None = None
        self._subscription: _Notifications | None = None
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._variant_types: dict[str, ua.VariantType] = {}
        self._ever_connected = False
        self._warned_accept_any = False
        self._expiry = CertificateExpiry(self._name, self._reporter, self._status.extra)
        self.sessions = 0
        self.reconnect_policy = ReconnectPolicy(
            settings.reconnect_initial_s, settings.reconnect_max_s, settings.reconnect_absent_s
        )

    # -- configuration --------------------------------------------------------------------
    def _compile(self, tag: OpcUaTag) -> _Tag:
        node = parse_node_address(tag.address, self.settings.namespace_uri)
        scaled = tag.scale != 1.0 or tag.offset != 0.0
        convert = None if tag.data_type == "auto" and not scaled else _CONVERTERS[tag.data_type]
        return _Tag(tag.path, str(node), node, tag, convert, scaled)

    def _index_targets(self, tags: Iterable[_Tag]) -> None:
        for tag in tags:
            self._by_target.setdefault(tag.path, tag)
            self._by_target.setdefault(tag.settings.address, tag)
            self._by_target.setdefault(tag.address, tag)

    def paths(self) -> list[str]:
        return [tag.path for tag in self._configured]

    def stale_after(self, path: str) -> float | None:
        tag = self._by_target.get(path)
        if tag is not None and tag.settings.stale_timeout_s is not None:
            return stale_timeout(tag.settings)
        # Subscriptions report changes only: silence is normal. The watchdog and the status
        # codes mark tags stale when the server is gone.
        return math.inf

    # -- the connection loop --------------------------------------------------------------
    async def _run(self) -> None:
        policy = self.reconnect_policy
        quiet_asyncua_logs()
        while True:
            error: str
            absent = False
            cap = math.inf
            try:
                await self._session(policy)
                error = "session ended"
            except OpcUaRefused as err:
                error = err.reason
                self._status.extra["refusal"] = err.kind
                if err.kind != USER_REJECTED:
                    # waits for an administrator (trust, certificate, mode): retry often enough
                    # that the session is up within seconds of the fix
                    cap = ADMIN_FIX_RETRY_S
            except _CONNECTION_ERRORS as err:
                logger.debug("opcua %s: session failed", self._name, exc_info=err)
                error = _describe(err)
                absent = server_absent(err)
            finally:
                await self._teardown()
            self._set_connected(False, error)
            self._mark_stale()
            await asyncio.sleep(min(policy.next_delay(absent), cap))

    async def _session(self, policy: ReconnectPolicy) -> None:
        s = self.settings
        self._status.extra.pop("refusal", None)
        try:
            await asyncio.to_thread(self._check_certificates)
            client = await self._make_client()
            self._client = client
            self._lost.clear()
            await client.connect()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # asyncua shows refusals as status codes, AssertionError, ...
            logger.debug("opcua %s: connection attempt failed", self._name, exc_info=err)
            refused = await diagnose(err, s, _describe(err))
            if refused is not None:
                raise refused from err
            if isinstance(err, _CONNECTION_ERRORS):
                raise
            raise SessionLost(_describe(err)) from err
        self.sessions += 1
        namespaces = await client.get_namespace_array()
        indexes = {uri: index for index, uri in enumerate(namespaces)}
        tags = list(self._configured)
        if s.discover:
            tags += await self._discover(client, indexes)
        self._resolve(tags, indexes)
        self._tags = tags
        self._variant_types.clear()
        await self._subscribe(client, [t for t in tags if t.nodeid is not None])
        if self._ever_connected:
            self._status.reconnects += 1
        self._ever_connected = True
        self._set_connected(True, None)
        policy.reset()
        await self._watch(client)

    def _check_certificates(self) -> None:
        """Refuse early what the server would refuse; note certificates about to expire."""
        self._expiry.check(self.settings.security)
        check_local(self.settings)

    async def _make_client(self) -> Client:
        s = self.settings
        # asyncua's own liveness probe times out after min(session timeout / 2, its interval):
        # keep it lenient, the connector's watchdog (watchdog_timeout_s) is the one that decides.
        client = Client(
            s.url,
            timeout=s.request_timeout_s,
            watchdog_intervall=2 * max(s.watchdog_timeout_s, s.watchdog_interval_s),
        )
        client.session_timeout = int(s.session_timeout_s * 1000)
        client.name = client.description = f"circman5 {s.name}"
        client.application_uri = s.security.application_uri
        if s.username is not None and s.password is not None:
            client.set_user(s.username)
            client.set_password(s.password.get_secret_value())
        security = s.security
        if security.policy != "None":
            assert security.certificate is not None and security.private_key is not None
            server_certificate = None
            if security.server_certificate is not None:
                server_certificate = str(security.server_certificate)
            elif security.trust_dir is not None:
                client.certificate_validator = _TrustList(security.trust_dir)
            elif not self._warned_accept_any:
                self._warned_accept_any = True
                logger.warning(
                    "opcua connector %s accepts any server certificate "
                    "(accept_any_server_certificate = true)",
                    s.name,
                )
            password = (
                security.private_key_password.get_secret_value()
                if security.private_key_password
                else None
            )
            await client.set_security(
                _POLICIES[security.policy],
                str(security.certificate),
                str(security.private_key),
                private_key_password=password,
                server_certificate=server_certificate,
                mode=_MODES[security.mode],
            )
        client.connection_lost_callback = self._connection_lost
        return client

    async def _connection_lost(self, error: Exception) -> None:
        self._lost_reason = _describe(error)
        self._lost.set()

    async def _teardown(self) -> None:
        client = self._client
        self._client = None
        self._subscription = None
        self._by_handle = {}
        if client is None:
            return
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                await client.disconnect()
        except Exception as err:  # the server may be gone: close what is left, quietly
            logger.debug("opcua %s: disconnect: %r", self._name, err)
            with contextlib.suppress(Exception):
                client.disconnect_socket()

    def _resolve(self, tags: Sequence[_Tag], indexes: dict[str, int]) -> None:
        missing: dict[str, list[str]] = {}
        for tag in tags:
            node = tag.node
            if node.namespace_uri is None:
                index = 0
            else:
                found = indexes.get(node.namespace_uri)
                if found is None:
                    missing.setdefault(node.namespace_uri, []).append(tag.path)
                    tag.nodeid = None
                    continue
                index = found
            tag.nodeid = _node_id(node, index)
        for uri, paths in missing.items():
            self._problems.note(
                "UnknownNamespace",
                f"opcua {self._name}: the server has no namespace '{uri}' "
                f"({len(paths)} tag(s), e.g. {paths[0]})",
                {"namespace_uri": uri, "paths": paths[:20]},
            )
            self._mark_stale(paths, Quality.BAD)

    # -- subscription ---------------------------------------------------------------------
    async def _subscribe(self, client: Client, tags: Sequence[_Tag]) -> None:
        s = self.settings
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = s.publishing_interval_ms
        params.RequestedLifetimeCount = s.lifetime_count
        params.RequestedMaxKeepAliveCount = s.keepalive_count
        params.MaxNotificationsPerPublish = s.max_notifications_per_publish
        params.PublishingEnabled = True
        params.Priority = 0
        subscription = _Notifications(client.uaclient.session, params, self._on_data)
        await subscription.init()
        self._subscription = subscription
        handles: dict[int, _Tag] = {}
        self._by_handle = handles
        failed: list[tuple[_Tag, str]] = []
        size = s.monitored_items_batch_size
        handle = 1
        for start in range(0, len(tags), size):
            chunk = tags[start : start + size]
            requests = []
            for tag in chunk:
                handles[handle] = tag
                requests.append(self._item_request(tag, handle, with_filter=True))
                handle += 1
            results = await subscription.create_monitored_items(requests)
            retry: list[ua.MonitoredItemCreateRequest] = []
            for request, result in zip(requests, results, strict=True):
                if not isinstance(result, ua.StatusCode):
                    continue
                tag = handles[request.RequestedParameters.ClientHandle]
                if result.value in _FILTER_UNSUPPORTED:
                    # The server cannot filter: subscribe without the deadband.
                    retry.append(
                        self._item_request(
                            tag, request.RequestedParameters.ClientHandle, with_filter=False
                        )
                    )
                    continue
                failed.append((tag, result.name))
                del handles[request.RequestedParameters.ClientHandle]
            if retry:
                for request, result in zip(
                    retry, await subscription.create_monitored_items(retry), strict=True
                ):
                    if isinstance(result, ua.StatusCode):
                        tag = handles.pop(request.RequestedParameters.ClientHandle)
                        failed.append((tag, result.name))
        if failed:
            self._problems.note(
                "MonitoredItemFailed",
                f"opcua {self._name}: {len(failed)} tag(s) could not be monitored, e.g. "
                f"{failed[0][0].address}: {failed[0][1]}",
                {"tags": [f"{tag.address}: {reason}" for tag, reason in failed[:20]]},
            )
            self._mark_stale([tag.path for tag, _ in failed], Quality.BAD)

    def _item_request(
        self, tag: _Tag, handle: int, with_filter: bool
    ) -> ua.MonitoredItemCreateRequest:
        s = self.settings
        t = tag.settings
        read = ua.ReadValueId()
        read.NodeId = tag.nodeid
        read.AttributeId = AttributeIds.Value
        params = ua.MonitoringParameters()
        params.ClientHandle = handle
        params.SamplingInterval = (
            t.sampling_interval_ms if t.sampling_interval_ms is not None else s.sampling_interval_ms
        )
        params.QueueSize = t.queue_size if t.queue_size is not None else s.queue_size
        params.DiscardOldest = True
        if with_filter and t.deadband > 0:
            data_filter = ua.DataChangeFilter()
            data_filter.Trigger = ua.DataChangeTrigger.StatusValue
            if t.deadband_type == "percent":
                data_filter.DeadbandType = ua.DeadbandType.Percent
                data_filter.DeadbandValue = t.deadband
            else:
                data_filter.DeadbandType = ua.DeadbandType.Absolute
                data_filter.DeadbandValue = t.deadband / abs(t.scale)
            params.Filter = data_filter
        request = ua.MonitoredItemCreateRequest()
        request.ItemToMonitor = read
        request.MonitoringMode = ua.MonitoringMode.Reporting
        request.RequestedParameters = params
        return request

    def _on_data(self, notifications: list[Any]) -> None:
        """One publish response: every data change becomes a sample of one batch."""
        handles = self._by_handle
        batch: list[Sample] = []
        append = batch.append
        name = self._name
        good = Quality.GOOD
        now_ns = time.time_ns()
        low, high = self.timestamp_window.bounds(now_ns)
        bad: list[tuple[_Tag, Quality]] = []
        for notification in notifications:
            items = getattr(notification, "MonitoredItems", None)
            if items is None:
                if isinstance(notification, ua.StatusChangeNotification):
                    status = notification.Status
                    if status is not None and not status.is_good():
                        self._lost_reason = f"subscription status {status.name}"
                        self._lost.set()
                continue
            for item in items:
                tag = handles.get(item.ClientHandle)
                if tag is None:
                    continue
                data = item.Value
                variant = data.Value
                value = variant.Value if variant is not None else None
                status = data.StatusCode
                code = status.value if status is not None else 0
                if code:
                    severity = code >> 30
                    quality = Quality.UNCERTAIN if severity == 1 else Quality.BAD
                    if quality is Quality.BAD or value is None:
                        bad.append((tag, Quality.BAD))
                        continue
                else:
                    quality = good
                convert = tag.convert
                if convert is not None or type(value) is not float:
                    try:
                        value = (convert or _auto)(value)
                        if tag.scaled:
                            value = float(value) * tag.settings.scale + tag.settings.offset
                    except (ValueError, TypeError) as err:
                        self._malformed(tag.address, str(err), value)
                        continue
                if type(value) is float and value - value != 0.0:
                    bad.append((tag, Quality.BAD))  # NaN or infinity from the device
                    continue
                stamp = data.SourceTimestamp or data.ServerTimestamp
                if stamp is not None:
                    timestamp_ns = int(stamp.timestamp() * 1e9)
                    if not low <= timestamp_ns <= high:
                        replaced = self._timestamp_outside(
                            tag.address,
                            tag.path,
                            timestamp_ns,
                            now_ns,
                            tag.settings.timestamp_outside_window,
                        )
                        if replaced is None:
                            continue
                        timestamp_ns = replaced
                else:
                    timestamp_ns = now_ns
                append(make_sample(name, tag.address, tag.path, value, timestamp_ns, quality))
        self._emit(batch)
        for tag, quality in bad:
            self._mark_stale([tag.path], quality)

    async def _watch(self, client: Client) -> None:
        """Return (raise) when the session is lost; otherwise keep checking its liveness."""
        s = self.settings
        node = client.get_node(CURRENT_TIME)
        keepalive_s = s.publishing_interval_ms / 1000.0 * s.keepalive_count
        expiry_checked = time.monotonic()
        while True:
            if time.monotonic() - expiry_checked > _EXPIRY_CHECK_S:
                expiry_checked = time.monotonic()
                await asyncio.to_thread(self._expiry.check, s.security)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(s.watchdog_interval_s):
                    await self._lost.wait()
            if self._lost.is_set():
                raise SessionLost(self._lost_reason or "connection lost")
            try:
                async with asyncio.timeout(s.watchdog_timeout_s):
                    await node.read_value()
            except TimeoutError as err:
                raise SessionLost(
                    f"watchdog: CurrentTime not answered within {s.watchdog_timeout_s} s"
                ) from err
            subscription = self._subscription
            if subscription is not None and subscription.last_publish_at is not None:
                silent = time.monotonic() - subscription.last_publish_at
                if silent > max(3 * keepalive_s, 3 * s.watchdog_interval_s, 2.0):
                    raise SessionLost(f"subscription silent for {silent:.1f} s")

    # -- discovery ------------------------------------------------------------------------
    async def _discover(self, client: Client, indexes: dict[str, int]) -> list[_Tag]:
        found: list[_Tag] = []
        taken = {tag.path for tag in self._configured}
        for rule in self.settings.discover:
            try:
                found += await self._browse(client, rule, indexes, taken)
            except UaStatusCodeError as err:
                self._problems.note(
                    "DiscoveryFailed",
                    f"opcua {self._name}: browsing {rule.root} failed: {err}",
                    {"root": rule.root},
                )
        self._index_targets(found)
        return found

    async def _browse(
        self, client: Client, rule: OpcUaDiscovery, indexes: dict[str, int], taken: set[str]
    ) -> list[_Tag]:
        root = parse_node_address(rule.root, self.settings.namespace_uri)
        if root.namespace_uri is not None and root.namespace_uri not in indexes:
            raise UaStatusCodeError(StatusCodes.BadNodeIdUnknown)  # type: ignore[no-untyped-call]
        root_id = _node_id(root, 0 if root.namespace_uri is None else indexes[root.namespace_uri])
        namespaces = {index: uri for uri, index in indexes.items()}
        levels = _compile_glob(rule.pattern)
        found: list[_Tag] = []
        frontier: list[tuple[ua.NodeId, tuple[str, ...]]] = [(root_id, ())]
        depth = 0
        while frontier and depth < rule.max_depth and len(found) < rule.max_nodes:
            depth += 1
            nodes = [client.get_node(node_id) for node_id, _ in frontier]
            results = await client.browse_nodes(nodes)
            next_frontier: list[tuple[ua.NodeId, tuple[str, ...]]] = []
            for (_, names), (_, result) in zip(frontier, results, strict=True):
                for ref in result.References or []:
                    if not ref.IsForward:
                        continue
                    child_names = (*names, ref.BrowseName.Name)
                    full, deeper, captures = _match_levels(levels, child_names)
                    if ref.NodeClass == ua.NodeClass.Variable and full:
                        tag = self._discovered(rule, ref, namespaces, captures, taken)
                        if tag is not None:
                            found.append(tag)
                    if deeper and ref.NodeClass in (ua.NodeClass.Object, ua.NodeClass.Variable):
                        child = ua.NodeId(
                            ref.NodeId.Identifier, ref.NodeId.NamespaceIndex, ref.NodeId.NodeIdType
                        )
                        next_frontier.append((child, child_names))
            frontier = next_frontier
        return found[: rule.max_nodes]

    def _discovered(
        self,
        rule: OpcUaDiscovery,
        ref: Any,
        namespaces: dict[int, str],
        captures: tuple[str, ...],
        taken: set[str],
    ) -> _Tag | None:
        name = ref.BrowseName.Name
        values = {"name": _snake(name)}
        for number, capture in enumerate(captures, start=1):
            values[str(number)] = _snake(capture)
        path = re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), rule.path)
        if not all(is_path_part(part) for part in path.split(".")):
            self._malformed(str(ref.NodeId), f"discovered path '{path}' is not a twin path")
            return None
        if path in taken:
            self._problems.note(
                "DuplicatePath",
                f"opcua {self._name}: discovered node {ref.NodeId} maps to '{path}', "
                "which another tag already feeds; skipped",
                {"path": path},
            )
            return None
        taken.add(path)
        node_id = ref.NodeId
        uri = namespaces.get(node_id.NamespaceIndex)
        kind = {
            ua.NodeIdType.Numeric: "i",
            ua.NodeIdType.TwoByte: "i",
            ua.NodeIdType.FourByte: "i",
            ua.NodeIdType.String: "s",
            ua.NodeIdType.Guid: "g",
            ua.NodeIdType.ByteString: "b",
        }.get(node_id.NodeIdType, "s")
        identifier = node_id.Identifier
        address = NodeAddress(
            None if node_id.NamespaceIndex == 0 else uri,
            kind,  # type: ignore[arg-type]
            identifier if isinstance(identifier, int) else str(identifier),
        )
        settings = OpcUaTag(
            address=str(address),
            path=path,
            data_type=rule.data_type,
            scale=rule.scale,
            offset=rule.offset,
            unit=rule.unit,
            deadband=rule.deadband,
            deadband_type=rule.deadband_type,
            sampling_interval_ms=rule.sampling_interval_ms,
            queue_size=rule.queue_size,
            stale_timeout_s=rule.stale_timeout_s,
            writable=rule.writable,
            timestamp_outside_window=rule.timestamp_outside_window,
        )
        return self._compile(settings)

    # -- writes ---------------------------------------------------------------------------
    async def write(self, target: str, value: SampleValue) -> None:
        """Write ``value`` (engineering units) to a writable tag, coerced to the node's type."""
        tag = self._by_target.get(target)
        if tag is None:
            raise TagWriteError(f"opcua {self._name}: no tag '{target}'")
        if not tag.settings.writable:
            raise TagWriteError(f"opcua {self._name}: tag '{target}' is not writable")
        client = self._client
        if client is None or not self._status.connected or tag.nodeid is None:
            raise DeviceUnavailable(f"opcua {self._name}: not connected")
        raw: object = value
        if tag.scaled and not isinstance(value, bool | str):
            raw = (float(value) - tag.settings.offset) / tag.settings.scale
        node = client.get_node(tag.nodeid)
        try:
            variant_type = self._variant_types.get(tag.address)
            if variant_type is None:
                data_type = await node.read_data_type()
                variant_type = _variant_type(data_type)
                self._variant_types[tag.address] = variant_type
            variant = ua.Variant(_coerce(raw, variant_type), variant_type)
            await node.write_attribute(AttributeIds.Value, ua.DataValue(variant))
        except ValueError as err:
            self._status.write_errors += 1
            raise TagWriteError(f"opcua {self._name}: {tag.path} = {value!r}: {err}") from err
        except UaStatusCodeError as err:
            self._status.write_errors += 1
            raise TagWriteError(
                f"opcua {self._name}: writing {tag.path} = {value!r} refused: {_describe(err)}"
            ) from err
        except (OSError, TimeoutError, ConnectionError, UaError) as err:
            self._status.write_errors += 1
            raise DeviceUnavailable(f"opcua {self._name}: write failed: {_describe(err)}") from err
        self._status.writes += 1


def _node_id(node: NodeAddress, index: int) -> ua.NodeId:
    identifier: Any = node.identifier
    if node.kind == "g":
        identifier = uuid.UUID(str(identifier))
    elif node.kind == "b":
        identifier = base64.b64decode(str(identifier))
    return ua.NodeId(identifier, ua.Int16(index), _KIND_TYPES[node.kind])


def _variant_type(data_type: ua.NodeId) -> ua.VariantType:
    if data_type.NamespaceIndex == 0 and isinstance(data_type.Identifier, int):
        found = _DATA_TYPES.get(data_type.Identifier)
        if found is not None:
            return found
    raise ValueError(f"cannot write to a node of data type {data_type}")


def _coerce(value: object, variant_type: ua.VariantType) -> object:
    """``value`` as the Python type asyncua expects for ``variant_type`` (ValueError if not)."""
    if variant_type == ua.VariantType.Boolean:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
        raise ValueError(f"{value!r} is not a boolean")
    if variant_type == ua.VariantType.String:
        return str(value)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    if variant_type in (ua.VariantType.Float, ua.VariantType.Double):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return float(value)
    low, high = _INT_TYPES[variant_type]
    if isinstance(value, float):
        if not value.is_integer():
            value = round(value)
        value = int(value)
    if not low <= value <= high:
        raise ValueError(f"{value} is outside the {variant_type.name} range [{low}, {high}]")
    return value


def _describe(err: BaseException) -> str:
    if isinstance(err, UaStatusCodeError):
        with contextlib.suppress(Exception):
            return ua.StatusCode(err.code).name
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
