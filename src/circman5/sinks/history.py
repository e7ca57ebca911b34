"""Read recorded history back as plain arrays: the embedded store and an InfluxDB-compatible
server (calibration, model training).

Each reader returns ``{path: (times_s, values)}``: numpy arrays, Unix seconds ascending, numeric
values only (samples of good quality; text values such as ``production_line.status`` are turned
into ``production_line.running``: 1 while the status is ``running``, else 0). Nothing of the twin
is imported here; the caller hands the arrays on.

* :func:`read_embedded_history`: the embedded SQLite store (read-only connection; the service may
  be writing meanwhile), the sample measurement first, the twin KPI measurement for paths without
  samples.
* :func:`read_export_history`: the ``/api/v1/export`` API of VictoriaMetrics (which accepts the
  service's InfluxDB line protocol writes); metric ``<measurement>_value`` with label ``path``.

InfluxDB itself answers InfluxQL and Flux instead: :mod:`circman5.sinks.influx_history`.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path

import httpx
import numpy as np
from numpy.typing import NDArray

from circman5.errors import SinkError, SinkUnavailable
from circman5.sinks.embedded import queries

logger = logging.getLogger(__name__)

__all__ = [
    "RUNNING_PATH",
    "STATUS_PATH",
    "Arrays",
    "arrays_of",
    "read_embedded_history",
    "read_export_history",
]

FloatArray = NDArray[np.float64]
Arrays = dict[str, tuple[FloatArray, FloatArray]]

STATUS_PATH = "production_line.status"
RUNNING_PATH = "production_line.running"
_MAX_POINTS = 5_000_000


def arrays_of(points: Iterable[tuple[float, float]]) -> tuple[FloatArray, FloatArray]:
    pairs = sorted(points)
    times = np.fromiter((p[0] for p in pairs), dtype=np.float64, count=len(pairs))
    values = np.fromiter((p[1] for p in pairs), dtype=np.float64, count=len(pairs))
    return times, values


def read_embedded_history(
    file: Path,
    paths: Sequence[str],
    start_s: float | None = None,
    end_s: float | None = None,
    *,
    sample_measurement: str = "sample",
    kpi_measurement: str = "twin_kpi",
) -> Arrays:
    """``paths`` (plus ``production_line.status`` as ``production_line.running``) from the
    embedded store ``file``; :class:`SinkUnavailable` when it cannot be opened."""
    if not file.is_file():
        raise SinkUnavailable(f"no embedded store at {file}")
    start_ns = None if start_s is None else int(start_s * 1e9)
    end_ns = None if end_s is None else int(end_s * 1e9)
    try:
        conn = sqlite3.connect(f"file:{file}?mode=ro", uri=True, timeout=10.0)
    except sqlite3.Error as err:
        raise SinkUnavailable(f"cannot open the embedded store {file}: {err}") from err
    found: Arrays = {}
    try:
        wanted = list(dict.fromkeys([*paths, STATUS_PATH]))
        for path in wanted:
            rows = []
            for measurement in (sample_measurement, kpi_measurement):
                rows = queries.points(conn, path, start_ns, end_ns, measurement, None, _MAX_POINTS)
                if rows:
                    break
            points: list[tuple[float, float]] = []
            for p in rows:
                if p.quality != "good":
                    continue
                if isinstance(p.value, str):
                    if path == STATUS_PATH:
                        points.append((p.timestamp_ns / 1e9, 1.0 if p.value == "running" else 0.0))
                    continue
                points.append((p.timestamp_ns / 1e9, float(p.value)))
            if points:
                found[RUNNING_PATH if path == STATUS_PATH else path] = arrays_of(points)
    except sqlite3.Error as err:
        raise SinkError(f"reading the embedded store {file} failed: {err}") from err
    finally:
        conn.close()
    return found


def read_export_history(
    url: str,
    paths: Sequence[str],
    start_s: float | None = None,
    end_s: float | None = None,
    *,
    measurements: Sequence[str] = ("sample", "twin_kpi"),
    timeout_s: float = 30.0,
    headers: dict[str, str] | None = None,
) -> Arrays:
    """``paths`` from a VictoriaMetrics ``/api/v1/export`` at ``url`` (blocking: call it in a
    worker thread). A path found under the first measurement is not read from the next."""
    found: Arrays = {}
    remaining = list(dict.fromkeys(paths))
    with httpx.Client(timeout=timeout_s, headers=headers) as client:
        for measurement in measurements:
            if not remaining:
                break
            # a regex inside a MetricsQL string literal: its backslashes are escaped again
            alternatives = "|".join(re.escape(p).replace("\\", "\\\\") for p in remaining)
            selector = f'{{__name__="{measurement}_value",path=~"{alternatives}"}}'
            params: dict[str, str] = {"match[]": selector}
            if start_s is not None:
                params["start"] = f"{start_s:.3f}"
            if end_s is not None:
                params["end"] = f"{end_s:.3f}"
            target = f"{url.rstrip('/')}/api/v1/export?{urllib.parse.urlencode(params)}"
            try:
                response = client.get(target)
            except httpx.HTTPError as err:
                raise SinkUnavailable(f"cannot read history from {url}: {err}") from err
            if response.status_code != 200:
                raise SinkError(
                    f"history query to {url} answered {response.status_code}: {response.text[:200]}"
                )
            collected: dict[str, list[tuple[float, float]]] = {}
            for line in response.text.splitlines():
                if not line.strip():
                    continue
                try:
                    series = json.loads(line)
                    labels = series["metric"]
                    path = str(labels["path"])
                    if labels.get("quality", "good") != "good":
                        continue
                    pairs = zip(series["timestamps"], series["values"], strict=True)
                    collected.setdefault(path, []).extend(
                        (float(t) / 1000.0, float(v)) for t, v in pairs
                    )
                except (ValueError, KeyError, TypeError) as err:
                    raise SinkError(f"unexpected export line from {url}: {err}") from err
            for path, points in collected.items():
                found[path] = arrays_of(points)
            remaining = [p for p in remaining if p not in found]
    logger.info("read %d of %d paths from %s", len(found), len(paths), url)
    return found
