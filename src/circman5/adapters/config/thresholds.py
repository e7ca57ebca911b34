"""Parameter thresholds: the spec's ``[min, max]`` range form and the rule form.

Accepted forms for each ``PARAMETER_THRESHOLDS`` entry (key: a dotted twin path)::

    "production_line.temperature": [18.0, 27.0]
    "production_line.temperature": {"value": 25.0, "comparison": "greater_than",
                                    "severity": "warning", "deadband": 0.2}
    "production_line.temperature": {"min": 18.0, "max": 27.0, "severity": "error",
                                    "unit": "°C", "decimals": 1}

All three normalize to a :class:`ThresholdRule`. ``unit`` and ``decimals`` (rule forms only) set
how messages show values; without a unit the twin takes the tag map's unit of the path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from circman5.quantities import decimals_for, format_quantity

Severity = Literal["info", "warning", "error", "critical"]
Comparison = Literal["greater_than", "less_than", ">", "<"]


class ThresholdRuleForm(BaseModel):
    """``{"value": 25.0, "comparison": "greater_than", "severity": "warning"}``."""

    model_config = ConfigDict(extra="forbid")

    value: float = Field(allow_inf_nan=False)
    comparison: Comparison
    severity: Severity = "warning"
    deadband: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    unit: str = ""
    decimals: Annotated[int, Field(ge=0, le=9)] | None = None


class ThresholdRangeForm(BaseModel):
    """``{"min": 18.0, "max": 27.0, "severity": "warning"}`` (either bound may be left out)."""

    model_config = ConfigDict(extra="forbid")

    min: float | None = Field(default=None, allow_inf_nan=False)
    max: float | None = Field(default=None, allow_inf_nan=False)
    severity: Severity = "warning"
    deadband: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    unit: str = ""
    decimals: Annotated[int, Field(ge=0, le=9)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdRangeForm:
        if self.min is None and self.max is None:
            raise ValueError("a range needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        return self


def _check_pair(value: list[float]) -> list[float]:
    if len(value) != 2:
        raise ValueError(f"a range is [min, max], got {len(value)} values")
    low, high = value
    if low > high:
        raise ValueError(f"min {low} > max {high}")
    return value


ThresholdPair = Annotated[
    list[Annotated[float, Field(allow_inf_nan=False)]],
    Field(min_length=2, max_length=2),
    AfterValidator(_check_pair),
]
ThresholdEntry = ThresholdPair | ThresholdRuleForm | ThresholdRangeForm


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """A normalized limit check on one twin path.

    A value above ``high`` or below ``low`` is a breach. An active alarm clears only once the
    value is back inside by at least ``deadband`` (hysteresis against alarm floods).
    """

    path: str
    low: float | None
    high: float | None
    severity: Severity = "warning"
    deadband: float = 0.0
    unit: str = ""
    """The unit shown with values in messages (from the rule, else from the tag map)."""
    decimals: int | None = None
    """Decimals shown in messages; None: four significant digits of the limit."""

    @property
    def shown_decimals(self) -> int:
        """Decimals of values in messages: the rule's, else four significant digits of the limit."""
        if self.decimals is not None:
            return self.decimals
        return decimals_for(self.high if self.high is not None else self.low)

    def format(self, value: float) -> str:
        """``value`` as messages show it: ``27.02 °C``."""
        return format_quantity(value, self.unit, self.shown_decimals)

    def breach(self, value: float) -> tuple[Literal["high", "low"], float] | None:
        """Which limit ``value`` breaks, if any."""
        if self.high is not None and value > self.high:
            return "high", self.high
        if self.low is not None and value < self.low:
            return "low", self.low
        return None

    def cleared(self, side: Literal["high", "low"], value: float) -> bool:
        """Whether an alarm on ``side`` clears at ``value`` (inside by the deadband)."""
        if side == "high":
            assert self.high is not None
            return value <= self.high - self.deadband
        assert self.low is not None
        return value >= self.low + self.deadband


def normalize_threshold(
    path: str, entry: ThresholdEntry | list[float], default_deadband_fraction: float = 0.0
) -> ThresholdRule:
    """Turn any accepted form into a :class:`ThresholdRule`."""
    low: float | None
    high: float | None
    severity: Severity = "warning"
    deadband: float | None = None
    unit = ""
    decimals: int | None = None
    if isinstance(entry, list):
        low, high = _check_pair(entry)
    elif isinstance(entry, ThresholdRuleForm):
        severity, deadband = entry.severity, entry.deadband
        unit, decimals = entry.unit, entry.decimals
        if entry.comparison in ("greater_than", ">"):
            low, high = None, entry.value
        else:
            low, high = entry.value, None
    else:
        low, high, severity, deadband = entry.min, entry.max, entry.severity, entry.deadband
        unit, decimals = entry.unit, entry.decimals
    if deadband is None:
        if low is not None and high is not None:
            span = high - low
        else:
            span = abs(high if high is not None else low or 0.0)
        deadband = span * default_deadband_fraction
    if not math.isfinite(deadband):
        raise ValueError(f"{path}: deadband must be finite")
    return ThresholdRule(
        path=path,
        low=low,
        high=high,
        severity=severity,
        deadband=deadband,
        unit=unit,
        decimals=decimals,
    )
