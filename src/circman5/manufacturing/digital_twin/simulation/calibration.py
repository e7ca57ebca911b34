"""Calibration: fit the process model's parameters to the recorded history of the connected line.

:func:`calibrate` takes plain arrays (a :class:`PathHistory` per twin path: times in seconds and
values; the readers that produce them live at the edge, in :mod:`circman5.sinks.history`),
resamples them onto one grid of ``time_step_s`` seconds (last value held) and fits, per path,
the equation of :class:`~.process_models.PVManufacturingModel` that drives it, with
``scipy.optimize.least_squares`` on the one-step residuals (bounded parameters):

==============================================  ==============================================
path                                            fitted parameters (inputs from other paths)
==============================================  ==============================================
``production_line.temperature``                 ``temperature_regulation``, ``temperature_noise``
                                                (input ``production_line.target_temperature``;
                                                without it also ``target_temperature``)
``production_line.production_rate``             ``nominal_production_rate``,
                                                ``production_rate_increment``,
                                                ``production_rate_noise`` (input ``cycle_time``)
``production_line.energy_consumption``          ``idle_power``, ``energy_per_module``,
                                                ``energy_consumption_increment``, ``energy_noise``
                                                (inputs ``production_rate``, ``efficiency``)
``production_line.efficiency``                  ``base_efficiency``,
                                                ``efficiency_temperature_sensitivity``
``production_line.defect_rate``                 ``base_defect_rate``,
                                                ``defect_temperature_sensitivity``
``environment.temperature``                     ``ambient_temperature``, ``environment_reversion``,
                                                ``environment_temperature_noise``
``environment.humidity``                        ``ambient_humidity``, ``environment_reversion``,
                                                ``humidity_noise``
==============================================  ==============================================

The fit is judged on a **free run**: the model, started from the first measured value and driven
only by the measured inputs (no measured value of the path itself after the start), is compared
with the measurement. R² of that run and the RMSE of the one-step residuals are reported with the
window and the number of grid points. A path whose free-run R² is below ``min_r2`` (default 0.8)
is reported ``not explained``: its parameters are *not* used (the statistical forecaster keeps
it). A path that does not move in the window (no setpoint change, only noise) cannot be
identified and is not explained either. Offsets (targets, ambient values) are bounded to the
range the path was seen in, widened by a quarter of that range, so a drift is never passed off
as a far-away setpoint.

A calibration is saved as JSON under ``<data dir>/calibrations/`` (``calibration-000001.json``,
numbered monotonically) with an ``active.json`` pointer, or, with ``[database] url``, in
PostgreSQL's ``calibrations`` tables (:func:`use_calibration_store`, set by the service);
:func:`load_active_calibration` returns the active one, whose :attr:`Calibration.parameters`
(of the accepted paths only) override ``SIMULATION_PARAMETERS`` in the simulation engine, Monte
Carlo and scenarios.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from circman5.adapters.config.simulation_parameters import SimulationParameters
from circman5.errors import ConfigError, InvalidInputError
from circman5.storage.calibration_files import FileCalibrationStore
from circman5.storage.contracts import CalibrationStore

logger = logging.getLogger(__name__)

__all__ = [
    "CALIBRATED_PATHS",
    "Calibration",
    "CalibrationOptions",
    "PathFit",
    "PathHistory",
    "calibrate",
    "calibration_store",
    "calibrations_dir",
    "format_report",
    "list_calibrations",
    "load_active_calibration",
    "load_calibration",
    "save_calibration",
    "use_calibration_store",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
FitStatus = Literal["accepted", "not explained", "no data"]

_FORMAT = "circman5.calibration/1"

TEMPERATURE = "production_line.temperature"
TARGET = "production_line.target_temperature"
RATE = "production_line.production_rate"
CYCLE = "production_line.cycle_time"
ENERGY = "production_line.energy_consumption"
EFFICIENCY = "production_line.efficiency"
DEFECTS = "production_line.defect_rate"
ENV_TEMPERATURE = "environment.temperature"
HUMIDITY = "environment.humidity"

#: The paths a calibration fits, in fitting order.
CALIBRATED_PATHS: tuple[str, ...] = (
    TEMPERATURE,
    RATE,
    ENERGY,
    EFFICIENCY,
    DEFECTS,
    ENV_TEMPERATURE,
    HUMIDITY,
)
#: Input paths the fits read besides the calibrated ones.
INPUT_PATHS: tuple[str, ...] = (TARGET, CYCLE, "production_line.running")


@dataclass(frozen=True)
class PathHistory:
    """Recorded values of one path: ``times_s`` (Unix seconds, ascending) and ``values``."""

    times_s: FloatArray
    values: FloatArray

    @classmethod
    def of(cls, times_s: Iterable[float], values: Iterable[float]) -> PathHistory:
        t = np.asarray(times_s if isinstance(times_s, np.ndarray) else list(times_s), np.float64)
        v = np.asarray(values if isinstance(values, np.ndarray) else list(values), np.float64)
        if t.shape != v.shape or t.ndim != 1:
            raise InvalidInputError("times and values must be 1-D arrays of the same length")
        keep = np.isfinite(t) & np.isfinite(v)
        t, v = t[keep], v[keep]
        order = np.argsort(t, kind="stable")
        return cls(t[order], v[order])

    def __len__(self) -> int:
        return int(self.times_s.shape[0])


@dataclass(frozen=True)
class CalibrationOptions:
    """``min_r2``: acceptance (free-run R²); ``min_points``: grid points a path needs;
    ``step_s``: the grid (default the base parameters' ``time_step_s``); ``start_s`` / ``end_s``:
    the window (Unix seconds; default all of the history)."""

    min_r2: float = 0.8
    min_points: int = 30
    step_s: float | None = None
    start_s: float | None = None
    end_s: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_r2 <= 1.0:
            raise InvalidInputError(f"min_r2 must be between 0 and 1, got {self.min_r2}")
        if self.min_points < 3:
            raise InvalidInputError(f"min_points must be at least 3, got {self.min_points}")
        if self.step_s is not None and not (math.isfinite(self.step_s) and self.step_s > 0):
            raise InvalidInputError(f"step_s must be a positive number, got {self.step_s}")


@dataclass(frozen=True)
class PathFit:
    """The fit of one path. ``parameters``: the fitted values (``SIMULATION_PARAMETERS`` keys);
    ``r2``: free-run R²; ``rmse``: one-step residual RMSE; ``points``: grid points used."""

    path: str
    status: FitStatus
    r2: float | None = None
    rmse: float | None = None
    points: int = 0
    start: str | None = None
    end: str | None = None
    parameters: dict[str, float] = field(default_factory=dict)
    time_constant_s: float | None = None
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "r2": self.r2,
            "rmse": self.rmse,
            "points": self.points,
            "start": self.start,
            "end": self.end,
            "parameters": dict(self.parameters),
            "time_constant_s": self.time_constant_s,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PathFit:
        status = str(data["status"])
        if status not in ("accepted", "not explained", "no data"):
            raise ValueError(f"unknown status {status!r}")
        return cls(
            path=str(data["path"]),
            status=status,  # type: ignore[arg-type]
            r2=_opt_float(data.get("r2")),
            rmse=_opt_float(data.get("rmse")),
            points=int(data.get("points", 0)),
            start=data.get("start"),
            end=data.get("end"),
            parameters={str(k): float(v) for k, v in dict(data.get("parameters", {})).items()},
            time_constant_s=_opt_float(data.get("time_constant_s")),
            reason=str(data.get("reason", "")),
        )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class Calibration:
    """A calibration: per-path fits and the parameters of the accepted paths.

    ``version`` is 0 until :func:`save_calibration` numbers it.
    """

    version: int
    created_at: str
    source: str
    start: str | None
    end: str | None
    step_s: float
    min_r2: float
    fits: tuple[PathFit, ...]
    parameters: dict[str, float]

    @property
    def accepted_paths(self) -> frozenset[str]:
        """The paths the process model explains (where the model forecaster may be used)."""
        return frozenset(f.path for f in self.fits if f.accepted)

    @property
    def label(self) -> str:
        """How results name this parameter set: ``calibration 3``."""
        return f"calibration {self.version}"

    def fit(self, path: str) -> PathFit | None:
        return next((f for f in self.fits if f.path == path), None)

    def simulation_parameters(self, base: SimulationParameters) -> SimulationParameters:
        """``base`` with this calibration's parameters (accepted paths only) applied."""
        if not self.parameters:
            return base
        return base.model_copy(update=dict(self.parameters))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": self.version,
            "created_at": self.created_at,
            "source": self.source,
            "window": {"start": self.start, "end": self.end, "step_s": self.step_s},
            "min_r2": self.min_r2,
            "accepted_paths": sorted(self.accepted_paths),
            "parameters": dict(self.parameters),
            "paths": [f.to_dict() for f in self.fits],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        if data.get("format") != _FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {_FORMAT!r}")
        window = dict(data["window"])
        parameters = {str(k): float(v) for k, v in dict(data["parameters"]).items()}
        unknown = set(parameters) - set(SimulationParameters.model_fields)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        # the values must be valid model parameters (pydantic's ValidationError is a ValueError)
        SimulationParameters.model_validate({**SimulationParameters().model_dump(), **parameters})
        return cls(
            version=int(data["version"]),
            created_at=str(data["created_at"]),
            source=str(data["source"]),
            start=window.get("start"),
            end=window.get("end"),
            step_s=float(window["step_s"]),
            min_r2=float(data["min_r2"]),
            fits=tuple(PathFit.from_dict(f) for f in data["paths"]),
            parameters=parameters,
        )


# -- fitting -------------------------------------------------------------------------------------
def iso_time(seconds: float) -> str:
    """Unix seconds as ISO 8601 (UTC)."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat()


def calibrate(
    history: Mapping[str, PathHistory],
    base: SimulationParameters | None = None,
    options: CalibrationOptions | None = None,
    source: str = "history",
) -> Calibration:
    """Fit the process model to ``history`` (see the module doc); an unsaved calibration.

    ``base``: the parameters to start from and to keep where nothing is fitted (default: the
    configured ``SIMULATION_PARAMETERS``).
    """
    from circman5.manufacturing.digital_twin.simulation.calibration_fit import fit_history

    if base is None:
        from circman5.manufacturing.digital_twin.simulation.process_models import (
            load_simulation_parameters,
        )

        base = load_simulation_parameters()
    return fit_history(history, base, options or CalibrationOptions(), source)


# -- storage -------------------------------------------------------------------------------------
def calibrations_dir(data_dir: Path | None = None) -> Path:
    """``<data dir>/calibrations`` (not created)."""
    if data_dir is None:
        from circman5 import paths

        data_dir = paths.data_dir(create=False)
    return Path(data_dir) / "calibrations"


_configured_store: CalibrationStore | None = None


def use_calibration_store(store: CalibrationStore | None) -> None:
    """Keep this process's calibrations in ``store`` (the service's PostgreSQL with
    ``[database] url``); None: back to the files of the data directory."""
    global _configured_store
    _configured_store = store


def calibration_store(
    data_dir: Path | None = None, store: CalibrationStore | None = None
) -> CalibrationStore:
    """Where calibrations are: ``store``, else the one given to
    :func:`use_calibration_store` (``data_dir`` is then not used), else the files of
    ``data_dir`` (default: the current data directory)."""
    if store is not None:
        return store
    if _configured_store is not None:
        return _configured_store
    return FileCalibrationStore(calibrations_dir(data_dir))


def list_calibrations(
    data_dir: Path | None = None, *, store: CalibrationStore | None = None
) -> list[int]:
    """The saved calibration versions, ascending."""
    return calibration_store(data_dir, store).versions()


def save_calibration(
    calibration: Calibration,
    data_dir: Path | None = None,
    activate: bool = True,
    *,
    store: CalibrationStore | None = None,
) -> Calibration:
    """Save ``calibration`` as the next version (and make it the active one); returns it
    numbered."""
    target = calibration_store(data_dir, store)

    def document(version: int) -> str:
        return json.dumps(_with_version(calibration, version).to_dict(), indent=2) + "\n"

    version = target.add(document, activate)
    logger.info("calibration %d saved to %s", version, target.where(version))
    return _with_version(calibration, version)


def activate_calibration(
    version: int, data_dir: Path | None = None, *, store: CalibrationStore | None = None
) -> None:
    """Make a saved version the active one."""
    target = calibration_store(data_dir, store)
    if not target.activate(version):
        raise InvalidInputError(f"no calibration {version} in {target.location}")


def _with_version(calibration: Calibration, version: int) -> Calibration:
    return replace(calibration, version=version)


def load_calibration(
    version: int, data_dir: Path | None = None, *, store: CalibrationStore | None = None
) -> Calibration:
    """A saved version; :class:`ConfigError` (where, key, reason) when it is not usable."""
    source = calibration_store(data_dir, store)
    where = source.where(version)
    text = source.document(version)
    if text is None:
        raise ConfigError(where, "(file)", "not found")
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ConfigError(where, "(syntax)", f"not readable JSON: {err}") from err
    try:
        return Calibration.from_dict(data)
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(where, "(content)", f"not a circman5 calibration: {err}") from err


def load_active_calibration(
    data_dir: Path | None = None, *, store: CalibrationStore | None = None
) -> Calibration | None:
    """The active calibration, or None when none was saved (a broken file raises
    :class:`ConfigError` naming it)."""
    source = calibration_store(data_dir, store)
    version = source.active_version()
    return None if version is None else load_calibration(version, store=source)


def active_calibration_stamp(
    data_dir: Path | None = None, *, store: CalibrationStore | None = None
) -> object | None:
    """A cheap change marker of the active version (files: the pointer's inode and mtime),
    or None without one."""
    return calibration_store(data_dir, store).active_stamp()


# -- report --------------------------------------------------------------------------------------
def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def format_report(calibration: Calibration) -> str:
    """The per-path fit table (what ``circman5 calibrate`` prints)."""
    title = (
        f"calibration {calibration.version or '(not saved)'} from {calibration.source}: "
        f"{calibration.start or '-'} .. {calibration.end or '-'} "
        f"(step {calibration.step_s:g} s, accept R² >= {calibration.min_r2:g})"
    )
    header = f"{'path':<38} {'status':<14} {'R²':>7} {'RMSE':>9} {'points':>7}  parameters"
    lines = [title, header, "-" * len(header)]
    for f in calibration.fits:
        params = ", ".join(f"{k}={v:.4g}" for k, v in f.parameters.items())
        if f.time_constant_s is not None:
            params += f" (tau {f.time_constant_s:.3g} s)"
        note = params if f.status != "no data" else f.reason
        if f.status == "not explained" and f.reason:
            note = f"{f.reason}; {params}" if params else f.reason
        lines.append(
            f"{f.path:<38} {f.status:<14} {_number(f.r2):>7} {_number(f.rmse):>9} "
            f"{f.points:>7}  {note}"
        )
    accepted = sorted(calibration.accepted_paths)
    lines.append(
        f"explained by the model: {', '.join(accepted) if accepted else 'none'}; "
        "the others are left to the statistical forecaster"
    )
    return "\n".join(lines)


# -- history from twin states ----------------------------------------------------------------------
def _seconds(stamp: Any) -> float | None:
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return float(stamp)
    if isinstance(stamp, str):
        try:
            moment = datetime.datetime.fromisoformat(stamp)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return moment.timestamp()
    if isinstance(stamp, datetime.datetime):
        return stamp.timestamp()
    return None


def history_from_states(states: Iterable[Mapping[str, Any]]) -> dict[str, PathHistory]:
    """The calibrated and input paths of twin states (each with a ``timestamp``), e.g. the
    StateManager's history; ``production_line.status`` becomes ``production_line.running``."""
    wanted = [p for p in (*CALIBRATED_PATHS, *INPUT_PATHS) if p != "production_line.running"]
    columns: dict[str, tuple[list[float], list[float]]] = {}
    for state in states:
        t = _seconds(state.get("timestamp"))
        if t is None:
            continue
        line = state.get("production_line")
        if isinstance(line, Mapping) and isinstance(line.get("status"), str):
            times, values = columns.setdefault("production_line.running", ([], []))
            times.append(t)
            values.append(1.0 if line["status"] == "running" else 0.0)
        for path in wanted:
            section, _, key = path.partition(".")
            node = state.get(section)
            value = node.get(key) if isinstance(node, Mapping) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                times, values = columns.setdefault(path, ([], []))
                times.append(t)
                values.append(float(value))
    return {path: PathHistory.of(t, v) for path, (t, v) in columns.items()}
