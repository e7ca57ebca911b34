"""Threshold messages show values with their unit and a precision suited to the limit."""

from __future__ import annotations

import pytest

from circman5.adapters.config.thresholds import ThresholdRangeForm, normalize_threshold
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import event_manager
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    Event,
    ThresholdClearedEvent,
    ThresholdEvent,
)
from circman5.quantities import decimals_for, format_quantity


@pytest.mark.parametrize(
    ("reference", "decimals"), [(27.0, 2), (1500.0, 0), (0.5, 4), (None, 2), (0.0, 2), (120.0, 1)]
)
def test_decimals_follow_the_size_of_the_limit(reference: float | None, decimals: int) -> None:
    assert decimals_for(reference) == decimals


def test_format_quantity() -> None:
    assert format_quantity(27.022524780733672, "°C", 2) == "27.02 °C"
    assert format_quantity(45.06, "%", 1) == "45.1%"
    assert format_quantity(1234.5, "kW") == "1234 kW"  # four significant digits by default
    assert format_quantity(float("nan"), "kW") == "nan kW"


def test_spec_style_events_keep_the_spec_message() -> None:
    event = ThresholdEvent("temperature", 25.0, 26.5)
    assert event.message == "Threshold breach: temperature exceeded 25.0 with value 26.5"


def test_twin_messages_carry_the_tag_unit_and_a_sensible_precision() -> None:
    published: list[Event] = []
    event_manager.subscribe(published.append)
    twin = DigitalTwin()
    twin.initialize()
    twin.set_units({"production_line.temperature": "°C", "environment.humidity": "%"})
    twin.update({"production_line": {"temperature": 27.022524780733672}})
    twin.update({"production_line": {"temperature": 22.0}})
    breach = next(e for e in published if isinstance(e, ThresholdEvent))
    cleared = next(e for e in published if isinstance(e, ThresholdClearedEvent))
    assert breach.message == (
        "Threshold breach: production_line.temperature exceeded 27.00 °C with value 27.02 °C"
    )
    assert breach.details["actual_value"] == 27.022524780733672  # the number stays exact
    assert breach.details["unit"] == "°C"
    assert (
        cleared.message
        == "production_line.temperature back within limit 27.00 °C with value 22.00 °C"
    )


def test_a_rule_with_its_own_unit_and_decimals_wins_over_the_tag_map() -> None:
    rule = normalize_threshold(
        "line.pressure", ThresholdRangeForm(min=1.0, max=3.0, unit="bar", decimals=3)
    )
    assert rule.format(3.14159) == "3.142 bar"
    twin = DigitalTwin()
    twin.thresholds["line.pressure"] = rule
    twin.set_units({"line.pressure": "kPa"})
    assert twin.thresholds["line.pressure"].unit == "bar"
    low = normalize_threshold("line.flow", [10.0, 20.0])
    twin.thresholds["line.flow"] = low
    twin.set_units({"line.flow": "l/min"})
    assert twin.thresholds["line.flow"].format(9.87654) == "9.88 l/min"


def test_one_numeric_check_for_every_part() -> None:
    from circman5.errors import InvalidInputError
    from circman5.quantities import finite_number, require_finite

    assert finite_number(3) == 3.0 and finite_number(2.5) == 2.5
    assert finite_number(True) is None and finite_number("1") is None
    assert finite_number(float("inf")) is None and finite_number(float("nan")) is None
    assert require_finite("rate", 4) == 4.0
    with pytest.raises(InvalidInputError, match="parameter 'rate' must be a number, got 'x'"):
        require_finite("rate", "x", "parameter ")
    with pytest.raises(InvalidInputError, match="'rate' must be finite"):
        require_finite("rate", float("nan"))
