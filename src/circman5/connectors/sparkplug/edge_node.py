"""A Sparkplug B edge node: values by name in, births, data, deaths and commands on the broker.

Why this module is long: one protocol state machine (session number, aliases, sequence, births
after every connect or rebirth, deaths, commands) over one paho session; the metric encoding and
the settings are separate modules.

Knows nothing of the twin: :meth:`SparkplugEdgeNode.update` takes ``{name: value}`` (the twin's
dotted paths, as the service's glue hands them over) and the node does the rest:

- ``NBIRTH`` after every (re)connect: the ``bdSeq`` metric (the number of this MQTT session,
  0..255, also in the will), ``Node Control/Rebirth`` = false, and every selected name as a metric
  (name, alias, data type, current value, ``engUnit`` property where a unit is known).
  With ``devices = "sections"``: one ``DBIRTH`` per top-level section, names without it.
- ``NDATA``/``DDATA`` per :meth:`update` call (one per tick): the metrics that changed by more
  than the deadband, by alias (with their data type, which some hosts need), ``seq`` 0..255.
- ``NDEATH`` as the MQTT will (QoS 1) with the session's ``bdSeq``; published explicitly on a
  clean stop. A lost connection ends the session: the next one has ``bdSeq`` + 1 and a new birth.
  The next ``bdSeq`` is kept in ``bd_seq_file`` so that a restarted process does not reuse the
  number of a session whose will the broker may still publish.
- ``NCMD`` ``Node Control/Rebirth`` = true: a new birth. Any other ``NCMD``/``DCMD`` metric is a
  :class:`Command` for ``on_command`` (called on the event loop), which decides what to do.
- A new name, or a value that does not fit its metric's type (an Int64 metric getting 2.5),
  makes the next :meth:`update` publish a new birth instead of data.

The client, its session state, paho's reconnect and the connection's log lines and problems come
from the shared :class:`~circman5.mqtt_link.BrokerLink`, which hands everything from paho's
network thread to the event loop; births and data are published from the loop only, so their
``seq`` order is the publish order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson
import paho.mqtt.client as paho
from google.protobuf.message import DecodeError
from paho.mqtt.enums import MQTTErrorCode

from circman5.connectors.sparkplug import payload as spb
from circman5.connectors.sparkplug.config import NAMESPACE
from circman5.connectors.sparkplug.edge_config import SparkplugEdgeSettings
from circman5.connectors.sparkplug.edge_metrics import (
    U64,
    MetricDefinition,
    MetricTable,
    birth_payloads,
    datatype_of,
    death_payload,
    fits,
)
from circman5.files import atomic_write
from circman5.mqtt_link import BrokerLink, LinkSettings, Will, set_will
from circman5.reporting import LoggingProblemReporter, ProblemReporter, RateLimitedReporter
from circman5.samples import SampleValue

logger = logging.getLogger(__name__)

__all__ = ["Command", "EdgeNodeStats", "SparkplugEdgeNode"]

_STOP_TIMEOUT_S: Final = 2.0
_NODE_CONTROL: Final = "Node Control/"


@dataclass(frozen=True, slots=True)
class Command:
    """A write asked for by a host: ``name`` (the twin path), the decoded value, where from."""

    name: str
    value: SampleValue
    device: str
    metric: str
    datatype: str


@dataclass(slots=True)
class EdgeNodeStats:
    connects: int = 0
    births: int = 0
    data_messages: int = 0
    metrics_published: int = 0
    within_deadband: int = 0
    commands: int = 0
    rebirth_requests: int = 0
    bad_commands: int = 0
    unpublishable: int = 0


@dataclass(slots=True)
class _Session:
    """What belongs to one MQTT connection."""

    bd_seq: int
    seq: int = -1
    born: bool = False

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) % 256
        return self.seq


class SparkplugEdgeNode:
    """One edge node on the broker (see the module docstring). ``async with`` it, then call
    :meth:`update` from the event loop."""

    def __init__(
        self,
        settings: SparkplugEdgeSettings,
        *,
        units: Mapping[str, str] | None = None,
        on_command: Callable[[Command], None] | None = None,
        reporter: ProblemReporter | None = None,
        bd_seq_file: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.stats = EdgeNodeStats()
        self._on_command = on_command
        self._problems = RateLimitedReporter(
            reporter or LoggingProblemReporter(logger), f"sparkplug edge {settings.edge_node_id}"
        )
        self._bd_seq_file = bd_seq_file
        self._clock = clock
        self._select = settings.selection()
        self._table = MetricTable(
            sections=settings.devices == "sections",
            units=units or {},
            max_metrics=settings.max_metrics,
        )
        self._sections = self._table.sections
        base = f"{NAMESPACE}/{settings.group_id}"
        self._node = settings.edge_node_id
        self._topics = {
            kind: f"{base}/{kind}/{settings.edge_node_id}"
            for kind in ("NBIRTH", "NDATA", "NDEATH", "NCMD", "DBIRTH", "DDATA", "DCMD")
        }
        host = settings.primary_host_id
        self._state_topic = f"{NAMESPACE}/STATE/{host}" if host else None
        self._host_online = host is None  # without a primary host: always "online"
        self._host_timestamp = -1
        self._birth_due = False
        self._will_bd_seq = self._load_bd_seq()  # network thread after start
        self._link = BrokerLink(
            LinkSettings.of(
                settings,
                section="outputs.sparkplug",
                reconnect_s=(settings.reconnect_initial_s, settings.reconnect_max_s),
                will=self._will(self._will_bd_seq),
            ),
            what=f"Sparkplug edge node {settings.group_id}/{settings.edge_node_id}",
            log=logger,
            reporter=reporter,
        )
        self._link.on_session = self._on_session
        self._link.on_session_end = self._on_session_end
        self._client: paho.Client | None = None
        self._session: _Session | None = None  # on the loop: the connected session
        self.connected = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> SparkplugEdgeNode:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start(self) -> None:
        """Create the client with its will and start paho's thread (connects in the background)."""
        self._client = self._link.start(self._configure)

    def _configure(self, client: paho.Client) -> None:
        set_will(client, self._will(self._will_bd_seq))  # this session's bdSeq, death time
        client.on_message = self._on_message

    async def stop(self) -> None:
        """A clean end: ``NDEATH`` with the session's ``bdSeq``, then disconnect."""
        client, self._client = self._client, None
        if client is None:
            return
        session = self._session
        if session is not None:
            info = client.publish(
                self._topics["NDEATH"], self._death(session.bd_seq), qos=1, retain=False
            )
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                with contextlib.suppress(RuntimeError, ValueError):
                    await asyncio.to_thread(info.wait_for_publish, _STOP_TIMEOUT_S)
        self._session = None
        self.connected.clear()
        await self._link.stop()

    # -- bdSeq ---------------------------------------------------------------------------------

    def _load_bd_seq(self) -> int:
        if self._bd_seq_file is None:
            return 0
        try:
            return int(self._bd_seq_file.read_text().strip()) % 256
        except (OSError, ValueError):
            return 0

    def _save_bd_seq(self, next_bd_seq: int) -> None:
        if self._bd_seq_file is None:
            return
        try:
            self._bd_seq_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self._bd_seq_file, f"{next_bd_seq}\n")
        except OSError as err:
            logger.warning("cannot keep the Sparkplug bdSeq in %s: %s", self._bd_seq_file, err)

    def _death(self, bd_seq: int) -> bytes:
        return death_payload(bd_seq, self._now_ms())

    def _will(self, bd_seq: int) -> Will:
        return Will(self._topics["NDEATH"], self._death(bd_seq), qos=1, retain=False)

    # -- paho's network thread (the link hands over to the loop) -----------------------------

    def _on_session(self, client: paho.Client) -> None:
        topics = [(self._topics["NCMD"], 1), (self._topics["DCMD"] + "/+", 1)]
        if self._state_topic is not None:
            topics.append((self._state_topic, 1))
        client.subscribe(topics)
        self._link.call(self._session_started, self._will_bd_seq)

    def _on_session_end(self, client: paho.Client) -> None:
        # the next session registers the next bdSeq with its CONNECT
        self._will_bd_seq = (self._will_bd_seq + 1) % 256
        set_will(client, self._will(self._will_bd_seq))
        self._link.call(self._session_ended)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        if message.topic == self._state_topic:
            self._link.call(self._host_state, bytes(message.payload))
        else:
            self._link.call(self._command_message, message.topic, bytes(message.payload))

    # -- on the event loop ---------------------------------------------------------------------

    def _session_started(self, bd_seq: int) -> None:
        if self._client is None:
            return
        self._session = _Session(bd_seq)
        self.stats.connects += 1
        self._save_bd_seq((bd_seq + 1) % 256)
        logger.debug("Sparkplug edge node session with bdSeq %d", bd_seq)
        if self._host_online:
            self._birth()
        else:
            logger.info("waiting for the primary host's STATE before the birth")
        self.connected.set()

    def _session_ended(self) -> None:
        if self._session is None:
            return
        self._session = None
        self.connected.clear()
        if self._state_topic is not None:
            self._host_online = False  # the next session waits for the (retained) STATE again

    def _host_state(self, data: bytes) -> None:
        """The primary host's ``STATE``: birth when it is online, death while it is not."""
        try:
            state = orjson.loads(data)
            online, stamp = state["online"], int(state.get("timestamp", 0))
            if not isinstance(online, bool):
                raise TypeError("'online' is not a boolean")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
            self._problems.note(
                "SparkplugBadState", f"the primary host's STATE is not usable: {err}"
            )
            return
        if stamp < self._host_timestamp:
            return  # an older message than the one that decided the current state
        self._host_timestamp = stamp
        if online == self._host_online:
            return
        self._host_online = online
        session, client = self._session, self._client
        logger.info(
            "primary host %s is %s",
            self.settings.primary_host_id,
            "online" if online else "offline",
        )
        if session is None or client is None:
            return
        if online:
            self._birth()
        elif session.born:
            session.born = False  # no data until the host is back and a new birth is out
            client.publish(self._topics["NDEATH"], self._death(session.bd_seq), qos=1)

    def update(self, values: Mapping[str, object]) -> None:
        """Take new values by name; publish what changed (or a birth if the metrics changed)."""
        metrics_get = self._table.metrics.get
        latest = self._table.latest
        deadband = self.settings.deadband
        double = spb.DOUBLE
        changed: list[tuple[MetricDefinition, SampleValue]] = []
        append = changed.append
        for name, raw in values.items():
            known = metrics_get(name)
            if known is None:
                self._unknown(name, raw)
                continue
            kind = type(raw)
            if kind is float:
                if raw - raw != 0.0:  # type: ignore[operator]  # NaN or infinity
                    self.stats.unpublishable += 1
                    continue
                if known.datatype != double:
                    latest[name] = raw  # type: ignore[assignment]
                    self._birth_due = True  # an Int64 metric becomes a Double
                    continue
            elif not fits(known.datatype, raw):  # type: ignore[arg-type]
                if datatype_of(raw, known.datatype) is None:  # type: ignore[arg-type]
                    self.stats.unpublishable += 1
                else:
                    latest[name] = raw  # type: ignore[assignment]
                    self._birth_due = True
                continue
            value: SampleValue = raw  # type: ignore[assignment]
            latest[name] = value
            last = known.published
            if value == last:
                continue
            if (
                deadband
                and last is not None
                and (known.datatype == double or known.datatype == spb.INT64)
                and abs(value - last) <= deadband  # type: ignore[operator]
            ):
                self.stats.within_deadband += 1
                continue
            append((known, value))
        session = self._session
        if session is None or not session.born:
            return
        if self._birth_due:
            self._birth()
            return
        if not changed:
            return
        if not self._sections:
            self._publish_data(session, "", changed)
            return
        by_device: dict[str, list[tuple[MetricDefinition, SampleValue]]] = {}
        for item in changed:
            by_device.setdefault(item[0].device, []).append(item)
        for device, metrics in by_device.items():
            self._publish_data(session, device, metrics)

    def _unknown(self, name: str, raw: object) -> None:
        """A name without a metric: selected and publishable, it needs a new birth."""
        if name in self._table.unpublished or not self._select(name):
            return
        if datatype_of(raw) is None:  # type: ignore[arg-type]
            self.stats.unpublishable += 1
            return
        self._table.latest[name] = raw  # type: ignore[assignment]
        self._birth_due = True

    def _over_limit(self, name: str) -> None:
        self._problems.note(
            "SparkplugMetricLimit",
            f"more than {self.settings.max_metrics} metrics; '{name}' is not published",
            {"name": name},
        )

    def _birth(self) -> None:
        """NBIRTH (and the DBIRTHs) with every metric and its current value."""
        session = self._session
        client = self._client
        if session is None or client is None or not self._host_online:
            return
        self._birth_due = False
        self._table.define(self._over_limit)
        node, devices = birth_payloads(self._table, session.bd_seq, self._now_ms())
        session.seq = -1
        node.seq = session.next_seq()
        ok = self._publish(client, self._topics["NBIRTH"], node)
        for device, payload in devices.items():
            payload.seq = session.next_seq()
            ok = self._publish(client, f"{self._topics['DBIRTH']}/{device}", payload) and ok
        session.born = True
        self.stats.births += 1
        if not ok:
            logger.debug("a birth was not sent (disconnected); the next session sends one")

    def _publish_data(
        self,
        session: _Session,
        device: str,
        metrics: list[tuple[MetricDefinition, SampleValue]],
    ) -> None:
        client = self._client
        if client is None:
            return
        now = self._now_ms()
        payload = spb.Payload(timestamp=now, seq=session.next_seq())
        add = payload.metrics.add
        double, int64, boolean = spb.DOUBLE, spb.INT64, spb.BOOLEAN
        for defined, value in metrics:
            metric = add()
            metric.alias = defined.alias
            datatype = metric.datatype = defined.datatype
            metric.timestamp = now
            if datatype == double:
                metric.double_value = value  # type: ignore[assignment]
            elif datatype == int64:
                metric.long_value = value & U64  # type: ignore[operator]
            elif datatype == boolean:
                metric.boolean_value = value  # type: ignore[assignment]
            else:
                metric.string_value = value  # type: ignore[assignment]
            defined.published = value
        topic = f"{self._topics['DDATA']}/{device}" if device else self._topics["NDATA"]
        if self._publish(client, topic, payload):
            self.stats.data_messages += 1
            self.stats.metrics_published += len(metrics)

    def _publish(self, client: paho.Client, topic: str, payload: spb.Payload) -> bool:
        info = client.publish(topic, payload.SerializeToString(), qos=0, retain=False)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- commands ------------------------------------------------------------------------------

    def _command_message(self, topic: str, data: bytes) -> None:
        parts = topic.split("/")
        device = parts[4] if len(parts) > 4 and parts[2] == "DCMD" else ""
        try:
            payload = spb.decode(data)
        except DecodeError as err:
            self.stats.bad_commands += 1
            self._problems.note(
                "SparkplugBadCommand", f"a command on {topic} is not a Sparkplug B payload: {err}"
            )
            return
        for metric in payload.metrics:
            self._command_metric(topic, device, metric)

    def _command_metric(self, topic: str, device: str, metric: spb.Metric) -> None:
        if metric.name:
            name = metric.name
            known = self._table.by_name(device, name)
        else:
            known = self._table.by_alias(device, metric.alias)
            if known is None:
                return self._bad_command(topic, f"unknown alias {metric.alias}")
            name = known.metric
        datatype = metric.datatype or (known.datatype if known is not None else 0)
        reader = spb.reader_for(datatype)
        if metric.is_null or reader is None:
            return self._bad_command(topic, f"'{name}' has no usable value")
        try:
            value = spb.finish(reader.kind, getattr(metric, reader.field))
        except ValueError as err:
            return self._bad_command(topic, f"'{name}': {err}")
        if not device and name.startswith(_NODE_CONTROL):
            if name == spb.REBIRTH and value is True:
                self.stats.rebirth_requests += 1
                logger.info("Sparkplug rebirth requested by a host")
                self._birth()
                return None
            return self._bad_command(topic, f"'{name}' is not supported")
        full = f"{device}.{name}" if device else name
        self.stats.commands += 1
        if self._on_command is not None:
            self._on_command(Command(full, value, device, name, spb.datatype_name(datatype)))
        return None

    def _bad_command(self, topic: str, why: str) -> None:
        self.stats.bad_commands += 1
        self._problems.note("SparkplugBadCommand", f"command on {topic}: {why}", {"topic": topic})
