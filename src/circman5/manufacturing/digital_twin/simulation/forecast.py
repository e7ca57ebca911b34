"""The forecast check: warn before a threshold is crossed.

After each twin update the caller hands the current state to :meth:`ForecastChecker.maybe_check`.
When the last check is less than ``min_interval_s`` old this costs one clock read and returns
None. Otherwise it runs the vectorized Monte Carlo (``horizon_steps`` x ``iterations`` at
``uncertainty``) from the state and, for each threshold where the probability of a breach within
the horizon reaches ``probability_threshold`` while the current value is still inside the limit,
publishes one :class:`ForecastEvent`::

    production_line.temperature predicted to exceed 27.0 in 12 steps (p=0.83)

A forecast is published once; it is published again only after it cleared (its probability fell
below ``probability_threshold * (1 - clear_hysteresis)``).

To keep the Monte Carlo off the ingestion path, split the two halves: ``take_due()`` (one clock
read, reserves the slot) on the ingestion path and ``check(state)`` in a worker thread, or
``await maybe_check_async(state)``, which does exactly that with ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any, Literal, Protocol

import numpy as np

from circman5.adapters.config.simulation_parameters import ForecastCheckConfig
from circman5.adapters.config.thresholds import ThresholdRule
from circman5.errors import InvalidInputError
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    Event,
    ForecastEvent,
)
from circman5.manufacturing.digital_twin.simulation.monte_carlo import MonteCarloSummary

logger = logging.getLogger(__name__)

__all__ = ["Forecast", "ForecastChecker", "ForecastResult", "SummaryEngine"]

Direction = Literal["exceed", "fall below"]
EVENT_SOURCE = "simulation.forecast"


class SummaryEngine(Protocol):
    """What the checker needs of the :class:`SimulationEngine`."""

    def run_monte_carlo_summary(
        self,
        steps: int | None = ...,
        initial_state: Mapping[str, Any] | None = ...,
        parameters: Mapping[str, Any] | None = ...,
        iterations: int = ...,
        uncertainty: float = ...,
        seed: int | np.random.Generator | None = ...,
        rng: np.random.Generator | None = ...,
        thresholds: Mapping[str, ThresholdRule] | None = ...,
    ) -> MonteCarloSummary: ...


@dataclass(frozen=True)
class Forecast:
    """A predicted breach: ``parameter`` will ``direction`` ``threshold`` in ``steps_ahead``."""

    parameter: str
    direction: Direction
    threshold: float
    probability: float
    steps_ahead: int


@dataclass(frozen=True)
class ForecastResult:
    """The outcome of one check.

    ``forecasts``: every predicted breach (published now or earlier); ``published``: the events
    published by this check; ``cleared``: the ``(parameter, direction)`` forecasts that ended.
    """

    checked_at: float
    forecasts: tuple[Forecast, ...]
    published: tuple[ForecastEvent, ...]
    cleared: tuple[tuple[str, Direction], ...]
    summary: MonteCarloSummary


def _value(state: Mapping[str, Any], path: str) -> float | None:
    node: Any = state
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, Real):
        return None
    number = float(node)
    return number if math.isfinite(number) else None


class ForecastChecker:
    """Rate-limited forecast of threshold breaches, publishing :class:`ForecastEvent`.

    ``engine``: the :class:`SimulationEngine` (anything with ``run_monte_carlo_summary``).
    ``thresholds``: path -> :class:`ThresholdRule`
    (``ConstantsService().get_parameter_thresholds()``).
    ``publish``: called with each new event (e.g. the event manager's ``publish``); its errors
    propagate. ``clock``: seconds, monotonic. ``seed``: for reproducible checks (tests).
    """

    def __init__(
        self,
        engine: SummaryEngine,
        thresholds: Mapping[str, ThresholdRule],
        config: ForecastCheckConfig,
        publish: Callable[[Event], None],
        clock: Callable[[], float] = time.monotonic,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        self.engine = engine
        self.thresholds: dict[str, ThresholdRule] = dict(thresholds)
        self.config = config
        self._publish = publish
        self._clock = clock
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._interval = float(config.min_interval_s)
        self._clear_below = config.probability_threshold * (1.0 - config.clear_hysteresis)
        self._next_due = -math.inf
        self._slot_lock = threading.Lock()
        self._check_lock = threading.Lock()
        self._active: set[tuple[str, Direction]] = set()
        self._failing = False
        #: Completed checks, and checks skipped because the state was unusable.
        self.checks = 0
        self.failed_checks = 0

    # -- rate limit ---------------------------------------------------------------------------
    def take_due(self) -> bool:
        """True (and the next slot reserved) when a check is due: one clock read otherwise."""
        if not self.config.enabled:
            return False
        now = self._clock()
        if now < self._next_due:
            return False
        with self._slot_lock:
            if now < self._next_due:
                return False
            self._next_due = now + self._interval
        return True

    def maybe_check(self, state: Mapping[str, Any]) -> ForecastResult | None:
        """Run :meth:`check` when due, else return None at once.

        A state the model cannot start from (a modelled value that is not a number) skips the
        check: counted in ``failed_checks``, logged once until a check succeeds again, and
        None is returned, so a forecast never stops ingestion.
        """
        if not self.take_due():
            return None
        return self._guarded_check(state)

    async def maybe_check_async(self, state: Mapping[str, Any]) -> ForecastResult | None:
        """:meth:`maybe_check` with the Monte Carlo in a worker thread (``asyncio.to_thread``).

        ``state`` must not change while the check runs (the StateManager's ``snapshot()``
        is never mutated, so it qualifies).
        """
        if not self.take_due():
            return None
        return await asyncio.to_thread(self._guarded_check, state)

    def reset(self) -> None:
        """Forget published forecasts and the rate limit."""
        with self._check_lock, self._slot_lock:
            self._active.clear()
            self._next_due = -math.inf

    @property
    def active(self) -> frozenset[tuple[str, Direction]]:
        """The ``(parameter, direction)`` forecasts published and not yet cleared."""
        return frozenset(self._active)

    # -- the check ----------------------------------------------------------------------------
    def _guarded_check(self, state: Mapping[str, Any]) -> ForecastResult | None:
        try:
            result = self.check(state)
        except InvalidInputError as err:
            self.failed_checks += 1
            if not self._failing:
                self._failing = True
                logger.warning("forecast check skipped: %s", err)
            return None
        if self._failing:
            self._failing = False
            logger.info("forecast check running again")
        return result

    def check(self, state: Mapping[str, Any]) -> ForecastResult:
        """Forecast now (no rate limit); publish new warnings; return what was found."""
        config = self.config
        with self._check_lock:
            summary = self.engine.run_monte_carlo_summary(
                steps=config.horizon_steps,
                initial_state=state,
                iterations=config.iterations,
                uncertainty=config.uncertainty,
                seed=self._rng,
                thresholds=self.thresholds,
            )
            self.checks += 1
            forecasts: list[Forecast] = []
            published: list[ForecastEvent] = []
            cleared: list[tuple[str, Direction]] = []
            for path, rule in self.thresholds.items():
                breach = summary.breach.get(path)
                if breach is None:
                    continue
                current = _value(state, path)
                in_breach = current is not None and rule.breach(current) is not None
                limits: tuple[tuple[Direction, float | None], ...] = (
                    ("exceed", rule.high),
                    ("fall below", rule.low),
                )
                for direction, limit in limits:
                    if limit is None:
                        continue
                    key = (path, direction)
                    probability = breach.probability_of(direction)
                    if key in self._active and probability < self._clear_below:
                        self._active.discard(key)
                        cleared.append(key)
                        logger.info("forecast cleared: %s %s %s", path, direction, limit)
                        continue
                    if probability < config.probability_threshold or in_breach:
                        continue
                    steps_ahead = breach.first_step(direction, config.probability_threshold)
                    assert steps_ahead is not None  # the cumulative series reaches it
                    forecast = Forecast(path, direction, limit, probability, steps_ahead)
                    forecasts.append(forecast)
                    if key in self._active:
                        continue
                    event = ForecastEvent(
                        parameter=path,
                        threshold=limit,
                        steps_ahead=steps_ahead,
                        probability=round(probability, 4),
                        direction=direction,
                        source=EVENT_SOURCE,
                        details={
                            "current_value": current,
                            "horizon_steps": config.horizon_steps,
                            "iterations": config.iterations,
                        },
                    )
                    self._publish(event)
                    self._active.add(key)
                    published.append(event)
                    logger.info("%s", event.message)
            return ForecastResult(
                checked_at=self._clock(),
                forecasts=tuple(forecasts),
                published=tuple(published),
                cleared=tuple(cleared),
                summary=summary,
            )
