"""The statistical forecaster: warns ahead of ramps, drifts, oscillations, walks and steps, stays
quiet on noisy plateaus, copes with irregular sampling and junk values, one warning per approach.

Signals are replayed in simulated time (``check(state, now=t)``), so nothing here sleeps.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from circman5.adapters.config.simulation_parameters import (
    ForecastCheckConfig,
    StatisticalForecastConfig,
)
from circman5.adapters.config.thresholds import ThresholdRule
from circman5.adapters.services.constants_service import ConstantsService
from circman5.errors import ConfigError
from circman5.manufacturing.digital_twin.core.state_manager import StateManager
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    Event,
    ForecastEvent,
)
from circman5.manufacturing.digital_twin.simulation.forecast import PROCESS_MODEL, ForecastChecker
from circman5.manufacturing.digital_twin.simulation.simulation_engine import SimulationEngine

PATH = "line.temperature"
RULE = ThresholdRule(PATH, 18.0, 27.0, deadband=0.09)
Signal = Callable[[float], float]


def make_checker(published: list[Event], **statistical: object) -> ForecastChecker:
    config = ForecastCheckConfig(statistical=StatisticalForecastConfig(**statistical))
    return ForecastChecker(SimulationEngine(None), {PATH: RULE}, config, published.append)


def replay(
    checker: ForecastChecker,
    published: list[Event],
    signal: Signal,
    seconds: float,
    seed: int = 1,
    noise: float = 0.1,
) -> tuple[list[tuple[float, ForecastEvent]], list[float]]:
    """Samples every 0.7-1.3 s, a check every second: (warnings with their time, breach times)."""
    rng = np.random.default_rng(seed)
    t, next_check, active = 0.0, 1.0, False
    warnings: list[tuple[float, ForecastEvent]] = []
    breaches: list[float] = []
    while t < seconds:
        t += float(rng.uniform(0.7, 1.3))
        while next_check <= t:
            before = len(published)
            checker.check({}, now=next_check)
            warnings += [
                (next_check, e) for e in published[before:] if isinstance(e, ForecastEvent)
            ]
            next_check += 1.0
        value = signal(t) + float(rng.normal(0.0, noise))
        checker.observe(PATH, t, value)
        if not active and value > RULE.high:  # type: ignore[operator]
            active = True
            breaches.append(t)
        elif active and value < 26.0:
            active = False
    return warnings, breaches


def assert_each_breach_warned_ahead(
    warnings: list[tuple[float, ForecastEvent]], breaches: list[float], lead_s: float = 2.0
) -> None:
    exceed = [(t, e) for t, e in warnings if e.details["direction"] == "exceed"]
    assert breaches, "the signal never breached"
    previous = -math.inf
    for breach in breaches:
        ahead = [(t, e) for t, e in exceed if previous < t <= breach - lead_s]
        assert ahead, f"no warning {lead_s} s before the breach at {breach:.1f} s"
        _, event = ahead[0]
        assert event.details["seconds_ahead"] > 0
        assert event.details["forecaster"] == "statistical:damped_holt"
        assert event.details["threshold"] == 27.0
        previous = breach


def ramp(slope: float, start: float = 60.0) -> Signal:
    return lambda t: 22.0 + min(max(t - start, 0.0) * slope, 8.0)


@pytest.mark.parametrize("slope", [0.05, 0.3, 1.0])
def test_ramps_of_any_slope_are_warned_ahead(slope: float) -> None:
    published: list[Event] = []
    checker = make_checker(published)
    warnings, breaches = replay(checker, published, ramp(slope), 60 + 8 / slope + 20)
    assert_each_breach_warned_ahead(warnings, breaches)
    assert len([w for w in warnings if w[1].details["direction"] == "exceed"]) == 1


def test_slow_drift_is_warned_ahead() -> None:
    published: list[Event] = []
    checker = make_checker(published)
    warnings, breaches = replay(checker, published, lambda t: 22.0 + 0.005 * t, 1300)
    assert_each_breach_warned_ahead(warnings, breaches)


def test_oscillation_crossing_the_limit_is_warned_at_every_peak() -> None:
    published: list[Event] = []
    checker = make_checker(published)
    wave = lambda t: 24.0 + 4.0 * math.sin(2 * math.pi * t / 120.0)  # noqa: E731
    warnings, breaches = replay(checker, published, wave, 600)
    assert len(breaches) == 5
    assert_each_breach_warned_ahead(warnings, breaches)


def test_step_response_is_warned_ahead() -> None:
    published: list[Event] = []
    checker = make_checker(published)

    def step(t: float) -> float:  # setpoint 22 -> 30 at 60 s, first-order lag of 20 s
        return 22.0 if t < 60 else 30.0 - 8.0 * math.exp(-(t - 60.0) / 20.0)

    warnings, breaches = replay(checker, published, step, 160)
    assert_each_breach_warned_ahead(warnings, breaches)


def test_random_walk_with_drift_is_warned_ahead() -> None:
    rng = np.random.default_rng(5)
    steps = np.cumsum(rng.normal(0.03, 0.1, 400))
    walk = lambda t: 22.0 + float(steps[min(int(t), 399)])  # noqa: E731
    published: list[Event] = []
    checker = make_checker(published)
    warnings, breaches = replay(checker, published, walk, 399, noise=0.0)
    assert_each_breach_warned_ahead(warnings[:1], breaches[:1])


def test_noisy_plateau_that_never_breaches_stays_quiet() -> None:
    published: list[Event] = []
    checker = make_checker(published)
    warnings, breaches = replay(checker, published, lambda t: 25.2, 3600, noise=0.3)
    assert breaches == []
    assert len(warnings) <= 1  # the target: at most one false warning an hour
    assert checker.statistical is not None and checker.statistical.samples(PATH) > 3000


def test_one_warning_per_approach_rearmed_after_it_cleared() -> None:
    published: list[Event] = []
    checker = make_checker(published)

    def two_ramps(t: float) -> float:  # up at 60 s, down at 90 s, up again at 200 s
        up = min(max(t - 60.0, 0.0) * 0.5, 8.0) - min(max(t - 90.0, 0.0) * 0.5, 8.0)
        return 22.0 + up + min(max(t - 200.0, 0.0) * 0.5, 8.0)

    warnings, breaches = replay(checker, published, two_ramps, 240)
    exceed = [t for t, e in warnings if e.details["direction"] == "exceed"]
    assert len(breaches) == 2 and len(exceed) == 2
    assert exceed[0] < breaches[0] < exceed[1] < breaches[1]


def test_irregular_sampling_and_junk_values() -> None:
    published: list[Event] = []
    checker = make_checker(published, hold_after_s=None)  # gaps are unknown, not held values
    forecaster = checker.statistical
    assert forecaster is not None
    assert checker.observe(PATH, 1.0, 22.0)
    for junk in (None, float("nan"), float("inf"), "27.5", True, [1.0]):
        assert not checker.observe(PATH, 2.0, junk)
    assert not checker.observe(PATH, 0.5, 22.0)  # older than the last sample
    assert not checker.observe("not.monitored", 2.0, 22.0)
    assert forecaster.ignored == 7 and forecaster.samples(PATH) == 1
    # bursts and gaps: 0.1 s apart, then 5 s apart; the slope is learned in units per second
    times = [2.0, 2.1, 2.2, 2.3, 7.3, 12.3, 12.4, 12.5, 17.5, 22.5, 22.6, 27.6]
    for t in times:
        checker.observe(PATH, t, 22.0 + 0.1 * t)
    forecast = forecaster.forecast(now=27.6)
    assert forecast.ready[0]
    assert forecast.value_at(0, 10.0) == pytest.approx(22.0 + 0.1 * 37.6, abs=0.3)


def test_forecast_rows_for_the_api() -> None:
    published: list[Event] = []
    checker = make_checker(published)
    for t in range(20):
        checker.observe(PATH, float(t), 22.0 + 0.2 * t)
    (row,) = checker.path_forecasts()
    assert row["path"] == PATH and row["forecaster"] == "statistical:damped_holt"
    assert row["limit_low"] == 18.0 and row["limit_high"] == 27.0
    assert len(row["times_s"]) == len(row["mean"]) == len(row["low"]) == len(row["high"])
    assert all(
        lo <= m <= hi for lo, m, hi in zip(row["low"], row["mean"], row["high"], strict=True)
    )
    assert row["mean"][-1] > 27.0 and row["probability"] >= 0.8
    assert 0 < row["seconds_to_exceed"] < 30
    assert row["now"] == 19.0


def test_the_better_forecaster_decides_on_model_paths() -> None:
    """On a model path the process model decides until its error is measured; against a device
    it does not describe, the statistical forecaster's lower error takes over."""
    path = "production_line.temperature"
    published: list[Event] = []
    rules = {path: ThresholdRule(path, 18.0, 27.0)}
    config = ForecastCheckConfig(min_interval_s=0.0)
    clock = [0.0]
    checker = ForecastChecker(
        SimulationEngine(None),
        rules,
        config,
        published.append,
        clock=lambda: clock[0],
        seed=3,
        model_paths=[path, "not.monitored"],
    )
    assert checker.model_paths == {path}
    assert checker.forecaster_for(path) == PROCESS_MODEL
    state = {
        "timestamp": "2026-01-01T00:00:00+00:00",
        "production_line": {"status": "running", "temperature": 22.0, "target_temperature": 22.5},
    }
    for second in range(60):  # a sawtooth the model (settling at 22.5) does not describe
        value = 18.5 + (second % 20) * 0.4
        state["production_line"]["temperature"] = value
        checker.observe(path, float(second), value)
        clock[0] = float(second)
        checker.check(state, now=float(second))
    errors = checker.recent_errors(path)
    assert errors["statistical:damped_holt"] is not None and errors[PROCESS_MODEL] is not None
    assert errors["statistical:damped_holt"] < errors[PROCESS_MODEL]
    assert checker.forecaster_for(path) == "statistical:damped_holt"


def test_warm_start_from_the_state_history() -> None:
    StateManager._reset_instance()
    try:
        manager = StateManager(history_length=100)
        for second in range(40):
            stamp = f"2026-01-01T00:00:{second:02d}+00:00"
            manager.update_state({"timestamp": stamp, "line": {"temperature": 20.0 + 0.1 * second}})
        published: list[Event] = []
        checker = make_checker(published)
        learned = checker.warm_start([*manager.history_snapshots(), manager.snapshot()])
        assert learned == 40
        forecast = checker.statistical.forecast() if checker.statistical else None
        assert forecast is not None and forecast.ready[0]
        assert forecast.mean[0, -1] > 23.9  # it knows the temperature is rising
    finally:
        StateManager._reset_instance()


@pytest.mark.parametrize(
    ("statistical", "reason"),
    [
        ({"horizon_s": -1}, "greater than 0"),
        ({"probability_threshold": 0.4}, "greater than 0.5"),
        ({"time_constants_s": [[4.0, 1.0]]}, "must not be shorter"),
        ({"method": "prophet"}, "damped_holt"),
        ({"min_history": 1}, "greater than or equal to 3"),
        ({"no_such_key": 1}, "unknown key"),
    ],
)
def test_bad_statistical_settings_fail_at_load(
    tmp_path: Path, statistical: dict[str, object], reason: str
) -> None:
    (tmp_path / "digital_twin.json").write_text(
        json.dumps({"FORECAST_CHECK": {"statistical": statistical}})
    )
    ConstantsService._reset_instance()
    with pytest.raises(ConfigError) as caught:
        ConstantsService(config_dir=tmp_path).get_digital_twin_model()
    message = str(caught.value)
    assert "digital_twin.json" in message
    assert "FORECAST_CHECK.statistical" in message
    assert reason in message


def test_the_settings_example_in_the_docs_loads(tmp_path: Path) -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "forecasting.md"
    block = doc.read_text().split("```json\n", 1)[1].split("```", 1)[0]
    (tmp_path / "digital_twin.json").write_text(block)
    ConstantsService._reset_instance()
    try:
        config = ConstantsService(config_dir=tmp_path).get_digital_twin_model().FORECAST_CHECK
    finally:
        ConstantsService._reset_instance()
    assert config.statistical == StatisticalForecastConfig()  # the example shows the defaults
    assert config.min_interval_s == 5.0


def test_a_silent_path_is_learned_as_holding_its_value() -> None:
    """Devices that report by exception send nothing while a value holds."""
    published: list[Event] = []
    checker = make_checker(published)
    forecaster = checker.statistical
    assert forecaster is not None
    for t in range(10):  # rising at 1 per second, then silent for 20 s
        checker.observe(PATH, float(t), 18.0 + t)
    checker.observe(PATH, 29.0, 27.0)
    assert forecaster.samples(PATH) > 11  # the silence became held samples
    forecast = forecaster.forecast(now=29.0)
    assert forecast.value_at(0, 5.0) < 27.5  # not still extrapolating the old ramp


def test_samples_handed_over_by_the_twin_are_learned_by_the_next_check() -> None:
    """``enqueue`` (the twin's update path) only queues; the check learns, at most one sample
    per MIN_SPACING_S of a path, and always the newest one (a last step is never lost)."""
    published: list[Event] = []
    checker = make_checker(published)
    assert checker.statistical is not None
    for k in range(1000):  # 1,000 updates within 1 s: faster than the forecaster needs
        checker.enqueue(PATH, 100.0 + k * 0.001, 22.0)
    checker.enqueue(PATH, 101.0, 25.0)  # then a step, and silence
    assert checker.statistical.latest_t < 100.0  # nothing learned yet
    learned = checker.learn_pending()
    assert learned <= 25  # about one per MIN_SPACING_S, not 1,001
    assert checker.statistical.latest_t == 101.0  # the newest sample was learned
    assert checker.learn_pending() == 0  # and only once
