"""ForecastChecker with the process model only (the statistical forecaster off, every path a
model path): warns before a breach, once per episode, at most every min_interval_s."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from circman5.adapters.config.simulation_parameters import ForecastCheckConfig
from circman5.adapters.config.thresholds import ThresholdRule
from circman5.adapters.services.constants_service import ConstantsService
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    Event,
    EventCategory,
    EventSeverity,
    ForecastEvent,
)
from circman5.manufacturing.digital_twin.simulation.forecast import ForecastChecker
from circman5.manufacturing.digital_twin.simulation.monte_carlo import MonteCarloSummary
from circman5.manufacturing.digital_twin.simulation.simulation_engine import SimulationEngine

MakeState = Callable[..., dict[str, Any]]


class FakeClock:
    """A settable monotonic clock that counts how often it is read."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


class CountingEngine:
    """Wraps the engine, counting Monte Carlo runs."""

    def __init__(self, engine: SimulationEngine) -> None:
        self.engine = engine
        self.runs = 0

    def run_monte_carlo_summary(self, *args: Any, **kwargs: Any) -> MonteCarloSummary:
        self.runs += 1
        return self.engine.run_monte_carlo_summary(*args, **kwargs)


def temperature(state: Mapping[str, Any]) -> float:
    return float(state["production_line"]["temperature"])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def published() -> list[Event]:
    return []


@pytest.fixture
def config() -> ForecastCheckConfig:
    config = ConstantsService().get_digital_twin_model().FORECAST_CHECK
    return config.model_copy(
        update={"statistical": config.statistical.model_copy(update={"enabled": False})}
    )


@pytest.fixture
def counting(engine: SimulationEngine) -> CountingEngine:
    return CountingEngine(engine)


@pytest.fixture
def checker(
    counting: CountingEngine, config: ForecastCheckConfig, published: list[Event], clock: FakeClock
) -> ForecastChecker:
    thresholds = ConstantsService().get_parameter_thresholds()
    return ForecastChecker(
        counting,
        thresholds,
        config,
        published.append,
        clock=clock,
        seed=1,
        model_paths=list(thresholds),
    )


def test_warning_fires_before_the_real_breach_and_only_once(
    engine: SimulationEngine,
    checker: ForecastChecker,
    config: ForecastCheckConfig,
    published: list[Event],
    clock: FakeClock,
    make_state: MakeState,
) -> None:
    # The setpoint is above the 27.0 limit: the line drifts into a breach.
    actual = engine.run_simulation(60, make_state(target_temperature=30.0), seed=7)
    first_breach = next(k for k, s in enumerate(actual) if temperature(s) > 27.0)
    published_at: list[int] = []
    for k, state in enumerate(actual):
        before = len(published)
        checker.maybe_check(state)
        if len(published) > before:
            published_at.append(k)
        clock.now += 1.0  # one step per second; checks every min_interval_s (5 s)

    assert len(published) == 1
    event = published[0]
    assert isinstance(event, ForecastEvent)
    assert published_at[0] < first_breach
    assert temperature(actual[published_at[0]]) < 27.0
    details = event.details
    assert details["parameter"] == "production_line.temperature"
    assert details["threshold"] == 27.0
    assert details["direction"] == "exceed"
    assert details["probability"] >= config.probability_threshold
    assert 1 <= details["steps_ahead"] <= config.horizon_steps
    assert event.category is EventCategory.THRESHOLD
    assert event.severity is EventSeverity.WARNING
    assert details["forecaster"] == "process_model"
    assert details["seconds_ahead"] == details["steps_ahead"] * 1.0  # time_step_s
    assert event.message == (
        f"production_line.temperature predicted to exceed 27.0 in "
        f"{details['seconds_ahead']:.1f} s (p={details['probability']:.2f}, process_model)"
    )
    # the forecast is honest: the real breach comes about steps_ahead steps later
    assert abs((first_breach - published_at[0]) - details["steps_ahead"]) <= 3
    assert checker.active == {("production_line.temperature", "exceed")}


def test_rate_limit_honoured(
    checker: ForecastChecker,
    counting: CountingEngine,
    config: ForecastCheckConfig,
    clock: FakeClock,
    make_state: MakeState,
) -> None:
    state = make_state()
    assert checker.maybe_check(state) is not None
    assert counting.runs == 1
    for _ in range(10):  # up to 0.9 of the interval later
        reads = clock.reads
        assert checker.maybe_check(state) is None
        assert clock.reads == reads + 1  # not due: a single clock read, nothing else
        clock.now += config.min_interval_s / 11
    assert counting.runs == 1
    clock.now += config.min_interval_s / 10
    assert checker.maybe_check(state) is not None
    assert counting.runs == 2
    assert checker.maybe_check(state) is None
    assert counting.runs == 2


def test_no_warning_when_already_in_breach(
    checker: ForecastChecker, published: list[Event], make_state: MakeState
) -> None:
    result = checker.maybe_check(make_state(temperature=28.0, target_temperature=30.0))
    assert result is not None
    assert result.summary.breach["production_line.temperature"].probability == 1.0
    assert published == []
    assert result.forecasts == ()


def test_no_warning_for_a_stable_line(
    checker: ForecastChecker, published: list[Event], make_state: MakeState
) -> None:
    result = checker.check(make_state())
    assert result.forecasts == () and result.published == ()
    assert published == []


def test_warning_again_only_after_the_forecast_cleared(
    checker: ForecastChecker, published: list[Event], make_state: MakeState
) -> None:
    drifting = make_state(target_temperature=30.0)
    stable = make_state()
    assert len(checker.check(drifting).published) == 1
    repeat = checker.check(drifting)
    assert repeat.published == () and len(repeat.forecasts) == 1
    cleared = checker.check(stable)
    assert cleared.cleared == (("production_line.temperature", "exceed"),)
    assert checker.active == frozenset()
    assert len(checker.check(drifting).published) == 1
    assert len(published) == 2


def test_fall_below_direction(
    checker: ForecastChecker, published: list[Event], make_state: MakeState
) -> None:
    checker.check(make_state(target_temperature=12.0))
    assert len(published) == 1
    details = published[0].details
    assert details["direction"] == "fall below"
    assert details["threshold"] == 18.0
    assert "predicted to fall below 18.0" in published[0].message


def test_disabled_check_never_runs(
    counting: CountingEngine, published: list[Event], clock: FakeClock, make_state: MakeState
) -> None:
    config = ForecastCheckConfig(enabled=False)
    checker = ForecastChecker(counting, {}, config, published.append, clock=clock)
    assert checker.maybe_check(make_state(target_temperature=30.0)) is None
    assert counting.runs == 0


def test_publish_errors_propagate_and_the_forecast_is_retried(
    counting: CountingEngine, config: ForecastCheckConfig, make_state: MakeState
) -> None:
    calls: list[Event] = []

    def flaky(event: Event) -> None:
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("event bus down")

    rules = {"production_line.temperature": ThresholdRule("production_line.temperature", 18, 27)}
    checker = ForecastChecker(counting, rules, config, flaky, seed=2, model_paths=list(rules))
    drifting = make_state(target_temperature=30.0)
    with pytest.raises(RuntimeError, match="event bus down"):
        checker.check(drifting)
    assert checker.active == frozenset()
    assert len(checker.check(drifting).published) == 1
    assert len(calls) == 2


async def test_maybe_check_async_runs_in_a_thread(
    checker: ForecastChecker, published: list[Event], make_state: MakeState
) -> None:
    result = await checker.maybe_check_async(make_state(target_temperature=30.0))
    assert result is not None and len(result.published) == 1
    assert await checker.maybe_check_async(make_state(target_temperature=30.0)) is None
    assert len(published) == 1


def test_take_due_then_check_split(
    checker: ForecastChecker, counting: CountingEngine, clock: FakeClock, make_state: MakeState
) -> None:
    assert checker.take_due() is True
    assert checker.take_due() is False  # the slot is reserved at once
    checker.check(make_state())
    assert counting.runs == 1
    checker.reset()
    assert checker.take_due() is True


def test_unusable_state_skips_the_check_without_stopping_ingestion(
    checker: ForecastChecker,
    published: list[Event],
    clock: FakeClock,
    config: ForecastCheckConfig,
    make_state: MakeState,
) -> None:
    broken = make_state(temperature=None)
    assert checker.maybe_check(broken) is None
    assert checker.failed_checks == 1 and checker.checks == 0
    with pytest.raises(ValueError, match="temperature"):
        checker.check(broken)
    clock.now += config.min_interval_s
    assert checker.maybe_check(make_state(target_temperature=30.0)) is not None
    assert checker.checks == 1 and len(published) == 1


def test_empty_state_before_the_first_update(
    checker: ForecastChecker, published: list[Event]
) -> None:
    result = checker.maybe_check({})
    assert result is not None
    assert result.forecasts == () and result.summary.paths == ()
    assert published == []
