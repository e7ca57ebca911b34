"""The edge node's metrics: names to aliases and types, and the birth and death payloads.

A :class:`MetricTable` gives every published name a metric once (the next alias, the Sparkplug
type of its value: ``Boolean``, ``Int64``, ``Double``, ``String``, its device with
``devices = "sections"``, its unit) and keeps the latest value of each, so that a birth can be
built at any time. Aliases stay the same for the life of the process; a value that no longer
fits its metric's type changes the type at the next birth (an ``Int64`` that gets 2.5 becomes a
``Double``, never the other way).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from circman5.connectors.sparkplug import payload as spb
from circman5.samples import SampleValue

__all__ = [
    "MetricDefinition",
    "MetricTable",
    "birth_payloads",
    "datatype_of",
    "death_payload",
    "fits",
    "set_value",
]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
U64: Final = 0xFFFF_FFFF_FFFF_FFFF


@dataclass(slots=True)
class MetricDefinition:
    name: str  # the full name given to update() (the twin path)
    device: str  # "" for a node metric
    metric: str  # the metric name in its birth
    alias: int
    datatype: int
    unit: str
    published: SampleValue | None = None


def datatype_of(value: SampleValue, current: int | None = None) -> int | None:
    """The Sparkplug type a value is published as (None: it has no Sparkplug form)."""
    if isinstance(value, bool):
        return spb.BOOLEAN
    if isinstance(value, int):
        if current == spb.DOUBLE or not INT64_MIN <= value <= INT64_MAX:
            return spb.DOUBLE
        return spb.INT64
    if isinstance(value, float):
        return spb.DOUBLE if math.isfinite(value) else None
    if isinstance(value, str):
        return spb.STRING
    return None


def fits(datatype: int, value: SampleValue) -> bool:
    """Whether ``value`` can be published as a metric of ``datatype`` as it is."""
    if datatype == spb.DOUBLE:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if datatype == spb.INT64:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and INT64_MIN <= value <= INT64_MAX
        )
    if datatype == spb.BOOLEAN:
        return isinstance(value, bool)
    return isinstance(value, str)


def set_value(metric: spb.Metric, datatype: int, value: SampleValue) -> None:
    if datatype == spb.DOUBLE:
        metric.double_value = float(value)
    elif datatype == spb.INT64:
        metric.long_value = int(value) & U64
    elif datatype == spb.BOOLEAN:
        metric.boolean_value = bool(value)
    else:
        metric.string_value = str(value)


class MetricTable:
    """Every published name's metric and latest value (see the module docstring)."""

    def __init__(self, *, sections: bool, units: Mapping[str, str], max_metrics: int) -> None:
        self.sections = sections
        self.units = dict(units)
        self.max_metrics = max_metrics
        self.metrics: dict[str, MetricDefinition] = {}
        self.latest: dict[str, SampleValue] = {}
        self.unpublished: set[str] = set()  # beyond max_metrics
        self._by_scope: dict[tuple[str, str], MetricDefinition] = {}
        self._by_alias: dict[int, MetricDefinition] = {}
        self._next_alias = 1

    def scope_of(self, name: str) -> tuple[str, str]:
        """(device, metric name) of a name: the section and the rest with devices per section."""
        if self.sections:
            section, _, rest = name.partition(".")
            if rest:
                return section, rest
        return "", name

    def define(self, over_limit: Callable[[str], None]) -> None:
        """A metric for every latest value without one; types follow the values."""
        for name, value in self.latest.items():
            known = self.metrics.get(name)
            if known is not None:
                if not fits(known.datatype, value):
                    known.datatype = datatype_of(value, known.datatype) or known.datatype
                continue
            if name in self.unpublished:
                continue
            if len(self.metrics) >= self.max_metrics:
                self.unpublished.add(name)
                over_limit(name)
                continue
            datatype = datatype_of(value)
            if datatype is None:
                continue
            device, metric = self.scope_of(name)
            defined = MetricDefinition(
                name, device, metric, self._next_alias, datatype, self.units.get(name, "")
            )
            self._next_alias += 1
            self.metrics[name] = defined
            self._by_scope[(device, metric)] = defined
            self._by_alias[defined.alias] = defined

    def by_name(self, device: str, metric: str) -> MetricDefinition | None:
        return self._by_scope.get((device, metric))

    def by_alias(self, device: str, alias: int) -> MetricDefinition | None:
        found = self._by_alias.get(alias)
        return found if found is not None and found.device == device else None


def death_payload(bd_seq: int, now_ms: int) -> bytes:
    """``NDEATH``: the ``bdSeq`` of the session it ends."""
    payload = spb.Payload(timestamp=now_ms)
    metric = payload.metrics.add()
    metric.name = spb.BD_SEQ
    metric.datatype = spb.INT64
    metric.long_value = bd_seq
    return payload.SerializeToString()


def birth_payloads(
    table: MetricTable, bd_seq: int, now_ms: int
) -> tuple[spb.Payload, dict[str, spb.Payload]]:
    """``NBIRTH`` (``bdSeq``, ``Node Control/Rebirth``, the node metrics) and one ``DBIRTH``
    payload per device, without ``seq`` (the caller numbers them in publishing order). Marks
    every value as published."""
    node = spb.Payload(timestamp=now_ms)
    bd = node.metrics.add()
    bd.name, bd.datatype, bd.long_value, bd.timestamp = spb.BD_SEQ, spb.INT64, bd_seq, now_ms
    rebirth = node.metrics.add()
    rebirth.name, rebirth.datatype, rebirth.boolean_value = spb.REBIRTH, spb.BOOLEAN, False
    rebirth.timestamp = now_ms
    devices: dict[str, spb.Payload] = {}
    for defined in table.metrics.values():
        if defined.device:
            target = devices.get(defined.device)
            if target is None:
                target = devices[defined.device] = spb.Payload(timestamp=now_ms)
        else:
            target = node
        value = table.latest[defined.name]
        metric = target.metrics.add()
        metric.name = defined.metric
        metric.alias = defined.alias
        metric.datatype = defined.datatype
        metric.timestamp = now_ms
        set_value(metric, defined.datatype, value)
        if defined.unit:
            props = metric.properties
            props.keys.append("engUnit")
            unit = props.values.add()
            unit.type = spb.STRING
            unit.string_value = defined.unit
        defined.published = value
    return node, devices
