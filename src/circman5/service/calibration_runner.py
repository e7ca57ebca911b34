"""Calibration at the edge: read the recorded history from where the service keeps it, fit the
process model (:mod:`~circman5.manufacturing.digital_twin.simulation.calibration`) and save the
result. Used by ``circman5 calibrate`` and the API.

Sources: ``embedded`` (the embedded store under the data directory), ``influxdb`` (the server of
``[outputs.influxdb]``, read through the ``/api/v1/export`` API that VictoriaMetrics offers) and
``twin`` (the twin's in-memory state history; the API only).

The window, the histories and the run itself are the twin's
(:mod:`~circman5.manufacturing.digital_twin.simulation.calibration_run`, re-exported here), so
the API uses them without reaching into the service.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from circman5.errors import ConfigError, InvalidInputError
from circman5.manufacturing.digital_twin.simulation.calibration import PathHistory
from circman5.manufacturing.digital_twin.simulation.calibration_run import (
    WANTED_PATHS,
    Window,
    histories,
    parse_time,
    run_calibration,
)
from circman5.settings import Settings

logger = logging.getLogger(__name__)

__all__ = [
    "WANTED_PATHS",
    "HistorySource",
    "Window",
    "histories",
    "parse_time",
    "read_arrays",
    "read_history",
    "run_calibration",
]

HistorySource = Literal["embedded", "influxdb", "twin"]
FloatArray = NDArray[np.float64]


def default_source(settings: Settings) -> HistorySource:
    """``influxdb`` when the service writes to a server, else ``embedded``."""
    outputs = settings.outputs
    return "influxdb" if outputs.influxdb or outputs.influxdb1 else "embedded"


def read_history(
    settings: Settings, source: HistorySource, window: Window, data_dir: Path
) -> dict[str, PathHistory]:
    """The history of the calibrated paths and their inputs from ``source`` (blocking)."""
    return histories(read_arrays(settings, source, window, data_dir, WANTED_PATHS))


def read_arrays(
    settings: Settings,
    source: str,
    window: Window,
    data_dir: Path,
    paths: Sequence[str],
) -> dict[str, tuple[FloatArray, FloatArray]]:
    """``{path: (times_s, values)}`` of ``paths`` from ``source`` (blocking; see
    :mod:`circman5.sinks.history`)."""
    series = settings.outputs.series
    if source == "embedded":
        from circman5.sinks.history import read_embedded_history

        file = data_dir / settings.outputs.embedded.file
        return read_embedded_history(
            file,
            paths,
            window.start_s,
            window.end_s,
            sample_measurement=series.sample_measurement,
            kpi_measurement=series.kpi_measurement,
        )
    if source == "influxdb":
        return _read_influx(settings, window, paths)
    raise InvalidInputError(f"source '{source}' cannot be read here; use embedded or influxdb")


def _read_influx(
    settings: Settings, window: Window, paths: Sequence[str]
) -> dict[str, tuple[FloatArray, FloatArray]]:
    """From the configured server: InfluxQL for ``influxdb1``; Flux for ``influxdb`` (v2 API),
    or VictoriaMetrics' export API when the server has no Flux."""
    from circman5.sinks.history import read_export_history
    from circman5.sinks.influx_history import (
        FluxNotSupported,
        read_flux_history,
        read_influxql_history,
    )

    series = settings.outputs.series
    measurements = (series.sample_measurement, series.kpi_measurement)
    v1 = settings.outputs.influxdb1
    if v1 is not None:
        return read_influxql_history(
            v1.url,
            v1.database,
            paths,
            window.start_s,
            window.end_s,
            retention_policy=v1.retention_policy,
            measurements=measurements,
            username=v1.username,
            password=v1.password.get_secret_value() if v1.password else None,
            timeout_s=v1.timeout_s,
        )
    influx = settings.outputs.influxdb
    if influx is None:
        raise ConfigError("settings", "outputs.influxdb", "no InfluxDB server is configured")
    token = influx.token.get_secret_value()
    try:
        return read_flux_history(
            influx.url,
            influx.org,
            influx.bucket,
            paths,
            window.start_s,
            window.end_s,
            token=token,
            measurements=measurements,
            timeout_s=influx.timeout_s,
            verify_ssl=influx.verify_ssl,
        )
    except FluxNotSupported:
        logger.info("%s has no Flux: reading its export API (VictoriaMetrics)", influx.url)
    return read_export_history(
        influx.url,
        paths,
        window.start_s,
        window.end_s,
        measurements=measurements,
        timeout_s=influx.timeout_s,
        headers={"Authorization": f"Token {token}"} if token else None,
    )
