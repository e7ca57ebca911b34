"""Forecast quality and cost: warnings ahead of breaches on signals unlike the plant model.

Ground-truth signals (limit: ``[18, 27]``, the line temperature's rule, 1% deadband), sampled at
about 1 Hz with jittered, per-path sample times, replayed through the ``ForecastChecker`` in
simulated time (a check every simulated second, no sleeping):

* ``ramp``: a noisy plateau at 22, then a ramp of 0.02 / 0.1 / 0.5 / 1 units/s to 30, a hold,
  back down; repeated;
* ``drift``: a slow linear drift (0.003-0.01 units/s) from 22 past the limit, then reset;
* ``oscillation``: a sine around 24 with amplitude 3.5-4 and a 30-120 s period, crossing 27 at
  every peak;
* ``random_walk``: a random walk with drift from 22 until it has been above the limit a while;
* ``step``: a setpoint step 22 -> 30 with a first-order response (time constant 5-20 s);
* ``plateau``: noisy plateaus 4.5-6 noise deviations below the limit that never breach.

An excursion ends once the signal is back ``REARM_MARGIN`` below the limit (noise chattering
across the limit is one excursion, as the flood control treats it).

Per kind: recall of excursions warned at least ``LEAD_S`` s ahead (target >= 90%), the median
lead time, and on never-breaching signals the false warnings per hour (target <= 1). Cost: one
check of 1,000 monitored paths (CPU time, % of one core at one check a second, target <= 5%) and
the per-sample update. Baseline in the same run: the model-only forecast (the process model's
Monte Carlo at its configured ``min_interval_s``), on one signal of each kind.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from benchmarks.report import Row
from circman5.adapters.config.simulation_parameters import ForecastCheckConfig
from circman5.adapters.config.thresholds import ThresholdRule
from circman5.adapters.services.constants_service import ConstantsService
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    Event,
    ForecastEvent,
)
from circman5.manufacturing.digital_twin.simulation.forecast import ForecastChecker
from circman5.manufacturing.digital_twin.simulation.simulation_engine import SimulationEngine
from tests.fixtures.spec_state import spec_state

LOW, HIGH = 18.0, 27.0
DEADBAND = 0.01 * (HIGH - LOW)
LEAD_S = 2.0
#: An excursion ends (and the next approach starts) this far below the limit.
REARM_MARGIN = 1.0
PATHS_FOR_COST = 1_000
SEEDS = 4
BASELINE_SECONDS = 1_800.0

Signal = tuple[np.ndarray, np.ndarray]


@dataclass
class Case:
    kind: str
    label: str
    times: np.ndarray
    values: np.ndarray
    breaches: bool = True
    warnings: list[float] = field(default_factory=list)
    low_warnings: list[float] = field(default_factory=list)


def sample_times(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """About 1 Hz, each interval 0.7-1.3 s: irregular and per path."""
    steps = rng.uniform(0.7, 1.3, int(seconds * 1.1) + 10)
    times = np.cumsum(steps)
    return times[times < seconds]


def ramp(rng: np.random.Generator, slope: float) -> Signal:
    rise = (30.0 - 22.0) / slope
    cycle = 60.0 + rise + 20.0 + rise
    seconds = cycle * max(4, int(3_600 / cycle / 4))
    t = sample_times(rng, seconds)
    phase = t % cycle
    up = np.clip((phase - 60.0) / rise, 0.0, 1.0)
    down = np.clip((phase - 80.0 - rise) / rise, 0.0, 1.0)
    return t, 22.0 + 8.0 * (up - down) + rng.normal(0.0, 0.1, t.size)


def drift(rng: np.random.Generator, rate: float) -> Signal:
    duration = (28.0 - 22.0) / rate
    t = sample_times(rng, duration * 4)
    return t, 22.0 + rate * (t % duration) + rng.normal(0.0, 0.1, t.size)


def oscillation(rng: np.random.Generator, period: float, amplitude: float) -> Signal:
    t = sample_times(rng, max(3_600.0, period * 20))
    phase = rng.uniform(0, 2 * math.pi)
    wave = 24.0 + amplitude * np.sin(2 * math.pi * t / period + phase)
    return t, wave + rng.normal(0.0, 0.1, t.size)


def random_walk(rng: np.random.Generator, rate: float, sigma: float) -> Signal:
    t = sample_times(rng, 3_600.0)
    values = np.empty(t.size)
    value, above, previous = 22.0, 0, 0.0
    for k, now in enumerate(t):
        dt = now - previous
        previous = now
        value += rate * dt + sigma * math.sqrt(dt) * rng.normal()
        above = above + 1 if value > HIGH else 0
        if above > 10:
            value, above = 22.0, 0  # the operator pulls it back
        values[k] = value
    return t, values


def step(rng: np.random.Generator, tau: float) -> Signal:
    hold = 10 * tau + 60.0
    cycle = 2 * hold
    t = sample_times(rng, cycle * 6)
    phase = t % cycle
    target = np.where(phase < hold, 22.0, 30.0)
    since = np.where(phase < hold, phase, phase - hold)
    start = np.where(phase < hold, 30.0, 22.0)
    values = target + (start - target) * np.exp(-since / tau)
    values[t < hold] = 22.0 + 0.0 * values[t < hold]  # the first cycle starts settled
    return t, values + rng.normal(0.0, 0.1, t.size)


def plateau(rng: np.random.Generator, margin_sd: float, sd: float) -> Signal:
    t = sample_times(rng, 3 * 3_600.0)
    return t, HIGH - margin_sd * sd + rng.normal(0.0, sd, t.size)


def cases() -> list[Case]:
    out: list[Case] = []
    for seed in range(SEEDS):
        rng = np.random.default_rng(1000 + seed)
        for slope in (0.02, 0.1, 0.5, 1.0):
            out.append(Case("ramp", f"ramp {slope}/s", *ramp(rng, slope)))
        for rate in (0.003, 0.01):
            out.append(Case("drift", f"drift {rate}/s", *drift(rng, rate)))
        for period, amplitude in ((30.0, 3.5), (120.0, 4.0)):
            out.append(
                Case("oscillation", f"sine {period:.0f}s", *oscillation(rng, period, amplitude))
            )
        out.append(Case("random_walk", "walk 0.02/s", *random_walk(rng, 0.02, 0.1)))
        out.append(Case("random_walk", "walk 0.05/s", *random_walk(rng, 0.05, 0.2)))
        for tau in (5.0, 20.0):
            out.append(Case("step", f"step tau {tau:.0f}s", *step(rng, tau)))
        for margin, sd in ((5.0, 0.3), (6.0, 0.1), (4.5, 0.5)):
            case = Case(
                "plateau", f"plateau {margin} sd", *plateau(rng, margin, sd), breaches=False
            )
            assert not (case.values > HIGH).any(), "a never-breaching signal breached"
            out.append(case)
    return out


def excursions(times: np.ndarray, values: np.ndarray) -> Iterator[tuple[float, float]]:
    """(start of the approach, time of the breach) per excursion.

    An excursion is over once the signal is back ``REARM_MARGIN`` below the limit: noise
    chattering across the limit at the end of a slow drift is one excursion (one approach), as
    the forecast's flood control treats it.
    """
    active = False
    approach = float(times[0])
    for t, v in zip(times.tolist(), values.tolist(), strict=True):
        if not active and v > HIGH:
            active = True
            yield approach, t
        elif active and v <= HIGH - REARM_MARGIN:
            active = False
            approach = t


def replay(
    group: list[Case], checker: ForecastChecker, published: list[Event], period: float = 1.0
) -> None:
    """Feed every case's samples in time order; check once every ``period`` simulated seconds."""
    paths = [f"signal.s{k}" for k in range(len(group))]
    merged = sorted(
        (float(t), k, float(v))
        for k, case in enumerate(group)
        for t, v in zip(case.times, case.values, strict=True)
    )
    end = merged[-1][0]
    cursor = 0
    now = period
    while now <= end + period:
        while cursor < len(merged) and merged[cursor][0] <= now:
            t, k, v = merged[cursor]
            checker.observe(paths[k], t, v)
            cursor += 1
        before = len(published)
        checker.check({}, now=now)
        for event in published[before:]:
            k = paths.index(event.details["parameter"])
            if event.details["direction"] == "exceed":
                group[k].warnings.append(now)
            else:
                group[k].low_warnings.append(now)
        now += period


@dataclass
class Score:
    excursions: int = 0
    warned: int = 0
    leads: list[float] = field(default_factory=list)
    false_warnings: int = 0
    hours: float = 0.0

    @property
    def recall(self) -> float:
        return 100.0 * self.warned / self.excursions if self.excursions else math.nan

    @property
    def false_per_hour(self) -> float:
        return self.false_warnings / self.hours if self.hours else math.nan


def score(group: list[Case], until: float = math.inf) -> dict[str, Score]:
    scores: dict[str, Score] = {}
    for case in group:
        s = scores.setdefault(case.kind, Score())
        if not case.breaches:
            s.hours += min(float(case.times[-1]), until) / 3600.0
            s.false_warnings += sum(1 for w in case.warnings if w <= until)
            continue
        for approach, breach in excursions(case.times, case.values):
            if breach > until:
                break
            s.excursions += 1
            early = [w for w in case.warnings if approach < w <= breach - LEAD_S]
            if early:
                s.warned += 1
                s.leads.append(breach - early[0])
    return scores


def rules(paths: list[str]) -> dict[str, ThresholdRule]:
    return {p: ThresholdRule(p, LOW, HIGH, deadband=DEADBAND) for p in paths}


def statistical_checker(count: int, published: list[Event]) -> ForecastChecker:
    config = ConstantsService().get_digital_twin_model().FORECAST_CHECK
    thresholds = rules([f"signal.s{k}" for k in range(count)])
    return ForecastChecker(SimulationEngine(None), thresholds, config, published.append)


class _ModelOnly:
    """The model-only forecast of one signal, fed as the line temperature of the spec's state."""

    PATH = "production_line.temperature"

    def __init__(self, config: ForecastCheckConfig, published: list[Event]) -> None:
        self.clock = 0.0
        model_config = config.model_copy(
            update={"statistical": config.statistical.model_copy(update={"enabled": False})}
        )
        self.checker = ForecastChecker(
            SimulationEngine(None),
            rules([self.PATH]),
            model_config,
            published.append,
            clock=lambda: self.clock,
            seed=1,
            model_paths=[self.PATH],
        )
        self.state = copy.deepcopy(STATE)


STATE: dict[str, object] = spec_state(inventory=1e7)


def baseline(group: list[Case]) -> dict[str, Score]:
    """The model-only forecast on one signal of each kind, for ``BASELINE_SECONDS``."""
    config = ConstantsService().get_digital_twin_model().FORECAST_CHECK
    chosen: dict[str, Case] = {}
    for case in group:
        chosen.setdefault(
            case.kind, Case(case.kind, case.label, case.times, case.values, case.breaches)
        )
    for case in chosen.values():
        published: list[Event] = []
        model = _ModelOnly(config, published)
        line = model.state["production_line"]
        assert isinstance(line, dict)
        for t, v in zip(case.times.tolist(), case.values.tolist(), strict=True):
            if t > BASELINE_SECONDS:
                break
            model.clock = t
            line["temperature"] = v
            before = len(published)
            model.checker.maybe_check(model.state)
            if len(published) > before:
                case.warnings.append(t)
    return score(list(chosen.values()), until=BASELINE_SECONDS)


def check_cost() -> tuple[float, float]:
    """CPU seconds of one check of ``PATHS_FOR_COST`` paths, and of one sample update."""
    published: list[Event] = []
    checker = statistical_checker(PATHS_FOR_COST, published)
    rng = np.random.default_rng(7)
    paths = [f"signal.s{k}" for k in range(PATHS_FOR_COST)]
    samples = 0
    spent = 0.0
    for second in range(30):
        noise = rng.normal(0.0, 0.2, PATHS_FOR_COST).tolist()
        started = time.process_time()
        for k, path in enumerate(paths):
            checker.observe(path, second + 0.001 * k, 24.0 + noise[k])
        if second >= 10:  # after the warm-up, which fills each error window at once
            spent += time.process_time() - started
            samples += PATHS_FOR_COST
    per_sample = spent / samples
    best = math.inf
    for second in range(30, 60):
        noise = rng.normal(0.0, 0.2, PATHS_FOR_COST).tolist()
        for k, path in enumerate(paths):
            checker.observe(path, second + 0.001 * k, 24.0 + noise[k] + 0.05 * (second - 30))
        started = time.process_time()
        checker.check({}, now=second + 1.0)
        best = min(best, time.process_time() - started)
    return best, per_sample


def main() -> list[Row]:
    ConstantsService._reset_instance()
    group = cases()
    published: list[Event] = []
    checker = statistical_checker(len(group), published)
    replay(group, checker, published)
    assert all(isinstance(e, ForecastEvent) for e in published)
    ours = score(group)
    base = baseline(group)
    check_s, sample_s = check_cost()
    ConstantsService._reset_instance()
    rows: list[Row] = []
    for kind, s in ours.items():
        b = base.get(kind, Score())
        if s.excursions:
            rows.append(
                Row(
                    f"{kind}: recall, warned >= {LEAD_S:.0f} s ahead ({s.excursions} breaches)",
                    s.recall,
                    "%",
                    90.0,
                    baseline=b.recall if b.excursions else None,
                    baseline_label="model-only",
                )
            )
            rows.append(
                Row(
                    f"{kind}: median lead time",
                    statistics.median(s.leads) if s.leads else 0.0,
                    "s",
                    None,
                    baseline=statistics.median(b.leads) if b.leads else None,
                    baseline_label="model-only",
                )
            )
        else:
            rows.append(
                Row(
                    f"{kind}: false warnings ({s.hours:.0f} h, never breaching)",
                    s.false_per_hour,
                    "per h",
                    1.0,
                    higher_is_better=False,
                    baseline=b.false_per_hour,
                    baseline_label="model-only",
                )
            )
    rows.append(
        Row(
            "CPU per path per check (1,000 paths)",
            check_s / PATHS_FOR_COST * 1e6,
            "µs",
            50.0,
            higher_is_better=False,
        )
    )
    rows.append(
        Row(
            "1,000 paths checked once a second",
            check_s * 100.0,
            "% core",
            5.0,
            higher_is_better=False,
        )
    )
    rows.append(Row("per-sample update (mean)", sample_s * 1e6, "µs", None, higher_is_better=False))
    rows.append(
        Row(
            "1,000 paths sampled at 1 Hz: updates",
            sample_s * PATHS_FOR_COST * 100.0,
            "% core",
            None,
            higher_is_better=False,
        )
    )
    return rows


Make = Callable[[], None]

if __name__ == "__main__":
    from benchmarks.report import print_table

    print_table("benchmark: forecast", main())
