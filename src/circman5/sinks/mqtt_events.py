"""Events, twin state and service status published to an MQTT broker (paho-mqtt 2.x).

Topics (``{base}`` = ``{topic_prefix}/{site}/{line}``):

* ``{base}/events/{category}``: every event as JSON (its ``to_dict()``), QoS 1, not retained.
  Events go through an :class:`~circman5.sinks.outbox.Outbox`, so events raised while the broker
  is away are published when it returns, in order; an event counts as delivered only when the
  broker acknowledged it (PUBACK).
* ``{base}/state``: the twin state snapshot as JSON, retained, QoS 1, republished at most every
  ``state_interval_s`` when it changed; with MQTT 5 it expires after ``state_expiry_s``.
* ``{base}/alarms``: the active threshold alarms (JSON list, retained, QoS 1), republished when
  one is raised or cleared and on every connect, so a site view started later sees them.
* ``{base}/status``: ``online`` (retained birth message, sent on every connect) or ``offline``
  (retained; sent on a clean stop, and by the broker as last will when the service dies).

With MQTT 5 the messages carry a content type (``application/json``, ``text/plain`` for the
status) and the UTF-8 payload format indicator. MQTT 3.1.1 works the same without properties.

The client, its session state, paho's reconnect and the connection's log lines come from the
shared :class:`~circman5.mqtt_link.BrokerLink`, which hands every callback from paho's network
thread over to the event loop. :meth:`MqttEventPublisher.on_event` may be called from any thread:
it serializes the event and enqueues it, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from circman5.errors import SinkRejected, SinkUnavailable
from circman5.mqtt_link import BrokerLink, LinkDown, LinkSettings, Will, publish_properties
from circman5.reporting import ProblemReporter
from circman5.sinks._sqlite import BackgroundService
from circman5.sinks.active_alarms import ActiveAlarms
from circman5.sinks.config import MqttOutputSettings
from circman5.sinks.outbox import Outbox, OutboxMetrics
from circman5.sinks.session_takeover import TakeoverWatch

logger = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_OFFLINE_TIMEOUT_S = 2.0
# MQTT 5 PUBACK reason codes that mean "not now" rather than "never" (quota exceeded,
# server busy).
_TRANSIENT_REASONS = frozenset({0x97, 0x89})
_NOT_AUTHORIZED = 0x87


class EventCategoryLike(Protocol):
    @property
    def value(self) -> object: ...


class EventLike(Protocol):
    """What the publisher needs of an event (the twin's ``Event`` fits)."""

    @property
    def category(self) -> EventCategoryLike: ...

    def to_dict(self) -> Mapping[str, Any]: ...


def _topic_level(text: str) -> str:
    cleaned = "".join("_" if c in "/+#\0" else c for c in text.strip())
    return cleaned or "unknown"


def _json_default(value: object) -> object:
    return str(value)


def encode_record(topic: str, payload: bytes) -> bytes:
    """One outbox record: the topic, a NUL (never part of a topic), the payload."""
    return topic.encode() + b"\0" + payload


def decode_record(record: bytes) -> tuple[str, bytes]:
    topic, _, payload = record.partition(b"\0")
    return topic.decode(), payload


@dataclass(frozen=True, slots=True)
class MqttPublisherMetrics:
    connected: bool
    connects: int
    events_accepted: int
    events_unencodable: int
    states_published: int
    outbox: OutboxMetrics


class MqttLink:
    """The paho client: connection, birth and will, and acknowledged publishing.

    Used as the :class:`~circman5.sinks.base.Sink` of the events outbox: :meth:`write` publishes
    each record with QoS 1 and returns once the broker acknowledged all of them.
    """

    def __init__(self, settings: MqttOutputSettings, name: str = "mqtt") -> None:
        self.settings = settings
        self._name = name
        self.takeover = TakeoverWatch(settings.effective_client_id, settings.base_topic)
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._listeners: list[Callable[[], None]] = []
        self._down_listeners: list[Callable[[str], None]] = []
        self._v5 = settings.protocol == "5"
        self.status_topic = f"{settings.base_topic}/status"
        self._json_props = self._props("application/json")
        self._text_props = self._props("text/plain")
        self._state_props = self._props("application/json", settings.state_expiry_s)
        self._link = BrokerLink(
            LinkSettings.of(
                settings,
                section="outputs.mqtt",
                reconnect_s=(settings.reconnect_min_s, settings.reconnect_max_s),
                protocol=settings.protocol,
                clean_start="first",
                will=Will(self.status_topic, OFFLINE, 1, retain=True, content_type="text/plain"),
            ),
            what="MQTT output",
            log=logger,
        )
        self._link.on_session = self._publish_online
        self._link.add_up_listener(self._set_up)
        self._link.add_down_listener(self._set_down)

    @property
    def name(self) -> str:
        return self._name

    @property
    def connected(self) -> bool:
        return self._link.connected

    @property
    def connects(self) -> int:
        return self._link.connects

    def _props(self, content_type: str, expiry: int | None = None) -> Properties | None:
        return publish_properties(content_type, expiry) if self._v5 else None

    def add_connect_listener(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs on the event loop after every (re)connect."""
        self._listeners.append(callback)

    def add_disconnect_listener(self, callback: Callable[[str], None]) -> None:
        """``callback(reason)`` runs on the event loop when the connection drops or a connect
        fails (not on a clean stop)."""
        self._down_listeners.append(callback)

    def call(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` on the event loop (from any thread)."""
        self._link.call(fn)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Create the client and start paho's network thread (connects in the background)."""
        self._link.start(self._configure)

    def _configure(self, client: mqtt.Client) -> None:
        client.max_inflight_messages_set(max(20, self.settings.outbox.batch_max_points))
        client.on_publish = self._on_publish

    async def stop(self) -> None:
        """Publish ``offline`` (retained), disconnect and end the network thread."""
        client = self._link.client
        if client is None:
            return
        if self.connected:
            with contextlib.suppress(SinkUnavailable, SinkRejected, TimeoutError):
                async with asyncio.timeout(_OFFLINE_TIMEOUT_S):
                    await self._publish_acked(
                        client, [(self.status_topic, OFFLINE)], True, self._text_props
                    )
        await self._link.stop()
        self._fail_acks("stopped")

    # -- paho's network thread -----------------------------------------------------------------

    def _publish_online(self, client: mqtt.Client) -> None:
        client.publish(self.status_topic, ONLINE, qos=1, retain=True, properties=self._text_props)

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._link.call(self._acked, mid, reason)

    # -- on the event loop ---------------------------------------------------------------------

    def _set_up(self) -> None:
        self.takeover.up()
        for callback in self._listeners:
            callback()

    def _set_down(self, down: LinkDown) -> None:
        if down.was_up:
            self.takeover.down(down.code)
        self._fail_acks(down.reason)
        for callback in self._down_listeners:
            callback(down.reason)

    def _fail_acks(self, why: str) -> None:
        failure = SinkUnavailable(f"{self._name}: {why}")
        acks, self._acks = self._acks, {}
        for fut in acks.values():
            if not fut.done():
                fut.set_exception(failure)

    def _acked(self, mid: int, reason: ReasonCode) -> None:
        fut = self._acks.pop(mid, None)
        if fut is None or fut.done():
            return
        if not reason.is_failure:
            fut.set_result(None)
        elif reason.value in _TRANSIENT_REASONS:
            fut.set_exception(
                SinkUnavailable(f"{self._name}: broker answered {reason}", overloaded=True)
            )
        else:
            status = 403 if reason.value == _NOT_AUTHORIZED else 400
            fut.set_exception(SinkRejected(f"{self._name}: broker refused: {reason}", status))

    # -- publishing ----------------------------------------------------------------------------

    async def write(self, records: Sequence[bytes]) -> None:
        """Publish each record (QoS 1); returns when the broker acknowledged every one."""
        client = self._link.client
        if client is None or not self.connected:
            raise SinkUnavailable(f"{self._name}: not connected to the broker")
        messages = [decode_record(record) for record in records]
        await self._publish_acked(client, messages, False, self._json_props)

    async def _publish_acked(
        self,
        client: mqtt.Client,
        messages: Sequence[tuple[str, bytes]],
        retain: bool,
        props: Properties | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        waiting: list[tuple[int, asyncio.Future[None]]] = []
        try:
            for topic, payload in messages:
                info = client.publish(topic, payload, qos=1, retain=retain, properties=props)
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    why = mqtt.error_string(info.rc)
                    raise SinkUnavailable(f"{self._name}: publish failed: {why}")
                fut: asyncio.Future[None] = loop.create_future()
                self._acks[info.mid] = fut
                waiting.append((info.mid, fut))
            try:
                async with asyncio.timeout(self.settings.publish_timeout_s):
                    for _, fut in waiting:
                        await fut
            except TimeoutError as err:
                raise SinkUnavailable(
                    f"{self._name}: no PUBACK within the timeout", overloaded=True
                ) from err
        finally:
            for mid, fut in waiting:
                if self._acks.get(mid) is fut:
                    del self._acks[mid]
                if fut.done() and not fut.cancelled():
                    fut.exception()  # consumed: no "never retrieved" warnings

    def publish_retained(self, topic: str, payload: bytes, props: Properties | None) -> bool:
        """Publish a retained QoS 1 message without waiting for it (state snapshots)."""
        client = self._link.client
        if client is None or not self.connected:
            return False
        info = client.publish(topic, payload, qos=1, retain=True, properties=props)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    @property
    def state_props(self) -> Properties | None:
        return self._state_props


class MqttEventPublisher(BackgroundService):
    """Publishes events (through a disk-backed outbox), the retained twin state and status.

    ``async with MqttEventPublisher(settings) as publisher:`` (or ``run()`` in a TaskGroup), then
    connect ``publisher.on_event`` to the event manager and call ``publisher.set_state(state)``
    on twin updates. Both are thread-safe and cheap.
    """

    def __init__(
        self,
        settings: MqttOutputSettings,
        *,
        reporter: ProblemReporter | None = None,
        outbox_name: str = "mqtt-events",
        outbox_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.link = MqttLink(settings)
        self.outbox = Outbox(
            self.link,
            name=outbox_name,
            settings=settings.outbox,
            reporter=reporter,
            path=outbox_path,
        )
        # the outbox reports the outage and its end, and delivers as soon as the broker is back
        self.link.add_connect_listener(self.outbox.sink_up)
        self.link.add_disconnect_listener(self.outbox.sink_down)
        self.link.add_connect_listener(self._state_now)
        self.events_topic = f"{settings.base_topic}/events"
        self.state_topic = f"{settings.base_topic}/state"
        self.alarms_topic = f"{settings.base_topic}/alarms"
        self.alarms = ActiveAlarms()
        self._alarms_published = -1
        self._state: Mapping[str, object] | None = None
        self._state_version = 0
        self._published_version = 0
        self._state_wake = asyncio.Event()
        self._lock = threading.Lock()
        self._events_accepted = 0
        self._unencodable = 0
        self._states_published = 0

    # -- intake (any thread) -------------------------------------------------------------------

    def on_event(self, event: EventLike) -> None:
        """Queue one event for publishing. Thread-safe; never raises for a bad event."""
        try:
            topic = f"{self.events_topic}/{_topic_level(str(event.category.value))}"
            payload = orjson.dumps(event.to_dict(), default=_json_default, option=_JSON_OPTIONS)
        except (AttributeError, TypeError, ValueError) as err:  # orjson.JSONEncodeError too
            with self._lock:
                self._unencodable += 1
                first = self._unencodable == 1
            if first:
                logger.error("MQTT output: cannot encode event %r: %s (counted)", event, err)
            return
        self.outbox.submit(encode_record(topic, payload), 1)
        with self._lock:
            self._events_accepted += 1
        if topic.endswith("/threshold") and self.alarms.track(event.to_dict()):
            self.link.call(self._state_wake.set)  # the alarm list goes out at once

    def set_state(self, state: Mapping[str, object]) -> None:
        """The latest twin state; published (retained) at the configured rate. Pass a snapshot
        that is not mutated afterwards. Thread-safe."""
        with self._lock:
            self._state = state
            self._state_version += 1

    # -- lifecycle -----------------------------------------------------------------------------

    async def _open(self) -> None:
        self.link.start()
        try:
            await self.outbox.__aenter__()
        except BaseException:
            await self.link.stop()
            raise

    def _on_stop(self) -> None:
        self._state_wake.set()

    def _state_now(self) -> None:
        self._alarms_published = -1  # the retained alarms again on every connect
        self._state_wake.set()

    async def _serve(self) -> None:
        interval = self.settings.state_interval_s
        while not self._stopping:
            if interval > 0:
                self._publish_state()
            self._publish_alarms()
            self._state_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._state_wake.wait(), interval if interval > 0 else None)

    def _publish_state(self) -> None:
        with self._lock:
            state, version = self._state, self._state_version
        if state is None or version == self._published_version:
            return
        try:
            payload = orjson.dumps(state, default=_json_default, option=_JSON_OPTIONS)
        except orjson.JSONEncodeError as err:
            self._published_version = version  # not this one again
            logger.error("MQTT output: cannot encode the twin state: %s", err)
            return
        if self.link.publish_retained(self.state_topic, payload, self.link.state_props):
            self._published_version = version
            self._states_published += 1

    def _publish_alarms(self) -> None:
        version, alarms = self.alarms.snapshot()
        if version == self._alarms_published:
            return
        payload = orjson.dumps(alarms, default=_json_default, option=_JSON_OPTIONS)
        if self.link.publish_retained(self.alarms_topic, payload, self.link._json_props):
            self._alarms_published = version

    async def _close(self) -> None:
        try:
            await self.outbox.__aexit__(None, None, None)
        finally:
            await self.link.stop()

    @property
    def metrics(self) -> MqttPublisherMetrics:
        return MqttPublisherMetrics(
            connected=self.link.connected,
            connects=self.link.connects,
            events_accepted=self._events_accepted,
            events_unencodable=self._unencodable,
            states_published=self._states_published,
            outbox=self.outbox.metrics,
        )
