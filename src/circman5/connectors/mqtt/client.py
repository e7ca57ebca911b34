"""The MQTT connector: paho-mqtt 2.x (``CallbackAPIVersion.VERSION2``) behind the contract.

paho's network thread does the socket work of a session (the client and its session state come
from the shared :class:`~circman5.mqtt_link.BrokerLink`, as for every MQTT user); after the
CONNACK it calls :meth:`MqttConnector._session_started`, where every topic filter is subscribed
again (a persistent session usually still has them; re-subscribing is cheap and covers a broker
that lost its state); the connector counts as connected once the broker acknowledged the
subscriptions. Reconnecting is the connector's (see :meth:`MqttConnector._run`): every
``reconnect_absent_s`` while the broker is absent, exponential backoff between
``reconnect_initial_s`` and ``reconnect_max_s`` while it refuses the connection.

Messages are handed to the event loop in bursts: paho's thread reads the socket in blocks
(:mod:`.receive`), appends each block's messages as one list to a deque and, if no drain is
scheduled yet, schedules one with ``loop.call_soon_threadsafe``; the drain on the loop decodes
everything waiting into one batch.

Decoding per tag: the topic is matched against the tag's filter (cached per topic); the payload
is either a plain number / text (no ``field``) or JSON (``orjson``) with the value at the dotted
``field``. Bad input (invalid UTF-8 topic or JSON, missing field, wrong type, NaN/infinity,
oversized payload) is counted in ``status.malformed`` and reported rate-limited as a
``MalformedInput`` problem; the message is dropped and ingestion goes on.

Why this module is long: one connector class whose connection loop, paho callbacks, inlined hot
decode path, topic resolution and writes share its compiled routes, caches and inbox; split, each
part would reach into the others' state on the per-message path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from circman5.connectors.broker_session import BrokerSessionConnector
from circman5.connectors.config_base import stale_timeout
from circman5.connectors.deadband import Deadband
from circman5.connectors.mqtt.acks import InOrderAcks
from circman5.connectors.mqtt.config import MqttConnectorSettings, MqttTag
from circman5.connectors.mqtt.paho_properties import install as install_shared_table_properties
from circman5.connectors.mqtt.receive import DirectReceiveClient, Message
from circman5.connectors.mqtt.topics import TopicPattern, extract_field
from circman5.connectors.status import ConnectorStatus
from circman5.errors import DeviceUnavailable, TagWriteError
from circman5.errors import MalformedPayload as _Malformed
from circman5.mqtt_link import BrokerLink, LinkSettings, describe_error
from circman5.reporting import ProblemReporter
from circman5.retry import ReconnectPolicy, server_absent
from circman5.samples import Quality, Sample, SampleBatch, SampleValue, make_sample

logger = logging.getLogger(__name__)

_TOPIC_CACHE_LIMIT = 100_000
_DISCONNECT_TIMEOUT_S = 2.0
#: Unsubscribed from (never subscribed) on a clean stop: its UNSUBACK says the broker has
#: processed every acknowledgement sent before it.
_ACK_BARRIER_TOPIC = "$circman5/ack-barrier"


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_TRUE = frozenset({"1", "true", "on", "yes"})
_FALSE = frozenset({"0", "false", "off", "no"})


_MISSING: Any = object()


def _to_float(value: object) -> float:
    if type(value) is float:
        if value - value != 0.0:  # NaN or infinity (orjson never yields them; be safe)
            raise _Malformed(f"not a finite number: {value!r}")
        return value
    if type(value) is int:
        return float(value)
    raise _Malformed(f"expected a number, got {type(value).__name__} {_short(value)}")


def _to_int(value: object) -> int:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise _Malformed(f"expected an integer, got {type(value).__name__} {_short(value)}")


def _to_bool(value: object) -> bool:
    if type(value) is bool:
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _Malformed(f"expected a boolean, got {type(value).__name__} {_short(value)}")


def _to_str(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    raise _Malformed(f"expected a scalar, got {type(value).__name__}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


_NO_TIMESTAMP = object()  # the payload lacks its timestamp field


def _epoch_ns(value: object) -> int:
    """A payload timestamp (Unix s/ms/us/ns by magnitude, or ISO 8601) in ns."""
    if isinstance(value, bool):
        raise _Malformed("timestamp is a boolean")
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number) or number < 0:
            raise _Malformed(f"invalid timestamp {value!r}")
        if number < 1e11:
            return int(number * 1e9)
        if number < 1e14:
            return int(number * 1e6)
        if number < 1e17:
            return int(number * 1e3)
        return int(number)
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value).timestamp() * 1e9)
        except ValueError as err:
            raise _Malformed(f"invalid timestamp {value!r}") from err
    raise _Malformed(f"invalid timestamp {_short(value)}")


_CONVERTERS: dict[str, Callable[[object], SampleValue]] = {
    "float": _to_float,
    "int": _to_int,
    "bool": _to_bool,
    "str": _to_str,
}


@dataclass(slots=True)
class _Route:
    """One tag, compiled for the hot path."""

    tag: MqttTag
    pattern: TopicPattern
    field: tuple[str, ...] | None
    ts_field: tuple[str, ...] | None
    convert: Callable[[object], SampleValue]
    numeric: bool
    scaled: bool
    deadband: Deadband | None
    fast_key: str | None

    def value_of(self, payload: bytes | bytearray, document: object) -> SampleValue:
        """Decode ``payload`` (``document`` is the parsed JSON when a field is used)."""
        if self.field is None:
            if self.numeric:
                try:
                    number = float(payload)
                except ValueError:
                    raise _Malformed(f"not a number: {payload[:60]!r}") from None
                if number - number != 0.0:
                    raise _Malformed(f"not a finite number: {payload[:60]!r}")
                value: SampleValue = number
                if self.tag.data_type == "int":
                    value = _to_int(number)
            else:
                try:
                    text = payload.decode("utf-8").strip()
                except UnicodeDecodeError:
                    raise _Malformed("payload is not UTF-8 text") from None
                if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
                    text = text[1:-1]
                value = self.convert(text)
        else:
            try:
                raw = extract_field(document, self.field)
            except KeyError:
                raise _Malformed(f"field '{'.'.join(self.field)}' missing") from None
            value = self.convert(raw)
        if self.scaled:
            value = float(value) * self.tag.scale + self.tag.offset
        return value


@dataclass(frozen=True, slots=True)
class _Refusal:
    """Why a topic's messages are dropped: ``TopicRefused`` (its captures cannot make a twin
    path), ``MalformedInput`` (not UTF-8), or ``""`` (the wildcard path limit is reached)."""

    error_type: str
    reason: str


_CacheEntry = tuple[str | None, str, str, list[tuple[_Route, str]], _Refusal | None]
"""Per raw topic: fast-path JSON key, its twin path, the decoded topic, every matching route,
and why a matching topic cannot be used."""


class MqttConnector(BrokerSessionConnector):
    """Subscribes to the tags' topic filters and turns messages into samples."""

    protocol = "mqtt"

    def __init__(self, settings: MqttConnectorSettings, reporter: ProblemReporter | None = None):
        super().__init__(settings, reporter)
        self.settings = settings
        self._configure_timestamp_window(
            settings.timestamp_max_age_s, settings.timestamp_max_future_s
        )
        self._routes = [self._compile(tag) for tag in settings.tags]
        filters: dict[str, int] = {}
        for tag in settings.tags:
            qos = tag.qos if tag.qos is not None else settings.qos
            filters[tag.address] = max(qos, filters.get(tag.address, 0))
        self._filters = filters
        self._by_target: dict[str, MqttTag] = {}
        for tag in settings.tags:
            self._by_target.setdefault(tag.path, tag)
            self._by_target.setdefault(tag.address, tag)
        self._path_tags: dict[str, MqttTag] = {
            tag.path: tag for tag in settings.tags if "{" not in tag.path
        }
        self._closing = False
        self._cache: dict[bytes, _CacheEntry] = {}
        self._wildcard_paths: set[str] = set()
        self._limit_reported = False
        # One entry per block paho's thread read: ([(raw topic, payload, mid, qos), ...], the
        # block's receive time, link): plain tuples, so paho's messages are freed at once in its
        # thread (fewer objects for the garbage collector). ``link`` numbers the connection the
        # messages came on (for the acks). Messages waiting: ``_queued`` (counted by paho's
        # thread) minus ``_taken`` (counted by the loop): each counter has one writer.
        self._inbox: deque[tuple[list[Message], float, int]] = deque()
        self._queued = 0
        self._taken = 0
        self._manual_ack = settings.acknowledge == "durable"
        self._acks = InOrderAcks(self._send_ack, self._send_acks)
        self._link = 0
        self._client: paho.Client | None = None
        self.reconnect_policy = ReconnectPolicy(
            settings.reconnect_initial_s, settings.reconnect_max_s, settings.reconnect_absent_s
        )
        self._broker = BrokerLink(
            LinkSettings.of(
                settings,
                section=f"connectors.{settings.name}",
                reconnect_s=(settings.reconnect_initial_s, settings.reconnect_max_s),
                protocol=settings.protocol,
                clean_start=settings.clean_start,
                session_expiry_s=settings.session_expiry_s,
            ),
            what=f"mqtt connector {settings.name}",
            log=logger,
            announce=False,  # BaseConnector reports the connection state
            client_class=DirectReceiveClient,
            reconnect_on_failure=False,  # one reconnect policy: ours (see _run)
            manual_ack=self._manual_ack,
        )
        self._broker.on_session = self._session_started
        self._broker.on_session_end = self._session_ended
        self._broker.add_down_listener(self._link_down)
        self._session_over = asyncio.Event()
        self._attempt: asyncio.Future[MQTTErrorCode] | None = None
        self._session_up = False
        self._subscribe_mid: int | None = None
        self._barrier: asyncio.Future[None] | None = None
        self._barrier_mid: int | None = None

    # -- configuration --------------------------------------------------------------------
    @staticmethod
    def _compile(tag: MqttTag) -> _Route:
        field = tuple(tag.field.split(".")) if tag.field else None
        ts_field = tuple(tag.timestamp_field.split(".")) if tag.timestamp_field else None
        return _Route(
            tag=tag,
            pattern=TopicPattern(tag.address, tag.path),
            field=field,
            ts_field=ts_field,
            convert=_CONVERTERS[tag.data_type],
            numeric=tag.data_type in ("float", "int"),
            scaled=tag.data_type in ("float", "int") and (tag.scale != 1.0 or tag.offset != 0.0),
            deadband=Deadband(tag.deadband) if tag.deadband else None,
            fast_key=(
                field[0]
                if field is not None
                and len(field) == 1
                and ts_field is None
                and tag.data_type == "float"
                and tag.scale == 1.0
                and tag.offset == 0.0
                and not tag.deadband
                else None
            ),
        )

    def stale_after(self, path: str) -> float | None:
        tag = self._path_tags.get(path)
        return stale_timeout(tag) if tag is not None else None

    @property
    def status(self) -> ConnectorStatus:
        status = super().status
        if self._manual_ack:  # QoS 1/2 messages waiting for their samples to be committed
            status.extra["unacknowledged"] = self._acks.unacked
        return status

    # -- paho client ----------------------------------------------------------------------
    def _make_client(self) -> paho.Client:
        if self.settings.protocol == "5":
            install_shared_table_properties()
        client = self._broker.open()
        client.on_message = self._on_message  # MQTT 5, QoS 2, paho debug logging
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        if isinstance(client, DirectReceiveClient):
            client.on_publishes_received = self._on_publishes
        return client

    async def _run(self) -> None:
        """The connection loop: one attempt, a session, a delay, again.

        paho's own reconnect is off (``reconnect_on_failure=False``): each attempt is a blocking
        ``reconnect()`` in a worker thread (so its failure has a reason: connection refused, TLS
        error, ...), and a session is paho's network thread (``loop_start``), which ends when
        the connection does. The delay between attempts is the :class:`ReconnectPolicy`'s:
        short while the broker is absent, backoff when it refuses (CONNACK failure).
        """
        self._loop = asyncio.get_running_loop()
        client = self._make_client()
        self._client = client
        policy = self.reconnect_policy
        while True:
            self._session_over.clear()
            self._session_up = False
            attempt = self._loop.run_in_executor(None, client.reconnect)
            self._attempt = attempt
            try:
                # shielded: when the connector closes meanwhile, _close waits for the attempt
                await asyncio.shield(attempt)
            except (OSError, ValueError) as err:
                self._attempt = None
                self._connection_changed(False, f"cannot connect: {describe_error(err)}")
                await asyncio.sleep(policy.next_delay(server_absent(err)))
                continue
            self._attempt = None
            client.loop_start()
            await self._session_over.wait()
            await asyncio.to_thread(client.loop_stop)
            # a lost session is retried at the short interval (the broker most likely went away);
            # a refused one (CONNACK failure: login, quota, server unavailable) backs off
            await asyncio.sleep(policy.next_delay(not self._broker.refused))

    async def _close(self) -> None:
        client = self._client
        self._client = None
        if client is None:
            return
        self._closing = True
        attempt = self._attempt
        if attempt is not None:
            with contextlib.suppress(Exception):
                await attempt  # an attempt in flight: let it end (bounded by paho's timeout)
        session_up = self._session_up and not self._session_over.is_set()
        if session_up and self._manual_ack and self._acks.acked:
            await self._acks_processed(client)
        if client.disconnect() == MQTTErrorCode.MQTT_ERR_SUCCESS and session_up:
            # paho writes DISCONNECT after what is queued (the last PUBACKs) and then reports
            # the session over; stopping its thread before that would drop them unsent (and
            # the broker would deliver those messages again)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_DISCONNECT_TIMEOUT_S):
                    await self._session_over.wait()
        await asyncio.to_thread(client.loop_stop)
        self._drain()

    async def _acks_processed(self, client: paho.Client) -> None:
        """Wait until the broker has processed the PUBACKs sent so far (bounded).

        Writing them before DISCONNECT is not enough: a new session with our client id that
        reaches the broker before it read them (a restart within milliseconds) takes the session
        over, the broker drops the old connection unread and delivers those messages again. The
        broker answers the packets of one connection in order, so the UNSUBACK of a filter we
        never subscribed to (no side effect) comes only after the PUBACKs before it were
        processed."""
        loop = asyncio.get_running_loop()
        processed: asyncio.Future[None] = loop.create_future()
        self._barrier = processed
        result, self._barrier_mid = client.unsubscribe(_ACK_BARRIER_TOPIC)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_DISCONNECT_TIMEOUT_S):
                await processed

    def _on_unsubscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        barrier = self._barrier
        if barrier is not None and mid == self._barrier_mid:
            self._broker.call(_resolve, barrier)

    # -- network thread hooks and callbacks (the link catches what its hooks raise) --------
    def _session_started(self, client: paho.Client) -> None:
        """After a successful CONNACK: subscribe every filter again."""
        self._link += 1  # a new connection: message ids start over (see connectors.mqtt.acks)
        self._session_up = True
        self.reconnect_policy.reset()
        share = self.settings.subscription
        subscriptions = [(share(topic), qos) for topic, qos in self._filters.items()]
        if subscriptions:
            result, mid = client.subscribe(subscriptions)
            if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._broker.call(self._connection_changed, True, f"subscribe failed: {result}")
                return
            # connected once the broker acknowledged the subscriptions (_on_subscribe):
            # from then on a message published to a tag topic is delivered
            self._subscribe_mid = mid
            return
        self._broker.call(self._connection_changed, True, None)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [
            f"{topic} ({code})"
            for topic, code in zip(self._filters, reason_codes, strict=False)
            if code.is_failure
        ]
        error = f"subscribe refused: {', '.join(refused)}" if refused else None
        self._broker.call(self._connection_changed, True, error)

    def _session_ended(self, client: paho.Client) -> None:
        # after the link handed the reason over (_link_down): the connection loop goes on
        self._broker.call(self._session_over.set)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._on_publish(
            message._topic, message.payload, message.timestamp, message.mid, message.qos
        )

    def _on_publish(
        self, topic: bytes, payload: bytes | bytearray, received: float, mid: int, qos: int
    ) -> None:
        """One message, in paho's thread (MQTT 5, QoS 2, paho's debug logging)."""
        self._on_publishes([(topic, bytes(payload), mid, qos)], received)

    def _on_publishes(self, messages: list[Message], received: float) -> None:
        """The messages of one block, in paho's thread: into the inbox as they are (see
        ``_inbox``), one wake-up of the loop per burst."""
        room = self._inbox_limit - (self._queued - self._taken)
        if room < len(messages):
            kept = messages[: max(room, 0)]
            over = messages[len(kept) :]
            self._thread_dropped += len(over)
            if self._manual_ack:
                # dropped and counted, but still acknowledged in order: an empty topic marks it
                kept += [(b"", b"", mid, qos) for _, _, mid, qos in over if qos]
            if not kept:
                return
            messages = kept
        self._queued += len(messages)
        self._inbox.append((messages, received, self._link))
        self._wake_drain()

    # -- on the event loop -------------------------------------------------------------------
    def _connection_changed(self, connected: bool, error: str | None) -> None:
        if not self._closing:
            self._subscriptions_changed(connected, error)

    def _drain(self) -> None:
        self._scheduled = False
        inbox = self._inbox
        count = len(inbox)
        if not count:
            return
        popleft = inbox.popleft
        batch = SampleBatch()
        append = batch.append
        manual_ack = self._manual_ack
        acks = self._acks
        cache = self._cache
        name = self._name
        offset_s = time.time() - paho.time_func()
        limit = self.settings.max_payload_bytes
        good = Quality.GOOD
        loads = orjson.loads
        json_error = orjson.JSONDecodeError
        missing = _MISSING
        make = make_sample
        taken = 0
        for _ in range(count):
            messages, received, link = popleft()
            taken += len(messages)
            received_ns = int((received + offset_s) * 1e9)
            for raw_topic, payload, mid, qos in messages:
                if qos and manual_ack:
                    acks.received(mid, qos, link)
                    if not raw_topic:  # dropped in paho's thread (inbox full): acknowledge only
                        continue
                entry = cache.get(raw_topic)
                if entry is None:
                    entry = self._resolve(raw_topic)
                fast_key, path, topic, routes, problem = entry
                if not routes:
                    if problem is not None:
                        self._refuse(topic, problem)
                    continue
                if len(payload) > limit:
                    self._malformed(topic, f"payload of {len(payload)} bytes exceeds {limit}")
                    continue
                if fast_key is not None:
                    # The common case, inlined: a JSON object with a float at a top-level key.
                    try:
                        document = loads(payload)
                    except json_error as err:
                        self._malformed(topic, f"invalid JSON: {err}", payload)
                        continue
                    value = document.get(fast_key, missing) if type(document) is dict else missing
                    kind = type(value)
                    if kind is float:
                        if value - value == 0.0:
                            append(make(name, topic, path, value, received_ns, good))
                            continue
                    elif kind is int:
                        append(make(name, topic, path, float(value), received_ns, good))
                        continue
                self._decode(payload, topic, routes, received_ns, append)
        self._taken += taken
        if manual_ack:
            ack = acks.token()
            if ack is not None:
                if batch:
                    batch.acks.append(ack)  # fired once the batch is durable
                else:
                    ack()  # nothing to store: acknowledge in order
        self._emit(batch)

    def _timestamp_missing(self, topic: str, path: str, field: str) -> None:
        """A payload without its timestamp field: stored at the receive time, counted, reported."""
        self._status.timestamps_replaced += 1
        self._problems.note(
            "TimestampMissing",
            f"{topic} -> {path}: timestamp field '{field}' missing; the receive time is used",
            {"address": topic, "path": path, "field": field, "action": "receive time"},
            "warning",
        )

    def _send_acks(self, acks: list[tuple[int, int]]) -> None:
        """Several acknowledgements with one write (same conditions as :meth:`_send_ack`)."""
        client = self._client
        if client is None or not self._session_up or self._acks.link != self._link:
            return
        if isinstance(client, DirectReceiveClient):
            client.ack_many(acks)
        else:
            for mid, qos in acks:
                client.ack(mid, qos)

    def _send_ack(self, mid: int, qos: int) -> None:
        # only on the connection the message came on, and only while it is up: during a
        # reconnect (our loop, before the CONNACK) or on a newer connection the message id means
        # nothing; the broker delivers an unacknowledged message again (DUP) on the new session
        client = self._client
        if client is not None and self._session_up and self._acks.link == self._link:
            client.ack(mid, qos)

    def _decode(
        self,
        payload: bytes | bytearray,
        topic: str,
        routes: list[tuple[_Route, str]],
        received_ns: int,
        append: Callable[[Sample], None],
    ) -> None:
        """The general decoder: any field, type, timestamp, scaling and deadband."""
        document: object = None
        parsed = False
        window = self.timestamp_window
        for route, path in routes:
            try:
                if (route.field is not None or route.ts_field is not None) and not parsed:
                    try:
                        document = orjson.loads(payload)
                    except orjson.JSONDecodeError as err:
                        raise _Malformed(f"invalid JSON: {err}") from None
                    parsed = True
                value = route.value_of(payload, document)
                timestamp_ns = received_ns
                if route.ts_field is not None:
                    try:
                        stamp = extract_field(document, route.ts_field)
                    except KeyError:
                        # like a timestamp outside the window: the receive time, or rejected
                        if route.tag.timestamp_outside_window == "reject":
                            raise _Malformed(
                                f"timestamp field '{'.'.join(route.ts_field)}' missing"
                            ) from None
                        self._timestamp_missing(topic, path, ".".join(route.ts_field))
                        stamp = _NO_TIMESTAMP
                    timestamp_ns = received_ns if stamp is _NO_TIMESTAMP else _epoch_ns(stamp)
                    if not window.contains(timestamp_ns, received_ns):
                        replaced = self._timestamp_outside(
                            topic,
                            path,
                            timestamp_ns,
                            received_ns,
                            route.tag.timestamp_outside_window,
                        )
                        if replaced is None:
                            continue
                        timestamp_ns = replaced
            except _Malformed as err:
                self._malformed(topic, str(err), payload)
                continue
            if route.deadband is not None and not route.deadband.passes(path, value, timestamp_ns):
                continue
            append(Sample(self._name, topic, path, value, timestamp_ns, Quality.GOOD))

    def _resolve(self, raw_topic: bytes) -> _CacheEntry:
        routes: list[tuple[_Route, str]] = []
        try:
            topic = raw_topic.decode("utf-8")
        except UnicodeDecodeError:
            # not cached: rare, and keeps the cache clean
            not_utf8 = _Refusal("MalformedInput", "topic is not valid UTF-8")
            return (None, "", repr(raw_topic[:80]), routes, not_utf8)
        refusal: _Refusal | None = None
        for route in self._routes:
            captures = route.pattern.match(topic)
            if captures is None:
                continue
            try:
                path = route.pattern.path_for(captures)
            except ValueError as err:
                refusal = _Refusal("TopicRefused", str(err))
                continue
            if captures and path not in self._path_tags:
                if len(self._wildcard_paths) >= self.settings.max_wildcard_paths:
                    refusal = self._path_limit_reached(topic, path)
                    continue
                self._wildcard_paths.add(path)
            routes.append((route, path))
            self._path_tags.setdefault(path, route.tag)
        if len(self._cache) >= _TOPIC_CACHE_LIMIT:
            self._cache.clear()
        fast_key = routes[0][0].fast_key if len(routes) == 1 else None
        entry = (fast_key, routes[0][1] if routes else "", topic, routes, refusal)
        self._cache[raw_topic] = entry
        return entry

    def _path_limit_reached(self, topic: str, path: str) -> _Refusal:
        limit = self.settings.max_wildcard_paths
        if not self._limit_reported:
            self._limit_reported = True
            message = (
                f"mqtt connector {self._name}: {limit} twin paths created from wildcard topics "
                f"(max_wildcard_paths); messages for new paths are dropped (first: {topic} -> "
                f"{path}), known paths keep flowing"
            )
            self._log.warning("%s", message)
            self._problems.note(
                "WildcardPathLimit",
                message,
                {"limit": limit, "topic": topic, "path": path},
                "error",
            )
        return _Refusal("", "")

    def _refuse(self, topic: str, refusal: _Refusal) -> None:
        """Count one message that has no usable path (and report it, rate-limited)."""
        status = self._status
        if refusal.error_type == "TopicRefused":
            status.topics_refused += 1
            self._problems.note(
                "TopicRefused",
                f"topic {topic} refused: {refusal.reason}",
                {"address": topic, "reason": refusal.reason},
                "warning",
            )
        elif refusal.error_type:
            self._malformed(topic, refusal.reason)
        else:
            status.paths_over_limit += 1

    # -- writes ---------------------------------------------------------------------------
    async def write(self, target: str, value: SampleValue) -> None:
        """Publish ``value`` to a writable tag's topic (no wildcards), JSON if it has a field."""
        tag = self._by_target.get(target)
        if tag is None:
            raise TagWriteError(f"{self._name}: no tag '{target}'")
        if not tag.writable:
            raise TagWriteError(f"{self._name}: tag '{target}' is not writable")
        if "+" in tag.address or "#" in tag.address:
            raise TagWriteError(f"{self._name}: cannot publish to the filter '{tag.address}'")
        client = self._client
        if client is None or not self._status.connected:
            raise DeviceUnavailable(f"{self._name}: not connected to the broker")
        raw: object = value
        if tag.data_type in ("float", "int") and (tag.scale != 1.0 or tag.offset != 0.0):
            raw = (float(value) - tag.offset) / tag.scale
        if tag.field:
            document: object = raw
            for part in reversed(tag.field.split(".")):
                document = {part: document}
            payload = orjson.dumps(document)
        else:
            payload = orjson.dumps(raw) if not isinstance(raw, str) else raw.encode("utf-8")
        qos = tag.qos if tag.qos is not None else self.settings.qos
        info = client.publish(tag.address, payload, qos=qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._status.write_errors += 1
            raise TagWriteError(f"{self._name}: publish to {tag.address} failed: {info.rc}")
        if qos:
            try:
                await asyncio.to_thread(info.wait_for_publish, 5.0)
            except (RuntimeError, ValueError) as err:
                self._status.write_errors += 1
                raise TagWriteError(f"{self._name}: publish to {tag.address}: {err}") from err
            if not info.is_published():
                self._status.write_errors += 1
                raise TagWriteError(f"{self._name}: publish to {tag.address} not acknowledged")
        self._status.writes += 1
