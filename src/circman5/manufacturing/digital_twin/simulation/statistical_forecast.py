"""Forecasts learned from how each monitored path has actually been moving.

Why this module is long: one vectorized algorithm (the per-path Holt state in numpy arrays, its
online update and the banded check over all paths) whose parts share those arrays.

Method: a **damped Holt linear trend** per path and time scale, updated online in O(1) per
sample, in continuous time (sampling is irregular and per path, so everything is in seconds):

    dt    = t - t_last                         seconds since the path's last sample
    pred  = level + trend * dt                 the one-step forecast; e = y - pred
    a     = 1 - exp(-dt / tau_level)           smoothing weights for this gap
    g     = 1 - exp(-dt / tau_trend)
    level = pred + a * e
    trend = trend + g * a * e / dt             units per second

A forecast ``h`` seconds past the last sample is ``level + credit * trend * D(h)``, with the
damped reach ``D(h) = tau_damp * (1 - exp(-h / tau_damp))``.

Learned from the path's own history (each sample is compared with the forecasts made 1, 2, 4,
..., 64 samples before it, whose states are kept in a ring):

* the **band**: per lag, ``1.4826 * median |error|`` of the last ``residual_window`` errors
  (robust against a kink or a spike), interpolated on a log scale of the lag and grown in
  proportion beyond the last lag;
* the trend's **credit**: per lag, a running regression of the change that came true on the
  change the trend predicted (0 to ``MAX_CREDIT``): on a noisy plateau the trend is noise and
  its credit falls towards 0, on ramps it stays near 1.

The probability of a breach within the horizon is the larger of

* the largest chance over the horizon's points that the value is beyond the limit (the recent
  signed errors at that lag added to the forecast, smoothed by the sample noise; normal with
  the band while a lag's window is not full), and
* a lower bound of the chance that some single noisy sample crosses while the path creeps close
  below the limit (``1 - prod(1 - Phi(margin / noise))`` over the expected samples),

for each time scale (fast pairs of time constants for steep ramps and steps, a slow one for
drifts), each trusted up to ``TRUSTED_REACH`` times its trend time constant ahead; the most
confident scale speaks. Everything the check reads is in numpy arrays, so one check of a
thousand paths is a handful of array operations.

The module knows nothing of the twin, protocols or events: :class:`StatisticalForecaster` takes
``observe(path, t, value)`` and answers ``forecast(now)``.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import numpy.typing as npt

from circman5.adapters.config.simulation_parameters import StatisticalForecastConfig
from circman5.adapters.config.thresholds import ThresholdRule
from circman5.manufacturing.digital_twin.simulation.normal_cdf import ndtr

__all__ = ["PathForecast", "StatisticalForecast", "StatisticalForecaster"]

FloatArray = npt.NDArray[np.float64]


#: Two-sided 90% band: mean +- BAND_Z * sd.
BAND_Z = 1.6448536269514722
#: The band's deviation is 1.4826 times the median of the recent absolute forecast errors (the
#: deviation for normal errors): robust against the odd kink or spike (compare Gelper, Fried
#: and Croux, "Robust forecasting with exponential and Holt-Winters smoothing", J. Forecasting
#: 2010).
_ERROR_QUANTILE = 0.5
_QUANTILE_TO_SD = 1.4826
#: A smoothing weight of the sample interval's running mean.
_INTERVAL_WEIGHT = 0.1


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class PathForecast:
    """One path's forecast, ready for the API: values at ``times_s`` seconds from now."""

    path: str
    method: str
    samples: int
    last_value: float | None
    times_s: tuple[float, ...]
    mean: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    limit_low: float | None
    limit_high: float | None
    probability_exceed: float
    probability_fall_below: float
    seconds_to_exceed: float | None
    seconds_to_fall_below: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "forecaster": f"statistical:{self.method}",
            "samples": self.samples,
            "last_value": self.last_value,
            "times_s": list(self.times_s),
            "mean": list(self.mean),
            "low": list(self.low),
            "high": list(self.high),
            "limit_low": self.limit_low,
            "limit_high": self.limit_high,
            "probability_exceed": self.probability_exceed,
            "probability_fall_below": self.probability_fall_below,
            "seconds_to_exceed": self.seconds_to_exceed,
            "seconds_to_fall_below": self.seconds_to_fall_below,
        }


@dataclass(frozen=True)
class StatisticalForecast:
    """One vectorized check of every path, arrays indexed like ``paths``.

        ``times_s``: the horizon's points in seconds from ``now`` (the first is 0);
        ``mean``/``sd``: the best-fitting scale's forecast, shape ``(paths, points)``;
        ``p_exceed``/``p_fall_below``: the breach probability within the horizon (most confident
        scale); ``t_exceed``/``t_fall_below``: expected seconds to the breach (NaN: none expected);
        ``ready``: the path has ``min_history`` samples; ``last_value``/``last_t``: its latest
    sample and when it was taken; ``interval``: its mean sample interval (s).
    """

    now: float
    paths: tuple[str, ...]
    times_s: FloatArray
    mean: FloatArray
    sd: FloatArray
    p_exceed: FloatArray
    p_fall_below: FloatArray
    t_exceed: FloatArray
    t_fall_below: FloatArray
    ready: npt.NDArray[np.bool_]
    last_value: FloatArray
    high: FloatArray
    low: FloatArray
    last_t: FloatArray
    interval: FloatArray
    samples: npt.NDArray[np.int64]
    method: str = "damped_holt"

    def index(self, path: str) -> int:
        return self.paths.index(path)

    def value_at(self, i: int, seconds: float) -> float:
        """The forecast of path ``i`` ``seconds`` after ``now`` (linear between points)."""
        return float(np.interp(seconds, self.times_s, self.mean[i]))

    def path_forecast(self, i: int, rule: ThresholdRule | None) -> PathForecast:
        def rounded(row: FloatArray) -> tuple[float, ...]:
            return tuple(round(float(v), 6) for v in row)

        def finite(value: float) -> float | None:
            return None if math.isnan(value) else round(value, 3)

        ready = bool(self.ready[i])
        mean = self.mean[i] if ready else np.full_like(self.times_s, np.nan)
        sd = self.sd[i] if ready else mean
        last = float(self.last_value[i])
        return PathForecast(
            path=self.paths[i],
            method=self.method,
            samples=int(self.samples[i]),
            last_value=None if math.isnan(last) else last,
            times_s=rounded(self.times_s),
            mean=rounded(mean) if ready else (),
            low=rounded(mean - BAND_Z * sd) if ready else (),
            high=rounded(mean + BAND_Z * sd) if ready else (),
            limit_low=rule.low if rule else None,
            limit_high=rule.high if rule else None,
            probability_exceed=round(float(self.p_exceed[i]), 4),
            probability_fall_below=round(float(self.p_fall_below[i]), 4),
            seconds_to_exceed=finite(float(self.t_exceed[i])),
            seconds_to_fall_below=finite(float(self.t_fall_below[i])),
        )


class StatisticalForecaster:
    """Damped Holt trends of many paths, updated per sample, checked all at once.

    ``paths``: the monitored paths; ``limits``: path -> (low, high) (either may be None).
    :meth:`observe` costs a few microseconds; :meth:`forecast` is vectorized across paths.
    Thread-safe: samples may arrive while a check runs in another thread.
    """

    def __init__(
        self,
        paths: Sequence[str],
        limits: Mapping[str, tuple[float | None, float | None]],
        config: StatisticalForecastConfig,
    ) -> None:
        self.config = config
        self.paths: tuple[str, ...] = tuple(paths)
        self._index = {path: i for i, path in enumerate(self.paths)}
        count = len(self.paths)
        self._scales = [(float(lv), float(tr)) for lv, tr in config.time_constants_s]
        self._window = window = int(config.residual_window)
        self._level = [array("d", bytes(8 * count)) for _ in self._scales]
        self._trend = [array("d", bytes(8 * count)) for _ in self._scales]
        self._reach = np.array([TRUSTED_REACH * trend for _, trend in self._scales])
        lags = len(LAGS)
        depth = LAGS[-1]
        # the states after each of the last ``depth`` samples: where past forecasts came from
        self._hist_t = array("d", bytes(8 * count * depth))
        self._hist_level = [array("d", bytes(8 * count * depth)) for _ in self._scales]
        self._hist_trend = [array("d", bytes(8 * count * depth)) for _ in self._scales]
        # |error| of the forecasts made LAGS[k] samples before each sample, last ``window``
        self._errors = [array("d", bytes(8 * count * lags * window)) for _ in self._scales]
        self._lag_count = array("q", bytes(8 * count * lags))
        # running means of (predicted change x realized change) and (predicted change)^2 per
        # scale, path and lag: how much of the extrapolated trend has come true on this path
        self._credit_xy = [array("d", bytes(8 * count * lags)) for _ in self._scales]
        self._credit_xx = [array("d", bytes(8 * count * lags)) for _ in self._scales]
        self._recorded_t = array("d", [-math.inf] * count)
        self._damping = (
            math.inf if config.trend_damping_s is None else float(config.trend_damping_s)
        )
        self._last_t = array("d", [math.nan] * count)
        self._last_y = array("d", [math.nan] * count)
        self._interval = array("d", [1.0] * count)
        self._count = array("q", bytes(8 * count))
        nan = math.nan
        self._high = np.array(
            [nan if limits.get(p, (None, None))[1] is None else limits[p][1] for p in paths],
            dtype=np.float64,
        )
        self._low = np.array(
            [nan if limits.get(p, (None, None))[0] is None else limits[p][0] for p in paths],
            dtype=np.float64,
        )
        points = config.horizon_points
        self.times_s: FloatArray = np.linspace(0.0, float(config.horizon_s), points + 1)
        self._lock = threading.Lock()
        #: Samples ignored: not a finite number, or not newer than the path's last sample.
        self.ignored = 0
        #: The newest sample time seen on any path (the forecasts' "now" by default).
        self.latest_t = -math.inf

    def __contains__(self, path: object) -> bool:
        return path in self._index

    def samples(self, path: str) -> int:
        return int(self._count[self._index[path]])

    # -- learning -------------------------------------------------------------------------------
    def observe(self, path: str, t: float, value: object) -> bool:
        """Learn one sample of ``path`` taken at ``t`` (seconds); False when it was ignored.

        Ignored: unknown paths, values that are not finite numbers (None, NaN, text, bool) and
        samples not newer than the path's last one.
        """
        i = self._index.get(path)
        if i is None:
            return False
        y = _number(value)
        if y is None:
            self.ignored += 1
            return False
        with self._lock:
            hold_after = self.config.hold_after_s
            n = self._count[i]
            if hold_after is not None and n > 0:
                # a device reporting by exception was silent: its value held meanwhile
                last_t, interval = self._last_t[i], self._interval[i]
                gap = t - last_t
                if gap > max(hold_after, HOLD_INTERVALS * interval):
                    held = min(int(gap / interval) - 1, MAX_HELD)
                    step = gap / (held + 1)
                    for m in range(1, held + 1):
                        self._learn(i, last_t + m * step, self._last_y[i])
            return self._learn(i, t, y)

    def _learn(self, i: int, t: float, y: float) -> bool:
        """:meth:`observe` of path ``i``, the lock held."""
        n = self._count[i]
        if n == 0:
            for s in range(len(self._scales)):
                self._level[s][i] = y
                self._trend[s][i] = 0.0
                self._hist_level[s][i * LAGS[-1]] = y
                self._hist_trend[s][i * LAGS[-1]] = 0.0
            self._hist_t[i * LAGS[-1]] = t
            self._last_t[i] = t
            self._last_y[i] = y
            self._count[i] = 1
            if t > self.latest_t:
                self.latest_t = t
            return True
        dt = t - self._last_t[i]
        if not dt > 0.0:
            self.ignored += 1
            return False
        exp = math.exp
        window = self._window
        depth = LAGS[-1]
        hist_base = i * depth
        hist_t = self._hist_t
        damping = self._damping
        lag_count = self._lag_count
        lag_base = i * len(LAGS)
        # (lag index, history slot, damped reach, error slot, fill to) of each lag with data
        lags: list[tuple[int, int, float, int, int]] = []
        # errors are recorded at most every RECORD_SPACING_S, so that the window spans
        # a similar time whether the path is sampled at 1 Hz or 10 Hz
        record = t - self._recorded_t[i] >= RECORD_SPACING_S
        if record:
            self._recorded_t[i] = t
        for k, lag in enumerate(LAGS):
            if lag > n or not record:
                break
            j = hist_base + (n - lag) % depth
            h = t - hist_t[j]
            reach = h if damping == math.inf else damping * (1.0 - exp(-h / damping))
            done = lag_count[lag_base + k]
            base = (lag_base + k) * window
            slot = base + done % window
            # until the window is full, the newest error also fills the unused slots
            lags.append((k, j, reach, slot, base + window if done < window else slot + 1))
            lag_count[lag_base + k] = done + 1
        next_slot = hist_base + n % depth
        for s, (tau_level, tau_trend) in enumerate(self._scales):
            level = self._level[s]
            trend = self._trend[s]
            hist_level = self._hist_level[s]
            hist_trend = self._hist_trend[s]
            errors = self._errors[s]
            credit_xy = self._credit_xy[s]
            credit_xx = self._credit_xx[s]
            for k, j, reach, slot, fill_to in lags:
                predicted = hist_trend[j] * reach
                realized = y - hist_level[j]
                c = lag_base + k
                xy = credit_xy[c] + CREDIT_WEIGHT * (predicted * realized - credit_xy[c])
                xx = credit_xx[c] + CREDIT_WEIGHT * (predicted * predicted - credit_xx[c])
                credit_xy[c], credit_xx[c] = xy, xx
                credit = min(max(xy / xx, 0.0), MAX_CREDIT) if xx > 0.0 else 1.0
                error = realized - credit * predicted
                for m in range(slot, fill_to):
                    errors[m] = error
            b = trend[i]
            pred = level[i] + b * dt
            e = y - pred
            a = 1.0 - exp(-dt / tau_level)
            level[i] = hist_level[next_slot] = pred + a * e
            trend[i] = hist_trend[next_slot] = b + (1.0 - exp(-dt / tau_trend)) * a * e / dt
        hist_t[next_slot] = t
        interval = self._interval
        interval[i] = dt if n == 1 else interval[i] + _INTERVAL_WEIGHT * (dt - interval[i])
        self._last_t[i] = t
        self._last_y[i] = y
        self._count[i] = n + 1
        if t > self.latest_t:
            self.latest_t = t
        return True

    def warm_start(
        self,
        states: Iterable[Mapping[str, Any]],
        epoch_of: Callable[[Mapping[str, Any]], float | None],
    ) -> int:
        """Learn from past twin states (oldest first); returns the samples learned.

        ``epoch_of(state)`` gives a state's time in seconds (None: skip the state). A state
        repeats every value it did not change, so a path's value is learned when it changed, or
        at most once a second when it did not.
        """
        learned = 0
        last_fed: dict[str, tuple[float, float]] = {}
        for state in states:
            t = epoch_of(state)
            if t is None:
                continue
            for path in self.paths:
                value = _number(_lookup(state, path))
                if value is None:
                    continue
                previous = last_fed.get(path)
                if previous is not None and previous[1] == value and t - previous[0] < 1.0:
                    continue
                if self.observe(path, t, value):
                    learned += 1
                    last_fed[path] = (t, value)
        return learned

    def hold_silent(self, now: float) -> int:
        """Take each path silent for longer than ``hold_after_s`` (and 1.2 of its mean sample
        intervals) to still hold its last value
        (devices report by exception: OPC UA data changes, MQTT on change) and learn that
        value at ``now``; returns how many paths were held."""
        hold_after = self.config.hold_after_s
        if hold_after is None:
            return 0
        last_t = np.frombuffer(self._last_t, dtype=np.float64)
        interval = np.frombuffer(self._interval, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            quiet = np.maximum(hold_after, HOLD_INTERVALS * interval)
            silent = np.nonzero(last_t < now - quiet)[0]
        for i in silent.tolist():
            self.observe(self.paths[i], now, self._last_y[i])
        return int(silent.size)

    # -- forecasting ----------------------------------------------------------------------------
    def forecast(self, now: float | None = None) -> StatisticalForecast:
        """Forecast every path over the horizon from ``now`` (default: the newest sample)."""
        with self._lock:
            level = np.array([np.frombuffer(a, dtype=np.float64) for a in self._level])
            trend = np.array([np.frombuffer(a, dtype=np.float64) for a in self._trend])
            errors = np.array([np.frombuffer(a, dtype=np.float64) for a in self._errors]).reshape(
                len(self._scales), len(self.paths), len(LAGS), self._window
            )
            lag_count = np.array(np.frombuffer(self._lag_count, dtype=np.int64)).reshape(
                len(self.paths), len(LAGS)
            )
            credit_xy = np.array([np.frombuffer(a, dtype=np.float64) for a in self._credit_xy])
            credit_xx = np.array([np.frombuffer(a, dtype=np.float64) for a in self._credit_xx])
            last_t = np.array(np.frombuffer(self._last_t, dtype=np.float64))
            last_y = np.array(np.frombuffer(self._last_y, dtype=np.float64))
            interval = np.array(np.frombuffer(self._interval, dtype=np.float64))
            count = np.array(np.frombuffer(self._count, dtype=np.int64))
            latest = self.latest_t
        if now is None:
            now = latest if math.isfinite(latest) else 0.0
        config = self.config
        times = self.times_s
        lag_sd = _lag_sd(errors, lag_count)  # (S, P, K)
        var = np.square(lag_sd[:, :, 0])  # one-step: (S, P)
        ready = count >= config.min_history
        # seconds since each path's last sample, at each point of the horizon: (P, G)
        since = np.maximum(now - np.nan_to_num(last_t, nan=now), 0.0)[:, None] + times[None, :]
        if config.trend_damping_s is None:
            reach = since
        else:
            damping = float(config.trend_damping_s)
            reach = damping * -np.expm1(-since / damping)
        shape = (len(self._scales), len(self.paths), len(LAGS))
        with np.errstate(invalid="ignore", divide="ignore"):
            credit = np.where(
                credit_xx > 0.0, np.clip(credit_xy / credit_xx, 0.0, MAX_CREDIT), 1.0
            ).reshape(shape)
        credit_g = _at_lag(credit, since / interval[:, None])  # (S, P, G)
        mean = level[:, :, None] + credit_g * trend[:, :, None] * reach[None, :, :]
        sd = _sd_at(lag_sd, since / interval[:, None]) + 1e-12 * (1.0 + np.abs(mean))
        # a scale extrapolates its trend at most ``TRUSTED_REACH`` x its trend time constant
        trusted = times[None, :] <= self._reach[:, None]  # (S, G)
        hidden = np.where(trusted, 0.0, -np.inf)[:, None, :]
        # a value exactly at a limit is not beyond it: the limits sit a hair further out
        high = self._high + 1e-9 * (1.0 + np.abs(self._high))
        low = self._low - 1e-9 * (1.0 + np.abs(self._low))
        high = high[None, :, None] - hidden
        low = low[None, :, None] + hidden
        # the noise of single samples around the forecast path: the best scale's residuals
        noise = np.sqrt(var.min(axis=0))[None, :, None] + 1e-12 * (1.0 + np.abs(mean))
        # samples expected per horizon point (the time since the previous point / interval)
        weight = (np.diff(times, prepend=0.0)[None, :] / interval[:, None])[None, :, :]
        spread = np.sqrt(np.maximum(sd * sd - noise * noise, 0.0))  # the fitted path's own
        with np.errstate(invalid="ignore", divide="ignore"):
            point_high, point_low = _point_probabilities(
                errors, lag_count, mean, sd, noise, high, low, since / interval[:, None]
            )
            p_high_s = np.maximum(
                point_high.max(axis=2), _any_sample(mean - high, spread, noise, weight)
            )
            p_low_s = np.maximum(
                point_low.max(axis=2), _any_sample(low - mean, spread, noise, weight)
            )
        p_high_s = np.nan_to_num(p_high_s, nan=0.0)  # (S, P)
        p_low_s = np.nan_to_num(p_low_s, nan=0.0)
        columns = np.arange(len(self.paths))
        best_high = p_high_s.argmax(axis=0)
        best_low = p_low_s.argmax(axis=0)
        # the band shown is the scale that fits best (smallest one-step residual variance)
        fit = var.argmin(axis=0)
        t_exceed = _first_crossing(mean[best_high, columns], self._high, times, above=True)
        t_fall = _first_crossing(mean[best_low, columns], self._low, times, above=False)
        not_ready = ~ready
        p_exceed = p_high_s[best_high, columns]
        p_fall = p_low_s[best_low, columns]
        p_exceed[not_ready] = 0.0
        p_fall[not_ready] = 0.0
        t_exceed[not_ready] = np.nan
        t_fall[not_ready] = np.nan
        return StatisticalForecast(
            now=float(now),
            paths=self.paths,
            times_s=times,
            mean=mean[fit, columns],
            sd=sd[fit, columns],
            p_exceed=p_exceed,
            p_fall_below=p_fall,
            t_exceed=t_exceed,
            t_fall_below=t_fall,
            ready=ready,
            last_value=last_y,
            high=self._high,
            low=self._low,
            last_t=last_t,
            interval=interval,
            samples=count,
            method=config.method,
        )


#: A scale's forecast is used up to this many times its trend time constant ahead: a trend
#: learned over the last few seconds says little about the next minute.
TRUSTED_REACH = 4.0
#: Weight of the newest forecast in the trend's credit (how much of the extrapolated change
#: came true, a regression of realized on predicted change per lag, 0 to MAX_CREDIT): on a
#: noisy plateau the trend is noise and its credit falls towards 0; on ramps it stays near 1.
CREDIT_WEIGHT = 0.3
MAX_CREDIT = 1.5
#: A path is silent (holding its value) after this many of its mean sample intervals.
HOLD_INTERVALS = 1.2
#: At most this many held samples fill one silence.
MAX_HELD = 16
#: Forecast errors are recorded at most this often per path (s).
RECORD_SPACING_S = 0.5
#: The forecast errors are measured at these lags (in samples); in between, the band is
#: interpolated on a log scale of the lag, beyond the last one it grows in proportion.
LAGS = (1, 2, 4, 8, 16, 32, 64)


def _lag_sd(errors: FloatArray, lag_count: npt.NDArray[np.int64]) -> FloatArray:
    """The robust error deviation (``1.4826 * median |e|``) per scale, path and
    lag; a lag with no errors yet takes the previous lag's, grown in proportion; the deviation
    never shrinks with the lag."""
    sd = np.quantile(np.abs(errors), _ERROR_QUANTILE, axis=3) * _QUANTILE_TO_SD  # (S, P, K)
    for k in range(1, len(LAGS)):
        missing = lag_count[:, k] == 0
        grown = sd[:, :, k - 1] * (LAGS[k] / LAGS[k - 1])
        sd[:, :, k] = np.where(missing[None, :], grown, np.maximum(sd[:, :, k], sd[:, :, k - 1]))
    return sd


def _point_probabilities(
    errors: FloatArray,
    lag_count: npt.NDArray[np.int64],
    mean: FloatArray,
    sd: FloatArray,
    noise: FloatArray,
    high: FloatArray,
    low: FloatArray,
    steps: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """P(the value is beyond each limit) at each point of the horizon, per scale: (S, P, G).

    Empirical where the lag's error window is full: the recent signed errors of forecasts as
    far ahead, added to this forecast, each smoothed by the sample noise (a kernel estimate, so
    a lagging trend's one-sided errors count on their side); normal with ``sd`` otherwise. The
    kernel is evaluated only where even the largest error could bring the value near the limit
    (elsewhere that bound, below 1e-6, stands in), which keeps a check of calm paths cheap.
    """
    _, paths, lags, window = errors.shape
    rows = np.arange(paths)[:, None]
    nearest = np.minimum(np.rint(np.log2(np.maximum(steps, 1.0))), lags - 1).astype(np.intp)
    stretch = np.maximum(steps / LAGS[-1], 1.0)[None, :, :]  # beyond the last lag: in proportion
    full = np.broadcast_to((lag_count[rows, nearest] >= window)[None, :, :], mean.shape)
    width = np.broadcast_to(noise, mean.shape)
    results: list[FloatArray] = []
    for limit, sign, extreme in ((high, 1.0, errors.max(axis=3)), (low, -1.0, errors.min(axis=3))):
        limit = np.broadcast_to(limit, mean.shape)
        # the bound where the window is full, the normal elsewhere: each only where it is used
        point = np.empty(mean.shape)
        point[full] = ndtr(
            (sign * (mean + extreme[:, rows, nearest] * stretch - limit) / width)[full]
        )
        partial = ~full
        if partial.any():
            point[partial] = ndtr((sign * (mean - limit) / sd)[partial])
        s_i, p_i, g_i = np.nonzero(full & (point > 1e-6))
        if s_i.size:
            outcomes = (
                mean[s_i, p_i, g_i, None]
                + errors[s_i, p_i, nearest[p_i, g_i], :] * (stretch[0, p_i, g_i, None])
            )
            kernel = ndtr(
                sign * (outcomes - limit[s_i, p_i, g_i, None]) / width[s_i, p_i, g_i, None]
            )
            point[s_i, p_i, g_i] = kernel.mean(axis=1)
        results.append(point)
    return results[0], results[1]


def _at_lag(per_lag: FloatArray, steps: FloatArray) -> FloatArray:
    """A per-lag quantity (S, P, K) at ``steps`` samples ahead (P, G), interpolated on the log
    of the lag and held beyond the last lag: (S, P, G)."""
    position = np.minimum(np.log2(np.maximum(steps, 1.0)), len(LAGS) - 1.0)
    lower = np.minimum(np.floor(position), len(LAGS) - 2).astype(np.intp)
    fraction = position - lower
    index = np.broadcast_to(lower[None, :, :], (per_lag.shape[0], *lower.shape))
    below = np.take_along_axis(per_lag, index, axis=2)
    above = np.take_along_axis(per_lag, index + 1, axis=2)
    result: FloatArray = below + (above - below) * fraction[None, :, :]
    return result


def _sd_at(lag_sd: FloatArray, steps: FloatArray) -> FloatArray:
    """The band's deviation ``steps`` samples ahead (P, G), per scale: (S, P, G)."""
    position = np.log2(np.maximum(steps, 1.0))
    last = len(LAGS) - 1
    lower = np.minimum(np.floor(position), last - 1).astype(np.intp)
    fraction = np.minimum(position - lower, 1.0)
    index = np.broadcast_to(lower[None, :, :], (lag_sd.shape[0], *lower.shape))
    below = np.take_along_axis(lag_sd, index, axis=2)
    above = np.take_along_axis(lag_sd, index + 1, axis=2)
    sd = below + (above - below) * fraction[None, :, :]
    beyond = np.maximum(steps / LAGS[-1], 1.0)[None, :, :]
    result: FloatArray = np.where(beyond > 1.0, lag_sd[:, :, last : last + 1] * beyond, sd)
    return result


#: Quantiles of the fitted path at which the chance of a noisy sample crossing is bounded.
_PATH_Z = (0.5, 1.0, 1.5, 2.0)


def _any_sample(
    margin: FloatArray, spread: FloatArray, noise: FloatArray, weight: FloatArray
) -> FloatArray:
    """A lower bound of P(at least one sample beyond the limit within the horizon).

    The path stays above ``mean - z * spread`` with probability ``Phi(z)``; along that lower
    path, samples scatter independently with ``noise``, so some sample crosses with probability
    ``1 - prod_k (1 - Phi(margin_k / noise))`` over the horizon's samples (``weight`` per
    point). The bound is the largest product of the two over a few ``z``.
    """
    best = np.zeros(margin.shape[:2])
    noise = np.broadcast_to(noise, margin.shape)
    # only where some sample could come within 8 noise deviations of the limit
    s_i, p_i = np.nonzero((margin / noise).max(axis=2) > -8.0)
    if s_i.size == 0:
        return best
    margin, spread = (
        margin[s_i, p_i],
        np.broadcast_to(spread, best.shape + margin.shape[2:])[s_i, p_i],
    )
    noise, weight = (
        noise[s_i, p_i],
        np.broadcast_to(weight, best.shape + margin.shape[1:])[s_i, p_i],
    )
    chosen = np.zeros(s_i.size)
    for z in _PATH_Z:
        p_single = ndtr((margin - z * spread) / noise)
        log_clear = np.sum(weight * np.log1p(-np.minimum(p_single, 1.0 - 1e-12)), axis=1)
        chosen = np.maximum(chosen, 0.5 * math.erfc(-z / math.sqrt(2.0)) * -np.expm1(log_clear))
    best[s_i, p_i] = chosen
    return best


def _first_crossing(
    mean: FloatArray, limit: FloatArray, times: FloatArray, above: bool
) -> FloatArray:
    """Seconds until each row of ``mean`` first reaches ``limit`` (linear between points)."""
    with np.errstate(invalid="ignore"):
        margin = (mean - limit[:, None]) if above else (limit[:, None] - mean)
    crossed = margin >= 0.0
    any_crossed = crossed.any(axis=1)
    first = crossed.argmax(axis=1)
    result = np.full(mean.shape[0], np.nan)
    rows = np.nonzero(any_crossed)[0]
    if rows.size == 0:
        return result
    k = first[rows]
    at_start = k == 0
    result[rows[at_start]] = 0.0
    later = rows[~at_start]
    k = k[~at_start]
    before = margin[later, k - 1]  # < 0
    after = margin[later, k]  # >= 0
    fraction = -before / (after - before)
    result[later] = times[k - 1] + fraction * (times[k] - times[k - 1])
    return result


def _lookup(state: Mapping[str, Any], path: str) -> Any:
    node: Any = state
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node
