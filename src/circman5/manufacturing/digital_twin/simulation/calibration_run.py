"""One calibration run, whoever asks for it (``circman5 calibrate``, the API): its time window,
the histories it fits and :func:`run_calibration` (fit, then save as the active version).

Reading the recorded history from the service's stores is the service's job
(:mod:`circman5.service.calibration_runner`); this module needs no service, store or protocol.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from circman5.adapters.services.constants_service import ConstantsService
from circman5.errors import InvalidInputError
from circman5.manufacturing.digital_twin.simulation.calibration import (
    CALIBRATED_PATHS,
    INPUT_PATHS,
    Calibration,
    CalibrationOptions,
    PathHistory,
    calibrate,
    save_calibration,
)

__all__ = ["WANTED_PATHS", "Window", "histories", "parse_time", "run_calibration"]

FloatArray = NDArray[np.float64]
#: The paths a calibration reads: the calibrated ones and their inputs.
WANTED_PATHS: tuple[str, ...] = tuple(
    p for p in (*CALIBRATED_PATHS, *INPUT_PATHS) if p != "production_line.running"
)


@dataclass(frozen=True)
class Window:
    """A time window in Unix seconds (None: open)."""

    start_s: float | None = None
    end_s: float | None = None

    @classmethod
    def of(
        cls, start: str | None = None, end: str | None = None, last_s: float | None = None
    ) -> Window:
        """From ``--start`` / ``--end`` (ISO 8601 or Unix seconds) or ``--last`` seconds."""
        end_s = parse_time(end) if end is not None else None
        start_s = parse_time(start) if start is not None else None
        if last_s is not None:
            if start is not None:
                raise InvalidInputError("give either a start or a duration (last), not both")
            if not (math.isfinite(last_s) and last_s > 0):
                raise InvalidInputError(f"last must be a positive number of seconds: {last_s}")
            start_s = (end_s if end_s is not None else time.time()) - last_s
        if start_s is not None and end_s is not None and start_s >= end_s:
            raise InvalidInputError("the window's start is not before its end")
        return cls(start_s, end_s)


def parse_time(text: str) -> float:
    """ISO 8601 (UTC unless an offset is given) or Unix seconds, as Unix seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError as err:
        raise InvalidInputError(f"'{text}' is neither ISO 8601 nor Unix seconds") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def histories(arrays: Mapping[str, tuple[FloatArray, FloatArray]]) -> dict[str, PathHistory]:
    """``{path: (times_s, values)}`` as the calibration's path histories."""
    return {path: PathHistory.of(t, v) for path, (t, v) in arrays.items()}


def run_calibration(
    history: Mapping[str, PathHistory],
    source: str,
    options: CalibrationOptions,
    data_dir: Path,
    save: bool = True,
    constants: ConstantsService | None = None,
) -> Calibration:
    """Fit, and (``save``) store as the next active version under ``data_dir``.

    ``constants``: where the base simulation parameters come from (default the singleton).
    """
    base = (constants or ConstantsService()).get_digital_twin_model().SIMULATION_PARAMETERS
    calibration = calibrate(history, base, options, source=source)
    if save:
        calibration = save_calibration(calibration, data_dir)
    return calibration
