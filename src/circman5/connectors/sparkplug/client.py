"""The Sparkplug B host connector: births, data by alias, deaths, sequence numbers, rebirths.

paho's network thread (a client and its session from the shared
:class:`~circman5.mqtt_link.BrokerLink`, as for the MQTT connector: credentials, TLS, paho's
reconnect backoff, the hand-off to the loop) only appends each message to a deque and schedules a
drain on the event loop, which handles everything waiting in arrival order:

- ``NBIRTH``/``DBIRTH``: the birth certificate (metric names, aliases, data types, properties)
  replaces the previous one; each metric is bound once to its twin path (or to nothing, if the
  tag map does not name it), so DATA costs one dict lookup per metric. Births also carry values.
- ``NDATA``/``DDATA``: metrics by alias (or by name, if the birth gave no aliases). The metric
  timestamp (ms) is the sample time, else the payload's, else the receive time.
- ``NDEATH`` (with the ``bdSeq`` of the current birth) / ``DDEATH``: every path of the node (and
  its devices) / the device gets a ``STALE`` sample carrying its last value.
- ``seq`` (0..255, wrapping) per edge node: a gap, DATA before BIRTH or an unknown alias sends
  the node an ``NCMD`` ``Node Control/Rebirth`` = true (at most once per ``rebirth_interval_s``)
  instead of guessing. The DATA of an unborn node or device is dropped (counted).
- Data types without a twin value (DataSet, Template, Bytes, File, arrays) are reported once per
  metric (``UnsupportedMetric``, rate-limited) and counted in ``stats.unsupported``.

Why this module is long: it is one state machine (births, aliases, sequence numbers, deaths and
rebirth requests per edge node and device) whose hot path (DATA by alias, benchmarked against a
bare decode loop) shares its compiled bindings with the birth handling; split, every message
would cross a module boundary and the state would be spread over several files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import paho.mqtt.client as paho
from google.protobuf.message import DecodeError
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from circman5.connectors.broker_session import BrokerSessionConnector
from circman5.connectors.config_base import stale_timeout
from circman5.connectors.deadband import Deadband
from circman5.connectors.mqtt.topics import TopicPattern
from circman5.connectors.sparkplug import payload as spb
from circman5.connectors.sparkplug.config import (
    NAMESPACE,
    SparkplugConnectorSettings,
    SparkplugTag,
)
from circman5.errors import MetricRejected as _Rejected
from circman5.errors import TagWriteError
from circman5.mqtt_link import BrokerLink, LinkSettings, Will
from circman5.reporting import ProblemReporter
from circman5.samples import Quality, Sample, SampleValue, make_sample

logger = logging.getLogger(__name__)

_DATA = frozenset({"NDATA", "DDATA"})
_HANDLED = frozenset({"NBIRTH", "NDATA", "NDEATH", "DBIRTH", "DDATA", "DDEATH"})
_Topic = tuple[bool, str, str, str, "_Node", "_Scope"]
_UNPARSED: Any = object()
_parse = spb.Payload.FromString


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """A metric seen in a birth certificate (for discovery: what can go into the tag map)."""

    group: str
    edge_node: str
    device: str
    metric: str
    datatype: str
    alias: int | None
    unit: str
    properties: dict[str, object]

    @property
    def address(self) -> str:
        """The tag-map address of this metric."""
        return f"{self.group}/{self.edge_node}/{self.device}/{self.metric}"


@dataclass(slots=True)
class SparkplugStats:
    """What the host saw, beyond the common connector status."""

    births: int = 0
    deaths: int = 0
    stale_deaths_ignored: int = 0
    seq_gaps: int = 0
    unknown_aliases: int = 0
    data_before_birth: int = 0
    rebirth_requests: int = 0
    unsupported: int = 0
    nulls: int = 0


@dataclass(slots=True)
class _Binding:
    """One metric of a birth, compiled for the hot path."""

    path: str | None  # None: not in the tag map
    address: str
    field: str
    kind: int
    fast: bool  # no tag conversion, scaling or deadband
    tag: SparkplugTag | None
    deadband: Deadband | None


# How the hot path finishes a value: as read (0), a float checked finite (1), an Int8/16/32 in
# two's complement (3), or the general way with the tag's conversion/scale/deadband (2).
# ... or not at all: the metric is not in the tag map (4).
_AS_READ, _FINITE, _GENERAL, _SIGNED32, _SKIP = 0, 1, 2, 3, 4

_Entry = tuple[int, str, str, str]
"""(finishing code, protobuf field, twin path, address): one tuple unpacking per metric on the
hot path (the binding of an address is in ``SparkplugConnector._bindings``)."""


def _entry(binding: _Binding) -> _Entry:
    if binding.path is None:
        code = _SKIP
    elif not binding.fast or binding.kind not in (spb.PLAIN, spb.REAL, spb.SIGNED32):
        code = _GENERAL
    else:
        code = {spb.PLAIN: _AS_READ, spb.REAL: _FINITE, spb.SIGNED32: _SIGNED32}[binding.kind]
    return (code, binding.field, binding.path or "", binding.address)


@dataclass(slots=True)
class _Scope:
    """The birth certificate of an edge node (``device == ""``) or of one of its devices."""

    device: str
    born: bool = False
    by_alias: dict[int, _Entry] = field(default_factory=dict)
    by_name: dict[str, _Entry] = field(default_factory=dict)
    use_alias: bool = False
    fast: bool = False  # born and by alias: DATA takes the hot path
    paths: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Node:
    group: str
    edge_node: str
    own: _Scope = field(default_factory=lambda: _Scope(""))
    devices: dict[str, _Scope] = field(default_factory=dict)
    bd_seq: int | None = None
    seq: int | None = None
    rebirth_requested_at: float | None = None

    def all_paths(self) -> list[str]:
        paths = list(self.own.paths)
        for device in self.devices.values():
            paths.extend(device.paths)
        return paths


@dataclass(slots=True)
class _Route:
    tag: SparkplugTag
    group: str
    metric: str
    device_wildcard: bool
    pattern: TopicPattern


class SparkplugConnector(BrokerSessionConnector):
    """A Sparkplug B host application feeding the twin from the plant's edge nodes."""

    protocol = "sparkplug"

    def __init__(
        self, settings: SparkplugConnectorSettings, reporter: ProblemReporter | None = None
    ) -> None:
        super().__init__(settings, reporter)
        self.settings = settings
        self.stats = SparkplugStats()
        self._routes: dict[str, list[_Route]] = {}
        for tag in settings.tags:
            address = tag.parsed
            self._routes.setdefault(address.metric, []).append(
                _Route(
                    tag=tag,
                    group=address.group,
                    metric=address.metric,
                    device_wildcard=address.device == "+",
                    pattern=TopicPattern(address.scope, tag.path),
                )
            )
        self._path_tags: dict[str, SparkplugTag] = {
            tag.path: tag for tag in settings.tags if "{" not in tag.path
        }
        self._nodes: dict[tuple[str, str], _Node] = {}
        self._catalog: dict[str, MetricInfo] = {}
        self._unsupported_seen: set[str] = set()
        self._topics: dict[bytes, _Topic | None] = {}
        self._max_payload = settings.max_payload_bytes
        self._null_paths: list[str] = []
        self._bindings: dict[str, _Binding] = {}
        self._inbox: deque[tuple[bytes, bytes, float]] = deque()
        self._client: paho.Client | None = None
        self._broker: BrokerLink | None = None
        self._stop = asyncio.Event()
        self._closing = False
        self._state_timestamp = 0

    # -- contract -------------------------------------------------------------------------
    def stale_after(self, path: str) -> float | None:
        """Sparkplug reports by exception: silence is not staleness, deaths are (``inf``)."""
        tag = self._path_tags.get(path)
        timeout = stale_timeout(tag) if tag is not None else None
        return math.inf if timeout is None else timeout

    def catalog(self) -> list[MetricInfo]:
        """Every metric seen in a birth certificate since the start, sorted by address."""
        return sorted(self._catalog.values(), key=lambda info: info.address)

    async def write(self, target: str, value: SampleValue) -> None:
        raise TagWriteError(
            f"{self._name}: writing to Sparkplug edge nodes (NCMD/DCMD) is not supported yet"
        )

    # -- connection -------------------------------------------------------------------------
    def _state_topic(self) -> str | None:
        host = self.settings.primary_host_id
        return f"{NAMESPACE}/STATE/{host}" if host else None

    def _state_payload(self, online: bool) -> bytes:
        return orjson.dumps({"online": online, "timestamp": self._state_timestamp})

    def _link(self) -> BrokerLink:
        s = self.settings
        topic = self._state_topic()
        will = None
        if topic is not None:
            self._state_timestamp = time.time_ns() // 1_000_000
            will = Will(topic, self._state_payload(False), qos=1, retain=True)
        link = BrokerLink(
            LinkSettings.of(
                s,
                section=f"connectors.{s.name}",
                reconnect_s=(s.reconnect_initial_s, s.reconnect_max_s),
                will=will,
            ),
            what=f"sparkplug connector {s.name}",
            log=logger,
            announce=False,  # BaseConnector reports the connection state
        )
        link.on_session = self._session_started
        link.add_down_listener(self._link_down)
        return link

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._broker = link = self._link()
        self._client = link.start(self._configure)
        await self._stop.wait()

    def _configure(self, client: paho.Client) -> None:
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe

    async def _close(self) -> None:
        client, link = self._client, self._broker
        self._client = None
        if client is None or link is None:
            return
        self._closing = True
        topic = self._state_topic()
        if topic is not None and client.is_connected():
            # A clean disconnect does not send the will: say "offline" ourselves.
            info = client.publish(topic, self._state_payload(False), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                await asyncio.to_thread(info.wait_for_publish, 2.0)
        await link.stop()
        self._drain()

    # -- network thread hooks and callbacks (the link catches what its hooks raise) --------
    def _session_started(self, client: paho.Client) -> None:
        """After a successful CONNACK: the primary host's STATE, then the subscriptions."""
        topic = self._state_topic()
        if topic is not None:
            client.publish(topic, self._state_payload(True), qos=1, retain=True)
        qos: int = self.settings.qos
        filters = [(f"{NAMESPACE}/{group}/#", qos) for group in self._groups()]
        result, _ = client.subscribe(filters)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._to_loop(self._connection_changed, True, f"subscribe failed: {result}")
        # Connected once the broker acknowledged the subscriptions (``_on_subscribe``): from
        # then on no birth can be missed.

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        failed = [str(code) for code in reason_codes if code.is_failure]
        error = f"subscribe refused: {', '.join(failed)}" if failed else None
        self._to_loop(self._connection_changed, True, error)

    def _groups(self) -> list[str]:
        return self.settings.all_groups

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        inbox = self._inbox
        if len(inbox) >= self._inbox_limit:
            self._thread_dropped += 1
            return
        payload = message.payload
        inbox.append(
            (
                message._topic,
                payload if type(payload) is bytes else bytes(payload),
                message.timestamp,
            )
        )
        self._wake_drain()

    def _to_loop(self, callback: Callable[..., None], *args: object) -> None:
        if self._broker is not None:
            self._broker.call(callback, *args)

    # -- on the event loop -------------------------------------------------------------------
    def _connection_changed(self, connected: bool, error: str | None) -> None:
        if not self._closing and self._subscriptions_changed(connected, error):
            # Births may change while we are away: everything is stale until born again.
            for node in self._nodes.values():
                self._forget_births(node)

    def _drain(self) -> None:
        self._scheduled = False
        inbox = self._inbox
        count = len(inbox)
        if not count:
            return
        batch: list[Sample] = []
        offset_s = time.time() - paho.time_func()
        for _ in range(count):
            raw_topic, data, received = inbox.popleft()
            received_ns = int((received + offset_s) * 1e9)
            self.handle(raw_topic, data, received_ns, batch)
        self._emit(batch)

    # -- the Sparkplug state machine --------------------------------------------------------
    def _parse_topic(self, raw_topic: bytes) -> _Topic | None:
        """(message type, device, topic, its edge node, its scope) of a Sparkplug topic this
        host handles (births, data, deaths), else None; cached. The node and the scope (the
        node's own for N* messages) are created unborn on first sight and live as long as the
        connector, so the cache can hold them."""
        parsed: _Topic | None = None
        try:
            topic = raw_topic.decode("utf-8")
        except UnicodeDecodeError:
            topic = ""
        parts = topic.split("/")
        if (
            len(parts) in (4, 5)
            and parts[0] == NAMESPACE
            and parts[2] in _HANDLED
            # N* messages have no device level, D* messages have one
            and (len(parts) == 5) == parts[2].startswith("D")
            and all(parts)
        ):
            group, kind, edge_node = parts[1], parts[2], parts[3]
            device = parts[4] if len(parts) == 5 else ""
            node = self._nodes.get((group, edge_node))
            if node is None:
                node = self._nodes[(group, edge_node)] = _Node(group, edge_node)
            scope = node.own
            if device:
                scope = node.devices.setdefault(device, _Scope(device))
            parsed = (kind in _DATA, kind, device, topic, node, scope)
        if len(self._topics) > 100_000:
            self._topics.clear()
        self._topics[raw_topic] = parsed
        return parsed

    def handle(self, raw_topic: bytes, data: bytes, received_ns: int, out: list[Sample]) -> None:
        """Handle one message (the drain's step; public for the benchmark and tests)."""
        parsed = self._topics.get(raw_topic, _UNPARSED)
        if parsed is _UNPARSED:
            parsed = self._parse_topic(raw_topic)
        if parsed is None:
            return  # STATE of another host, NCMD/DCMD, or not Sparkplug
        is_data, kind, device, topic, node, scope = parsed
        if len(data) > self._max_payload:
            self._malformed(topic, f"payload of {len(data)} bytes exceeds the limit")
            return
        try:
            message = _parse(data)
        except DecodeError as err:
            self._malformed(topic, f"not a Sparkplug B payload: {err}", data[:60])
            return
        seq = node.seq
        if not is_data or not scope.fast or seq is None:
            self._handle_other(kind, device, topic, node, scope, message, received_ns, out)
            return
        # The hot path: DATA by alias from a born node/device. One dict lookup per metric, the
        # value read from the field its birth declared, a Sample built without the dataclass
        # __init__; anything unusual (conversion, scaling, deadband, null, non-finite) goes
        # through _decode_one.
        new_seq = message.seq
        if new_seq == seq + 1 or (seq == 255 and new_seq == 0):
            node.seq = new_seq
        else:
            self._check_seq(node, new_seq, kind)
        source = self._name
        good = Quality.GOOD
        make = make_sample
        append = out.append
        by_alias = scope.by_alias
        unknown: list[int | str] | None = None
        nulls = self._null_paths
        for metric in message.metrics:
            try:
                code, field_name, path, address = by_alias[metric.alias]
            except KeyError:
                name = metric.name
                entry = scope.by_name.get(name) if name else None
                if entry is None:
                    unknown = [*(unknown or ()), metric.alias]
                else:
                    self._decode_one(entry, metric, _payload_ns(message, received_ns), out, nulls)
                continue
            if code == 1:  # Float/Double: the common case first
                value = getattr(metric, field_name)
                if value - value == 0.0 and (value or not metric.is_null):
                    stamp = metric.timestamp
                    append(
                        make(
                            source,
                            address,
                            path,
                            value,
                            stamp * 1_000_000 if stamp else _payload_ns(message, received_ns),
                            good,
                        )
                    )
                    continue
            elif code == 0:
                value = getattr(metric, field_name)
                if value or not metric.is_null:  # a null metric has no value field set
                    stamp = metric.timestamp
                    append(
                        make(
                            source,
                            address,
                            path,
                            value,
                            stamp * 1_000_000 if stamp else _payload_ns(message, received_ns),
                            good,
                        )
                    )
                    continue
            elif code == 3:
                value = getattr(metric, field_name)
                if value or not metric.is_null:
                    if value >= 0x8000_0000:
                        value -= 0x1_0000_0000
                    stamp = metric.timestamp
                    append(
                        make(
                            source,
                            address,
                            path,
                            value,
                            stamp * 1_000_000 if stamp else _payload_ns(message, received_ns),
                            good,
                        )
                    )
                    continue
            elif code == 4:
                continue
            self._decode_one(
                (code, field_name, path, address),
                metric,
                _payload_ns(message, received_ns),
                out,
                nulls,
            )
        if nulls:
            self._nulls(nulls, out)
        if unknown:
            self._unknown_metrics(node, topic, unknown)

    def _handle_other(
        self,
        kind: str,
        device: str,
        topic: str,
        node: _Node,
        scope: _Scope,
        message: spb.Payload,
        received_ns: int,
        out: list[Sample],
    ) -> None:
        """Births, deaths, DATA by name, DATA that is not in order (seq, birth)."""
        if kind == "NBIRTH":
            self._node_birth(node, message, received_ns, out)
            return
        if kind == "NDEATH":
            self._node_death(node, message)
            return
        where = f"{node.group}/{node.edge_node}"
        if node.seq is None:
            self.stats.data_before_birth += 1
            self._request_rebirth(node, f"{kind} from {where} before its NBIRTH")
            return
        self._check_seq(node, message.seq, kind)
        if kind == "NDATA":
            self._data(node, scope, message, topic, received_ns, out)
        elif kind == "DBIRTH":
            self._birth(node, scope, message, received_ns, out)
        elif kind == "DDATA":
            if not scope.born:
                self.stats.data_before_birth += 1
                self._request_rebirth(node, f"DDATA from {where}/{device} before its DBIRTH")
                return
            self._data(node, scope, message, topic, received_ns, out)
        else:  # DDEATH
            if scope.born:
                scope.born = scope.fast = False
                self.stats.deaths += 1
                self._mark_stale(scope.paths)

    def _check_seq(self, node: _Node, seq: int, kind: str) -> None:
        expected = ((node.seq or 0) + 1) % 256
        node.seq = seq % 256
        if seq != expected:
            self.stats.seq_gaps += 1
            self._request_rebirth(
                node,
                f"sequence gap from {node.group}/{node.edge_node}: {kind} has seq {seq}, "
                f"expected {expected}",
            )

    def _node_birth(
        self, node: _Node, message: spb.Payload, received_ns: int, out: list[Sample]
    ) -> None:
        bd_seq: int | None = None
        for metric in message.metrics:
            if metric.name == spb.BD_SEQ:
                bd_seq = int(metric.long_value or metric.int_value)
                break
        node.bd_seq = bd_seq
        node.seq = message.seq % 256
        node.rebirth_requested_at = None
        for scope in node.devices.values():
            scope.born = scope.fast = False  # an NBIRTH is followed by fresh DBIRTHs
        self._birth(node, node.own, message, received_ns, out)

    def _node_death(self, node: _Node, message: spb.Payload) -> None:
        bd_seq: int | None = None
        for metric in message.metrics:
            if metric.name == spb.BD_SEQ:
                bd_seq = int(metric.long_value or metric.int_value)
                break
        if node.seq is None or (
            bd_seq is not None and node.bd_seq is not None and bd_seq != node.bd_seq
        ):
            # The will of an older session (its bdSeq is not the current birth's): ignore.
            self.stats.stale_deaths_ignored += 1
            return
        self.stats.deaths += 1
        paths = node.all_paths()
        self._forget_births(node)
        self._mark_stale(paths)

    @staticmethod
    def _forget_births(node: _Node) -> None:
        node.seq = None
        node.own.born = node.own.fast = False
        for scope in node.devices.values():
            scope.born = scope.fast = False

    def _birth(
        self,
        node: _Node,
        scope: _Scope,
        message: spb.Payload,
        received_ns: int,
        out: list[Sample],
    ) -> None:
        self.stats.births += 1
        scope.by_alias = {}
        scope.by_name = {}
        scope.paths = []
        with_alias = 0
        for metric in message.metrics:
            name = metric.name
            if not name:
                continue
            properties = spb.properties_of(metric)
            alias = metric.alias if metric.HasField("alias") else None
            address = f"{node.group}/{node.edge_node}/{scope.device}/{name}"
            self._catalog[address] = MetricInfo(
                group=node.group,
                edge_node=node.edge_node,
                device=scope.device,
                metric=name,
                datatype=spb.datatype_name(metric.datatype),
                alias=alias,
                unit=_unit_of(properties),
                properties=properties,
            )
            binding = self._bind(node, scope, metric, address)
            if binding is None:
                continue
            self._bindings[address] = binding
            entry = _entry(binding)
            scope.by_name[name] = entry
            if alias is not None:
                scope.by_alias[alias] = entry
                with_alias += 1
            if binding.path is not None:
                scope.paths.append(binding.path)
        scope.use_alias = with_alias > 0
        scope.born = True
        scope.fast = scope.use_alias
        # A birth carries the current values: decode them like DATA (by name).
        self._decode_metrics(scope, message, received_ns, out)

    def _bind(
        self, node: _Node, scope: _Scope, metric: spb.Metric, address: str
    ) -> _Binding | None:
        datatype = metric.datatype
        reader = spb.reader_for(datatype)
        tag, path = self._route(node, scope.device, metric.name)
        if reader is None:
            if tag is not None or metric.name != spb.BD_SEQ:
                self._unsupported(address, spb.datatype_name(datatype), mapped=tag is not None)
            return _Binding(None, address, "", 0, True, None, None)
        fast = tag is None or (
            tag.data_type == "auto" and tag.scale == 1.0 and tag.offset == 0.0 and not tag.deadband
        )
        deadband = Deadband(tag.deadband) if tag is not None and tag.deadband else None
        return _Binding(path, address, reader.field, reader.kind, fast, tag, deadband)

    def _route(
        self, node: _Node, device: str, metric: str
    ) -> tuple[SparkplugTag | None, str | None]:
        scope_text = f"{node.group}/{node.edge_node}/{device}"
        for route in self._routes.get(metric, ()):
            if route.group != node.group or (route.device_wildcard and not device):
                continue
            captures = route.pattern.match(scope_text)
            if captures is None:
                continue
            try:
                path = route.pattern.path_for(captures)
            except ValueError as err:
                self._malformed(f"{scope_text}/{metric}", str(err))
                continue
            self._path_tags.setdefault(path, route.tag)
            return route.tag, path
        return None, None

    def _unsupported(self, address: str, datatype: str, mapped: bool) -> None:
        if address in self._unsupported_seen:
            return
        self._unsupported_seen.add(address)
        self.stats.unsupported += 1
        self._problems.note(
            "UnsupportedMetric",
            f"Sparkplug metric {address} has data type {datatype}, which has no twin value"
            + (" (it is in the tag map)" if mapped else ""),
            {"address": address, "datatype": datatype},
        )

    def _data(
        self,
        node: _Node,
        scope: _Scope,
        message: spb.Payload,
        topic: str,
        received_ns: int,
        out: list[Sample],
    ) -> None:
        unknown = self._decode_metrics(scope, message, received_ns, out)
        if unknown:
            self._unknown_metrics(node, topic, unknown)

    def _unknown_metrics(self, node: _Node, topic: str, unknown: list[int | str]) -> None:
        if unknown:
            self.stats.unknown_aliases += len(unknown)
            self._request_rebirth(
                node,
                f"{topic}: unknown metric alias/name {', '.join(map(str, unknown[:5]))}",
            )

    def _decode_metrics(
        self,
        scope: _Scope,
        message: spb.Payload,
        received_ns: int,
        out: list[Sample],
    ) -> list[int | str] | None:
        """Append the samples of ``message``'s metrics to ``out``; returns the unknown ones."""
        payload_ns = message.timestamp * 1_000_000 or received_ns
        by_name = scope.by_name
        unknown: list[int | str] | None = None
        nulls: list[str] = []
        for metric in message.metrics:
            entry = by_name.get(metric.name)
            if entry is None:
                unknown = [*(unknown or ()), metric.name]
            else:
                self._decode_one(entry, metric, payload_ns, out, nulls)
        if nulls:
            self._nulls(nulls, out)
        return unknown

    def _decode_one(
        self,
        entry: _Entry,
        metric: spb.Metric,
        payload_ns: int,
        out: list[Sample],
        nulls: list[str],
    ) -> None:
        """One metric, the general way."""
        code, field_name, path, address = entry
        if code == _SKIP:
            return
        binding = self._bindings[address]
        value = getattr(metric, field_name)
        if not value and metric.is_null:
            nulls.append(path)
            return
        timestamp_ns = metric.timestamp * 1_000_000 or payload_ns
        if binding.kind == spb.EITHER and not value:
            value = metric.long_value
        try:
            value = self._finish(binding, value)
        except (_Rejected, ValueError, OverflowError) as err:
            self._malformed(address, str(err))
            return
        deadband = binding.deadband
        if deadband is not None and not deadband.passes(path, value, timestamp_ns):
            return
        out.append(make_sample(self._name, address, path, value, timestamp_ns, Quality.GOOD))

    def _nulls(self, paths: list[str], out: list[Sample]) -> None:
        """Null metrics: their paths get BAD quality (with the last value), after ``out``."""
        self.stats.nulls += len(paths)
        self._emit(out[:])
        out.clear()
        self._mark_stale(list(paths), Quality.BAD)
        paths.clear()

    @staticmethod
    def _finish(binding: _Binding, raw: SampleValue) -> SampleValue:
        value = spb.finish(binding.kind, raw)
        tag = binding.tag
        if tag is None:
            return value
        wanted = tag.data_type
        if wanted == "float":
            value = _as_float(value)
        elif wanted == "int":
            value = _as_int(value)
        elif wanted == "bool":
            value = _as_bool(value)
        elif wanted == "str":
            value = str(value)
        if (tag.scale != 1.0 or tag.offset != 0.0) and type(value) in (int, float):
            value = float(value) * tag.scale + tag.offset
        return value

    def _request_rebirth(self, node: _Node, reason: str) -> None:
        now = time.monotonic()
        last = node.rebirth_requested_at
        if last is not None and now - last < self.settings.rebirth_interval_s:
            return
        node.rebirth_requested_at = now
        client = self._client
        if client is None or not client.is_connected():
            return
        topic = f"{NAMESPACE}/{node.group}/NCMD/{node.edge_node}"
        client.publish(topic, spb.rebirth_request(), qos=0)
        self.stats.rebirth_requests += 1
        self._log.info("sparkplug %s: rebirth request to %s (%s)", self._name, topic, reason)
        self._problems.note(
            "SparkplugRebirth",
            f"asked {node.group}/{node.edge_node} for a rebirth: {reason}",
            {"group": node.group, "edge_node": node.edge_node},
            "info",
        )


def _payload_ns(message: spb.Payload, received_ns: int) -> int:
    """The payload's timestamp (for metrics without their own), else the receive time."""
    stamp: int = message.timestamp
    return stamp * 1_000_000 if stamp else received_ns


def _unit_of(properties: dict[str, object]) -> str:
    for key in ("engUnit", "EngUnit", "engineeringUnits", "Engineering Units", "unit", "units"):
        value = properties.get(key)
        if isinstance(value, str):
            return value
    return ""


def _as_float(value: SampleValue) -> float:
    if isinstance(value, str):
        raise _Rejected(f"expected a number, got the text {value[:40]!r}")
    return float(value)


def _as_int(value: SampleValue) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise _Rejected(f"expected an integer, got {value!r}")
    if isinstance(value, str):
        raise _Rejected(f"expected an integer, got the text {value[:40]!r}")
    return int(value)


def _as_bool(value: SampleValue) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    raise _Rejected(f"expected a boolean, got {value!r}")
