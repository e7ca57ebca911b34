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

This module is the connection loop and the hot path; the parts live beside it: ``session``
(client, security, trust), ``subscription`` (monitored items), ``discovery`` (browsing),
``writes`` (typed writes), ``tags`` (compiled tags), ``ua_nodes`` (node ids), ``refusals``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.object_ids import ObjectIds

from circman5.connectors.base import BaseConnector
from circman5.connectors.config_base import stale_timeout
from circman5.connectors.opcua.config import OpcUaConnectorSettings, OpcUaTag
from circman5.connectors.opcua.discovery import BrowseDiscovery
from circman5.connectors.opcua.expiry import CertificateExpiry
from circman5.connectors.opcua.refusals import (
    ADMIN_FIX_RETRY_S,
    USER_REJECTED,
    OpcUaRefused,
    check_local,
    diagnose,
    quiet_asyncua_logs,
)
from circman5.connectors.opcua.session import (
    CONNECTION_ERRORS,
    SessionLost,
    describe,
    disconnect,
    make_client,
)
from circman5.connectors.opcua.shares import share_of
from circman5.connectors.opcua.subscription import Notifications, create_subscription, monitor
from circman5.connectors.opcua.tags import CompiledTag, compile_tag, convert_auto
from circman5.connectors.opcua.ua_nodes import node_id
from circman5.connectors.opcua.writes import write_value
from circman5.errors import DeviceUnavailable, TagWriteError
from circman5.reporting import ProblemReporter
from circman5.retry import ReconnectPolicy, server_absent
from circman5.samples import Quality, Sample, SampleValue, make_sample

__all__ = ["OpcUaConnector", "SessionLost"]

logger = logging.getLogger(__name__)

CURRENT_TIME = ua.NodeId(ua.Int32(ObjectIds.Server_ServerStatus_CurrentTime))

_EXPIRY_CHECK_S = 3600.0  # how often a long session checks the certificates' expiry


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
        configured = [self._compile(tag) for tag in settings.tags]
        self._configured_paths = {tag.path for tag in configured}
        self._configured = [tag for tag in configured if self._owns(tag)]
        self._tags: list[CompiledTag] = list(self._configured)
        self._by_handle: dict[int, CompiledTag] = {}
        self._by_target: dict[str, CompiledTag] = {}
        self._index_targets(self._configured)
        self._client: Client | None = None
        self._subscription: Notifications | None = None
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._variant_types: dict[str, ua.VariantType] = {}
        self._ever_connected = False
        self._warned_accept_any = False
        self._expiry = CertificateExpiry(self._name, self._reporter, self._status.extra)
        self._discovery = BrowseDiscovery(
            settings, self._compile, self._problems, self._status, logger
        )
        self.sessions = 0
        self.reconnect_policy = ReconnectPolicy(
            settings.reconnect_initial_s, settings.reconnect_max_s, settings.reconnect_absent_s
        )

    # -- configuration --------------------------------------------------------------------
    def _compile(self, tag: OpcUaTag) -> CompiledTag:
        return compile_tag(tag, self.settings.namespace_uri)

    def _owns(self, tag: CompiledTag) -> bool:
        """Whether this process monitors ``tag`` (``share``: one worker's part of the tags)."""
        share = self.settings.share
        return share is None or share_of(tag.address, share[1]) == share[0]

    def _index_targets(self, tags: Iterable[CompiledTag]) -> None:
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
            except CONNECTION_ERRORS as err:
                logger.debug("opcua %s: session failed", self._name, exc_info=err)
                error = describe(err)
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
            refused = await diagnose(err, s, describe(err))
            if refused is not None:
                raise refused from err
            if isinstance(err, CONNECTION_ERRORS):
                raise
            raise SessionLost(describe(err)) from err
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
        self._status.extra["tags"] = len(self._by_handle)
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
        return await make_client(self.settings, self._connection_lost, self._accepting_any)

    def _accepting_any(self) -> None:
        if not self._warned_accept_any:
            self._warned_accept_any = True
            logger.warning(
                "opcua connector %s accepts any server certificate "
                "(accept_any_server_certificate = true)",
                self.settings.name,
            )

    async def _connection_lost(self, error: Exception) -> None:
        self._lost_reason = describe(error)
        self._lost.set()

    async def _teardown(self) -> None:
        client = self._client
        self._client = None
        self._subscription = None
        self._by_handle = {}
        if client is not None:
            await disconnect(client, self.settings.request_timeout_s, self._name)

    def _resolve(self, tags: Sequence[CompiledTag], indexes: dict[str, int]) -> None:
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
            tag.nodeid = node_id(node, index)
        for uri, paths in missing.items():
            self._problems.note(
                "UnknownNamespace",
                f"opcua {self._name}: the server has no namespace '{uri}' "
                f"({len(paths)} tag(s), e.g. {paths[0]})",
                {"namespace_uri": uri, "paths": paths[:20]},
            )
            self._mark_stale(paths, Quality.BAD)

    # -- subscription ---------------------------------------------------------------------
    async def _subscribe(self, client: Client, tags: Sequence[CompiledTag]) -> None:
        subscription = await create_subscription(client, self.settings, self._on_data)
        self._subscription = subscription
        handles: dict[int, CompiledTag] = {}
        self._by_handle = handles
        failed = await monitor(subscription, self.settings, tags, handles)
        if failed:
            self._problems.note(
                "MonitoredItemFailed",
                f"opcua {self._name}: {len(failed)} tag(s) could not be monitored, e.g. "
                f"{failed[0][0].address}: {failed[0][1]}",
                {"tags": [f"{tag.address}: {reason}" for tag, reason in failed[:20]]},
            )
            self._mark_stale([tag.path for tag, _ in failed], Quality.BAD)

    def _on_data(self, notifications: list[Any]) -> None:
        """One publish response: every data change becomes a sample of one batch."""
        handles = self._by_handle
        batch: list[Sample] = []
        append = batch.append
        name = self._name
        good = Quality.GOOD
        now_ns = time.time_ns()
        low, high = self.timestamp_window.bounds(now_ns)
        bad: list[tuple[CompiledTag, Quality]] = []
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
                        value = (convert or convert_auto)(value)
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
    async def _discover(self, client: Client, indexes: dict[str, int]) -> list[CompiledTag]:
        taken = set(self._configured_paths)  # every share's: a path is fed by one tag only
        found = [t for t in await self._discovery.discover(client, indexes, taken) if self._owns(t)]
        self._index_targets(found)
        return found

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
        node = client.get_node(tag.nodeid)
        await write_value(node, tag, value, self._variant_types, self._status, self._name)
