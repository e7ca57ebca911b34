"""The carbon footprint of each finished batch, as a KPI and an event.

The service wires :meth:`BatchFootprint.on_batch_end` to the MES batch-end topic, ``write_kpi``
to the time-series sink and ``publish`` to the event manager. A batch is a mapping::

    {
        "batch_id": "B-2025-0042",
        "modules_produced": 120,
        "materials": {"silicon_wafer": {"consumption": 60.0, "waste": 1.8, "recycled": 1.5}, ...},
        "energy_kwh": 310.0,                 # also accepted: "energy_consumption"
        "timestamp": "2025-02-24T14:30:22Z", # optional (ISO 8601 or ns since the epoch)
        "line_id": "line-1",                 # optional, becomes a tag
    }

The footprint is cradle-to-gate plus end of life, with the spec's formulas
(:class:`~.lca_core.LCAAnalyzer`): ``total = manufacturing + end of life`` (the use phase
depends on where the modules are installed, not on the batch); the recycling credit is reported
beside it (``net = total + credit``). The end-of-life recycling rate of a material is its
recycled / waste ratio in the batch (``LCA_DEFAULTS.default_recycling_rate`` without waste).

KPI ``batch_footprint`` fields (kg CO2-eq unless named): ``manufacturing``, ``end_of_life``,
``recycling_benefit``, ``total``, ``net``, ``per_module``, ``energy_kwh``, ``modules_produced``,
``material_kg``, ``waste_kg``, ``recycled_kg``, ``unknown_materials`` (count); tags
``batch_id`` (and ``line_id``). The event is a PROCESS event from source ``lca``, INFO, or
WARNING when a material had no impact factor.

Bad input (house rule 3) is counted in ``rejected``, logged once per kind of problem, published
as an ``ErrorEvent`` and dropped: ``on_batch_end`` then returns None and never raises for it.
Errors of the injected callbacks propagate.
"""

from __future__ import annotations

import datetime
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any, Protocol

from circman5.errors import InvalidInputError
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    ErrorEvent,
    Event,
    EventCategory,
    EventSeverity,
)
from circman5.manufacturing.lifecycle.lca_core import LCAAnalyzer

logger = logging.getLogger(__name__)

__all__ = ["BatchFootprint", "FootprintResult", "KpiWriter"]

MEASUREMENT = "batch_footprint"
SOURCE = "lca"


class KpiWriter(Protocol):
    def __call__(
        self,
        measurement: str,
        fields: dict[str, float],
        tags: dict[str, str],
        timestamp_ns: int,
    ) -> None: ...


@dataclass(frozen=True)
class FootprintResult:
    """The footprint of one batch (kg CO2-eq)."""

    batch_id: str
    timestamp_ns: int
    fields: dict[str, float]
    tags: dict[str, str]
    unknown_materials: tuple[str, ...]
    event: Event


def _amount(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidInputError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise InvalidInputError(f"{name} must be a finite, non-negative number, got {value!r}")
    return number


def _timestamp_ns(value: Any) -> int:
    if value is None:
        return time.time_ns()
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise InvalidInputError("timestamp must not be negative")
        return value
    if isinstance(value, str):
        try:
            moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as err:
            raise InvalidInputError(f"timestamp {value!r} is not ISO 8601") from err
        if moment.tzinfo is None:
            moment = moment.astimezone()
        return int(moment.timestamp() * 1_000_000) * 1000
    raise InvalidInputError(f"timestamp must be ISO 8601 text or ns since the epoch, got {value!r}")


class BatchFootprint:
    """Computes each batch's carbon footprint; writes it as a KPI and publishes an event.

    ``write_kpi(measurement, fields, tags, timestamp_ns)`` and ``publish(event)`` are injected.
    ``analyzer``: the :class:`LCAAnalyzer` (default: on the configured impact factors).
    Thread-safe; each call is a few tens of microseconds of arithmetic.
    """

    def __init__(
        self,
        write_kpi: KpiWriter,
        publish: Callable[[Event], None],
        analyzer: LCAAnalyzer | None = None,
    ) -> None:
        self.write_kpi = write_kpi
        self.publish = publish
        self.analyzer = analyzer if analyzer is not None else LCAAnalyzer()
        self.processed = 0
        self.rejected = 0
        self._reported: set[str] = set()
        self._lock = threading.Lock()

    def compute(self, batch: Mapping[str, Any]) -> FootprintResult:
        """The footprint of ``batch`` without writing or publishing (bad input raises)."""
        if not isinstance(batch, Mapping):
            raise InvalidInputError("a batch must be a mapping")
        batch_id = batch.get("batch_id")
        if not isinstance(batch_id, str) or not batch_id:
            raise InvalidInputError("batch_id must be a non-empty string")
        modules = _amount("modules_produced", batch.get("modules_produced", 0))
        energy_value = batch.get("energy_kwh", batch.get("energy_consumption", 0.0))
        energy = _amount("energy_kwh", energy_value)
        materials = batch.get("materials") or {}
        if not isinstance(materials, Mapping):
            raise InvalidInputError("materials must map material names to flows")
        consumption: dict[str, float] = {}
        rates: dict[str, float] = {}
        waste_total = recycled_total = 0.0
        default_rate = self.analyzer.defaults.default_recycling_rate
        for name, flows in materials.items():
            if not isinstance(flows, Mapping):
                raise InvalidInputError(f"materials.{name} must map consumption/waste/recycled")
            used = _amount(f"materials.{name}.consumption", flows.get("consumption", 0.0))
            waste = _amount(f"materials.{name}.waste", flows.get("waste", 0.0))
            recycled = _amount(f"materials.{name}.recycled", flows.get("recycled", 0.0))
            consumption[str(name)] = used
            rates[str(name)] = min(recycled / waste, 1.0) if waste > 0 else default_rate
            waste_total += waste
            recycled_total += recycled
        timestamp_ns = _timestamp_ns(batch.get("timestamp"))
        a = self.analyzer
        manufacturing = a.calculate_manufacturing_impact(consumption, energy)
        end_of_life = a.calculate_end_of_life_impact(
            consumption, rates, a.defaults.transport_distance_km
        )
        benefit = a.calculate_recycling_benefit(consumption, rates)
        total = manufacturing + end_of_life
        unknown = tuple(
            sorted(m for m in consumption if m not in a.settings.MATERIAL_IMPACT_FACTORS)
        )
        fields = {
            "manufacturing": manufacturing,
            "end_of_life": end_of_life,
            "recycling_benefit": benefit,
            "total": total,
            "net": total + benefit,
            "per_module": total / modules if modules > 0 else 0.0,
            "energy_kwh": energy,
            "modules_produced": modules,
            "material_kg": sum(consumption.values()),
            "waste_kg": waste_total,
            "recycled_kg": recycled_total,
            "unknown_materials": float(len(unknown)),
        }
        tags = {"batch_id": batch_id}
        line = batch.get("line_id")
        if isinstance(line, str) and line:
            tags["line_id"] = line
        message = f"Batch {batch_id}: carbon footprint {total:,.1f} kg CO2-eq" + (
            f" ({fields['per_module']:,.2f} per module)" if modules > 0 else ""
        )
        details: dict[str, Any] = {
            "batch_id": batch_id,
            "footprint_kg_co2e": fields,
            "unknown_materials": list(unknown),
        }
        if unknown:
            message += f"; no impact factor for {', '.join(unknown)}"
        event = Event(
            category=EventCategory.PROCESS,
            severity=EventSeverity.WARNING if unknown else EventSeverity.INFO,
            source=SOURCE,
            message=message,
            details=details,
        )
        return FootprintResult(batch_id, timestamp_ns, fields, tags, unknown, event)

    def on_batch_end(self, batch: Mapping[str, Any]) -> FootprintResult | None:
        """Compute the batch's footprint, write the KPI, publish the event (see module doc)."""
        try:
            result = self.compute(batch)
        except InvalidInputError as err:
            self._reject(batch, err)
            return None
        self.write_kpi(MEASUREMENT, dict(result.fields), dict(result.tags), result.timestamp_ns)
        self.publish(result.event)
        with self._lock:
            self.processed += 1
        return result

    def _reject(self, batch: Any, err: InvalidInputError) -> None:
        reason = str(err)
        kind = reason.split(" ", 1)[0]
        with self._lock:
            self.rejected += 1
            first = kind not in self._reported
            self._reported.add(kind)
        if first:
            logger.warning("batch-end message dropped: %s (further ones counted only)", reason)
        batch_id = batch.get("batch_id") if isinstance(batch, Mapping) else None
        self.publish(
            ErrorEvent(
                error_type="InvalidBatch",
                error_message=reason,
                severity=EventSeverity.WARNING,
                source=SOURCE,
                details={"batch_id": batch_id if isinstance(batch_id, str) else None},
            )
        )
