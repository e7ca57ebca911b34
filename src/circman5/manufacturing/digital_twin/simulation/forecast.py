"""The forecast check: warn before a threshold is crossed.

Why this module is long: the spec's forecast check and its flood control over two forecasters
(statistical and process model); the statistical forecaster itself is in its own module.

Two forecasters feed one check:

* the **statistical** forecaster (:mod:`.statistical_forecast`): a damped Holt trend learned
  online from every monitored path's own samples (``observe(path, t, value)``, fed by the twin
  on every update), with a band estimated from its residuals. It runs on every monitored path
  (a path with a threshold rule), whatever device produces it;
* the **process model**: the vectorized Monte Carlo of the simulation engine (``horizon_steps``
  x ``iterations`` at ``uncertainty``), run only on ``model_paths``, the paths whose calibrated
  model was accepted. There the checker tracks the recent forecast error of both forecasters
  and lets the one with the lower error decide.

For each limit where the probability of a breach within the horizon reaches the forecaster's
threshold while the latest value is still inside the limit, one :class:`ForecastEvent` is
published, e.g.::

    production_line.temperature predicted to exceed 27.0 in 3.2 s (p=0.93, statistical:damped_holt)

carrying the path, the limit, the direction, ``seconds_ahead``, the probability and the
``forecaster``. A forecast is published once; it is published again only after it cleared (its
probability fell below ``probability_threshold * (1 - clear_hysteresis)``).

Rate limit: a check is due every ``statistical.check_interval_s`` seconds (``min_interval_s``
when the statistical forecaster is disabled); the Monte Carlo runs at most every
``min_interval_s``. ``take_due()`` (one clock read, reserves the slot) belongs on the ingestion
path and ``check(state)`` in a worker thread, or ``await maybe_check_async(state)``, which does
exactly that with ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
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
from circman5.manufacturing.digital_twin.simulation.statistical_forecast import (
    StatisticalForecast,
    StatisticalForecaster,
)

logger = logging.getLogger(__name__)

__all__ = [
    "PROCESS_MODEL",
    "Forecast",
    "ForecastChecker",
    "ForecastResult",
    "SummaryEngine",
    "state_epoch",
]

Direction = Literal["exceed", "fall below"]
EVENT_SOURCE = "simulation.forecast"
#: Samples waiting for the forecast thread at most (about 10 s of 1,000 paths at 10 Hz).
PENDING_MAX = 100_000
#: Samples of one path closer than this (seconds) are learned at this resolution.
MIN_SPACING_S = 0.05
PROCESS_MODEL = "process_model"
#: Samples within this many seconds of the wall clock are live (see ``wall_clock``).
LIVE_WINDOW_S = 60.0
#: Weight of the newest error in each forecaster's running mean absolute error.
ERROR_WEIGHT = 0.2


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
    """A predicted breach: ``parameter`` will ``direction`` ``threshold`` in ``steps_ahead``.

    ``seconds_ahead``: the expected time to the breach; ``forecaster``: ``"process_model"`` or
    ``"statistical:<method>"``.
    """

    parameter: str
    direction: Direction
    threshold: float
    probability: float
    steps_ahead: int
    seconds_ahead: float | None = None
    forecaster: str = PROCESS_MODEL


@dataclass(frozen=True)
class ForecastResult:
    """The outcome of one check.

    ``forecasts``: every predicted breach (published now or earlier); ``published``: the events
    published by this check; ``cleared``: the ``(parameter, direction)`` forecasts that ended;
    ``summary``: the Monte Carlo of the model paths (None when it did not run in this check);
    ``statistical``: the statistical forecast of every monitored path (None when disabled).
    """

    checked_at: float
    forecasts: tuple[Forecast, ...]
    published: tuple[ForecastEvent, ...]
    cleared: tuple[tuple[str, Direction], ...]
    summary: MonteCarloSummary | None
    statistical: StatisticalForecast | None = None


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


def state_epoch(state: Mapping[str, Any]) -> float | None:
    """A twin state's ``timestamp`` in seconds since the epoch (None when it has none)."""
    stamp = state.get("timestamp")
    try:
        if isinstance(stamp, str):
            return datetime.fromisoformat(stamp).timestamp()
        if isinstance(stamp, datetime):
            return stamp.timestamp()
    except (ValueError, OverflowError, OSError):
        return None
    return None


_SIDE: dict[str, str] = {"exceed": "high", "fall below": "low"}
#: (direction, limit, probability, steps ahead, seconds ahead, latest value, warn threshold)
_Finding = tuple[Direction, float, float, int, float | None, float | None, float]


@dataclass
class _Track:
    """A forecaster's running mean absolute error on one path, and its pending forecast."""

    error: float = math.nan
    origin: float = math.nan
    times: np.ndarray[Any, np.dtype[np.float64]] | None = None
    values: np.ndarray[Any, np.dtype[np.float64]] | None = None
    scored_t: float = -math.inf

    def remember(
        self,
        origin: float,
        times: np.ndarray[Any, np.dtype[np.float64]],
        values: np.ndarray[Any, np.dtype[np.float64]],
    ) -> None:
        self.origin, self.times, self.values = origin, times, values

    def score(self, t: float, value: float) -> None:
        """Compare the pending forecast with a sample taken at ``t``, once per sample."""
        if self.times is None or self.values is None or t <= self.scored_t:
            return
        ahead = t - self.origin
        if not 0.0 < ahead <= float(self.times[-1]):
            return
        predicted = float(np.interp(ahead, self.times, self.values))
        if math.isnan(predicted):
            return
        error = abs(value - predicted)
        self.error = (
            error if math.isnan(self.error) else self.error + ERROR_WEIGHT * (error - self.error)
        )
        self.scored_t = t


class ForecastChecker:
    """Rate-limited forecast of threshold breaches, publishing :class:`ForecastEvent`.

    ``engine``: the :class:`SimulationEngine` (anything with ``run_monte_carlo_summary``).
    ``thresholds``: path -> :class:`ThresholdRule`
    (``ConstantsService().get_parameter_thresholds()``): the monitored paths.
    ``publish``: called with each new event (e.g. the event manager's ``publish``); its errors
    propagate. ``clock``: seconds, monotonic. ``seed``: for reproducible checks (tests).
    ``model_paths``: the paths on which a calibrated process model was accepted (empty: the
    statistical forecaster everywhere); None: follow the engine's ``calibrated_paths`` (the
    active calibration's accepted paths, re-read when a new calibration is activated).
    ``step_s``: simulated seconds per model step.
    ``wall_clock``: epoch seconds (``time.time``) for a live twin: while the samples are live
    (within ``LIVE_WINDOW_S`` of it), checks forecast from the wall clock, so a path that went
    silent is seen to hold its value; None: from the newest sample.
    """

    def __init__(
        self,
        engine: SummaryEngine,
        thresholds: Mapping[str, ThresholdRule],
        config: ForecastCheckConfig,
        publish: Callable[[Event], None],
        clock: Callable[[], float] = time.monotonic,
        seed: int | np.random.Generator | None = None,
        *,
        model_paths: Collection[str] | None = (),
        step_s: float = 1.0,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self.engine = engine
        self.thresholds: dict[str, ThresholdRule] = dict(thresholds)
        self.config = config
        self._publish = publish
        self._clock = clock
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        stat_config = config.statistical
        self.statistical: StatisticalForecaster | None = None
        if stat_config.enabled:
            self.statistical = StatisticalForecaster(
                list(self.thresholds),
                {p: (r.low, r.high) for p, r in self.thresholds.items()},
                stat_config,
            )
            # samples arrive with jitter: one up to a quarter interval early still counts, so a
            # 1 Hz device is checked on every sample rather than every other one
            self._interval = 0.75 * float(stat_config.check_interval_s)
        else:
            self._interval = float(config.min_interval_s)
        self._model_interval = float(config.min_interval_s)
        self._step_s = float(step_s)
        self._wall_clock = wall_clock
        self.model_paths: frozenset[str] = frozenset()
        self.set_model_paths(model_paths or ())
        self._follow_calibration = model_paths is None
        #: samples handed over by :meth:`enqueue` (the twin's update path), learned by the next
        #: check in the forecast thread; bounded, the oldest dropped (counted in ``dropped``)
        self._pending: deque[tuple[str, float, object]] = deque(maxlen=PENDING_MAX)
        self._queued_t: dict[str, float] = {}  # per path: time of the last queued sample
        self._latest: dict[str, tuple[float, object]] = {}  # per path: the newest sample handed
        self._learned_t: dict[str, float] = {}  # per path: the newest sample learned
        self.dropped = 0
        self._next_due = -math.inf
        self._next_model_due = -math.inf
        self._slot_lock = threading.Lock()
        self._check_lock = threading.Lock()
        self._active: set[tuple[str, Direction]] = set()
        self._tracks: dict[tuple[str, str], _Track] = {}
        self._failing = False
        #: Completed checks, and checks skipped because the state was unusable.
        self.checks = 0
        self.failed_checks = 0

    @property
    def statistical_name(self) -> str:
        return f"statistical:{self.config.statistical.method}"

    def set_model_paths(self, paths: Collection[str]) -> None:
        """Accept a calibrated process model on ``paths`` (monitored paths only); from then on
        the checker no longer follows the engine's calibration."""
        self._follow_calibration = False
        self.model_paths = frozenset(p for p in paths if p in self.thresholds)

    def _model_paths_from_engine(self) -> None:
        calibrated = getattr(self.engine, "calibrated_paths", None)
        if isinstance(calibrated, frozenset):
            paths = frozenset(p for p in calibrated if p in self.thresholds)
            if paths != self.model_paths:
                logger.info("forecast: the process model is used on %s", sorted(paths) or "none")
                self.model_paths = paths

    # -- learning -------------------------------------------------------------------------------
    def observe(self, path: str, t: float, value: object) -> bool:
        """Feed one sample of a monitored path (``t`` in seconds) to the statistical forecaster.

        Values that are not finite numbers are ignored (False); so are unmonitored paths.
        """
        statistical = self.statistical
        return statistical is not None and statistical.observe(path, t, value)

    def enqueue(self, path: str, t: float, value: object) -> None:
        """Hand one sample to the forecaster without learning it now (cheap: one append);
        a ``value`` that is not a finite number is ignored when learned.

        The twin calls this on its update path; :meth:`check` and :meth:`path_forecasts` learn
        what is pending first, in the forecast thread, so the per-sample cost of the learning
        stays off ingestion.
        """
        # a path updated faster than MIN_SPACING_S is learned at that resolution (a forecast
        # seconds ahead gains nothing from more); its newest sample is always learned too
        self._latest[path] = (t, value)
        queued = self._queued_t.get(path)
        if queued is not None and t - queued < MIN_SPACING_S:
            return
        self._queued_t[path] = t
        pending = self._pending
        if len(pending) == PENDING_MAX:
            self.dropped += 1
        pending.append((path, t, value))

    def learn_pending(self) -> int:
        """Learn the samples handed over by :meth:`enqueue` (oldest first); how many."""
        statistical = self.statistical
        pending = self._pending
        learned_t = self._learned_t
        learned = 0
        while pending:
            path, t, value = pending.popleft()
            learned_t[path] = t
            if statistical is not None and statistical.observe(path, t, value):
                learned += 1
        for path, (t, value) in list(self._latest.items()):
            if t > learned_t.get(path, -math.inf):
                learned_t[path] = t
                if statistical is not None and statistical.observe(path, t, value):
                    learned += 1
        return learned

    def warm_start(self, states: Iterable[Mapping[str, Any]]) -> int:
        """Learn from the twin's state history (oldest first) so a restart is not blind."""
        if self.statistical is None:
            return 0
        learned = self.statistical.warm_start(states, state_epoch)
        if learned:
            logger.info("statistical forecaster learned %d samples from the history", learned)
        return learned

    # -- rate limit ---------------------------------------------------------------------------
    def take_due(self) -> bool:
        """True (and the next slot reserved) when a check is due: one clock read otherwise."""
        now = self._clock()
        if now < self._next_due or not self.config.enabled:
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
        """:meth:`maybe_check` with the check in a worker thread (``asyncio.to_thread``).

        ``state`` must not change while the check runs (the StateManager's ``snapshot()``
        is never mutated, so it qualifies).
        """
        if not self.take_due():
            return None
        return await asyncio.to_thread(self._guarded_check, state)

    def reset(self) -> None:
        """Forget published forecasts and the rate limit (not what the forecaster learned)."""
        with self._check_lock, self._slot_lock:
            self._active.clear()
            self._next_due = -math.inf
            self._next_model_due = -math.inf

    @property
    def active(self) -> frozenset[tuple[str, Direction]]:
        """The ``(parameter, direction)`` forecasts published and not yet cleared."""
        return frozenset(self._active)

    # -- reading ------------------------------------------------------------------------------
    def forecaster_for(self, path: str) -> str:
        """The forecaster that decides on ``path`` now."""
        if path not in self.model_paths:
            return self.statistical_name if self.statistical is not None else PROCESS_MODEL
        if self.statistical is None:
            return PROCESS_MODEL
        model = self._tracks.get((path, PROCESS_MODEL))
        stat = self._tracks.get((path, "statistical"))
        if model is None or math.isnan(model.error):
            return PROCESS_MODEL  # accepted by calibration: trusted until measured
        if stat is None or math.isnan(stat.error) or model.error <= stat.error:
            return PROCESS_MODEL
        return self.statistical_name

    def recent_errors(self, path: str) -> dict[str, float | None]:
        """Each forecaster's running mean absolute error on ``path`` (None: not measured)."""
        out: dict[str, float | None] = {}
        for name in ("statistical", PROCESS_MODEL):
            track = self._tracks.get((path, name))
            error = None if track is None or math.isnan(track.error) else track.error
            out[self.statistical_name if name == "statistical" else name] = error
        return out

    def path_forecasts(self, now: float | None = None) -> list[dict[str, Any]]:
        """Per monitored path: the statistical forecast over the horizon with its band, the
        limits, the probabilities and the forecaster that decides on the path (for the API)."""
        with self._check_lock:
            self.learn_pending()
        rows: list[dict[str, Any]] = []
        if self.statistical is None:
            for path, rule in self.thresholds.items():
                rows.append(
                    {
                        "path": path,
                        "forecaster": PROCESS_MODEL,
                        "limit_low": rule.low,
                        "limit_high": rule.high,
                    }
                )
            return rows
        forecast = self.statistical.forecast(now)
        for i, path in enumerate(forecast.paths):
            row = forecast.path_forecast(i, self.thresholds.get(path)).to_dict()
            row["forecaster"] = self.forecaster_for(path)
            row["probability"] = max(row["probability_exceed"], row["probability_fall_below"])
            row["recent_error"] = self.recent_errors(path)
            row["now"] = forecast.now  # times_s count from here (s since the epoch)
            rows.append(row)
        return rows

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

    def check(self, state: Mapping[str, Any], now: float | None = None) -> ForecastResult:
        """Forecast now (no rate limit); publish new warnings; return what was found.

        ``now``: the time (seconds, the samples' time base) to forecast from; default the
        newest sample any monitored path has seen.
        """
        config = self.config
        if self._follow_calibration:
            self._model_paths_from_engine()
        with self._check_lock:
            self.learn_pending()
            stat: StatisticalForecast | None = None
            if now is None and self._wall_clock is not None and self.statistical is not None:
                wall, latest = self._wall_clock(), self.statistical.latest_t
                if math.isfinite(latest) and abs(wall - latest) < LIVE_WINDOW_S:
                    now = max(wall, latest)
            if self.statistical is not None:
                at = self.statistical.latest_t if now is None else now
                if math.isfinite(at):
                    self.statistical.hold_silent(at)
                stat = self.statistical.forecast(now)
            summary: MonteCarloSummary | None = None
            if self.model_paths and (stat is None or self._clock() >= self._next_model_due):
                summary = self.engine.run_monte_carlo_summary(
                    steps=config.horizon_steps,
                    initial_state=state,
                    iterations=config.iterations,
                    uncertainty=config.uncertainty,
                    seed=self._rng,
                    thresholds={p: self.thresholds[p] for p in self.model_paths},
                )
                self._next_model_due = self._clock() + self._model_interval
            self.checks += 1
            if stat is not None and self.model_paths:
                self._score(stat, summary)
            forecasts: list[Forecast] = []
            published: list[ForecastEvent] = []
            cleared: list[tuple[str, Direction]] = []
            for index, (path, rule) in self._to_decide(stat):
                name = self.forecaster_for(path)
                if name == PROCESS_MODEL:
                    if summary is None:
                        continue  # the model did not run in this check: decide next time
                    found = self._model_findings(path, rule, state, summary)
                elif stat is not None:
                    found = self._statistical_findings(index, rule, stat)
                else:
                    continue
                for direction, limit, probability, steps, seconds, current, threshold in found:
                    key = (path, direction)
                    breach = None if current is None else rule.breach(current)
                    in_breach = breach is not None and breach[0] == _SIDE[direction]
                    if key in self._active and probability < threshold * (
                        1.0 - config.clear_hysteresis
                    ):
                        self._active.discard(key)
                        cleared.append(key)
                        logger.info("forecast cleared: %s %s %s", path, direction, limit)
                        continue
                    if in_breach:
                        # a breach counts as warned: re-armed once the forecast clears, so
                        # leaving the breach never raises a warning of its own
                        self._active.add(key)
                        continue
                    if probability < threshold:
                        continue
                    forecast = Forecast(path, direction, limit, probability, steps, seconds, name)
                    forecasts.append(forecast)
                    if key in self._active:
                        continue
                    event = self._event(forecast, current)
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
                statistical=stat,
            )

    def _to_decide(self, stat: StatisticalForecast | None) -> list[tuple[int, tuple[str, Any]]]:
        """The paths a check must look at: model paths, and paths whose breach probability
        reaches a clear level, that are in breach, or that have an active warning (vectorized,
        so a check of a thousand calm paths does not walk them in Python)."""
        items = list(self.thresholds.items())
        if stat is None:
            return list(enumerate(items))
        clear_level = self.config.statistical.probability_threshold * (
            1.0 - self.config.clear_hysteresis
        )
        last = stat.last_value
        with np.errstate(invalid="ignore"):
            busy = (
                (stat.p_exceed >= clear_level)
                | (stat.p_fall_below >= clear_level)
                | (last > stat.high)
                | (last < stat.low)
            )
        chosen = set(np.nonzero(busy)[0].tolist())
        if self._active or self.model_paths:
            watched = {p for p, _ in self._active} | self.model_paths
            chosen.update(i for i, (path, _) in enumerate(items) if path in watched)
        return [(i, items[i]) for i in sorted(chosen)]

    def _statistical_findings(
        self, i: int, rule: ThresholdRule, stat: StatisticalForecast
    ) -> list[_Finding]:
        if not stat.ready[i]:
            return []
        current = float(stat.last_value[i])
        threshold = self.config.statistical.probability_threshold
        interval = max(float(stat.interval[i]), 1e-9)
        found: list[_Finding] = []
        sides: tuple[tuple[Direction, float | None, float, float], ...] = (
            ("exceed", rule.high, float(stat.p_exceed[i]), float(stat.t_exceed[i])),
            ("fall below", rule.low, float(stat.p_fall_below[i]), float(stat.t_fall_below[i])),
        )
        for direction, limit, probability, seconds in sides:
            if limit is None:
                continue
            if math.isnan(seconds):
                seconds = float(stat.times_s[-1])
            steps = max(1, math.ceil(seconds / interval))
            found.append(
                (direction, limit, probability, steps, round(seconds, 2), current, threshold)
            )
        return found

    def _model_findings(
        self,
        path: str,
        rule: ThresholdRule,
        state: Mapping[str, Any],
        summary: MonteCarloSummary,
    ) -> list[_Finding]:
        breach = summary.breach.get(path)
        if breach is None:
            return []
        current = _value(state, path)
        threshold = self.config.probability_threshold
        found: list[_Finding] = []
        limits: tuple[tuple[Direction, float | None], ...] = (
            ("exceed", rule.high),
            ("fall below", rule.low),
        )
        for direction, limit in limits:
            if limit is None:
                continue
            probability = breach.probability_of(direction)
            steps = breach.first_step(direction, threshold) if probability >= threshold else None
            steps = steps if steps is not None else self.config.horizon_steps
            found.append(
                (direction, limit, probability, steps, steps * self._step_s, current, threshold)
            )
        return found

    def _event(self, forecast: Forecast, current: float | None) -> ForecastEvent:
        config = self.config
        details: dict[str, Any] = {"current_value": current}
        if forecast.forecaster == PROCESS_MODEL:
            details.update(horizon_steps=config.horizon_steps, iterations=config.iterations)
        else:
            details.update(horizon_s=config.statistical.horizon_s)
        return ForecastEvent(
            parameter=forecast.parameter,
            threshold=forecast.threshold,
            steps_ahead=forecast.steps_ahead,
            probability=round(forecast.probability, 4),
            direction=forecast.direction,
            seconds_ahead=forecast.seconds_ahead,
            forecaster=forecast.forecaster,
            source=EVENT_SOURCE,
            details=details,
        )

    def _score(self, stat: StatisticalForecast, summary: MonteCarloSummary | None) -> None:
        """Score the pending forecasts of both forecasters on the model paths, then remember
        this check's forecasts for the next samples."""
        for path in self.model_paths:
            i = stat.index(path)
            if not stat.samples[i]:
                continue
            t, value = float(stat.last_t[i]), float(stat.last_value[i])
            stat_track = self._tracks.setdefault((path, "statistical"), _Track())
            model_track = self._tracks.setdefault((path, PROCESS_MODEL), _Track())
            stat_track.score(t, value)
            model_track.score(t, value)
            if stat.ready[i]:
                stat_track.remember(stat.now, stat.times_s, stat.mean[i])
            if summary is not None and path in summary.paths:
                mean = summary.series(path).mean
                times = np.arange(mean.shape[0], dtype=np.float64) * self._step_s
                model_track.remember(stat.now, times, np.asarray(mean, dtype=np.float64))
