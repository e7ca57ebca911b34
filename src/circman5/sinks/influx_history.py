"""Read recorded history back from InfluxDB itself: InfluxQL (1.x) and Flux (2.x / 3.x / 1.8+).

The service writes samples and KPIs as line protocol (:mod:`circman5.sinks.line_protocol`):
measurement ``sample`` (or ``twin_kpi``), tag ``path``, tag ``quality``, numeric field ``value``.
These readers ask for exactly that and return ``{path: (times_s, values)}`` like the readers of
:mod:`circman5.sinks.history`: numpy arrays, Unix seconds ascending, good quality only. A path
found under the first measurement is not read from the next.

* :func:`read_influxql_history`: ``GET /query`` of InfluxDB 1.x, chunked JSON, epoch in ms,
  user/password (query parameters ``u``/``p``) when the server has authentication on.
* :func:`read_flux_history`: ``POST /api/v2/query`` with a Flux query through the
  ``influxdb-client`` library (its CSV parser), token authentication. VictoriaMetrics has no Flux:
  for a server that answers the v2 write API but not Flux, the caller falls back to the export
  API (:func:`circman5.sinks.history.read_export_history`).

Blocking: call them in a worker thread.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from collections.abc import Sequence

import httpx

from circman5.errors import FluxNotSupported, SinkError, SinkUnavailable
from circman5.sinks.history import Arrays, arrays_of

logger = logging.getLogger(__name__)

__all__ = ["FluxNotSupported", "read_flux_history", "read_influxql_history"]

_CHUNK_SIZE = 10_000


def _influxql_identifier(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _influxql_regex(paths: Sequence[str]) -> str:
    # an InfluxQL regex literal: '/' must be escaped inside it
    alternatives = "|".join(re.escape(p).replace("/", "\\/") for p in paths)
    return f"/^({alternatives})$/"


def _influxql_time(start_s: float | None, end_s: float | None) -> str:
    conditions = []
    if start_s is not None:
        conditions.append(f"time >= {int(start_s * 1000)}ms")
    if end_s is not None:
        conditions.append(f"time <= {int(end_s * 1000)}ms")
    return "".join(f" AND {c}" for c in conditions)


def read_influxql_history(
    url: str,
    database: str,
    paths: Sequence[str],
    start_s: float | None = None,
    end_s: float | None = None,
    *,
    retention_policy: str | None = None,
    measurements: Sequence[str] = ("sample", "twin_kpi"),
    username: str | None = None,
    password: str | None = None,
    timeout_s: float = 30.0,
) -> Arrays:
    """``paths`` from InfluxDB 1.x at ``url``, database ``database``."""
    found: Arrays = {}
    remaining = list(dict.fromkeys(paths))
    prefix = f"{_influxql_identifier(retention_policy)}." if retention_policy else ""
    with httpx.Client(timeout=timeout_s) as client:
        for measurement in measurements:
            if not remaining:
                break
            query = (
                f'SELECT "value" FROM {prefix}{_influxql_identifier(measurement)} '
                f'WHERE "path" =~ {_influxql_regex(remaining)} AND "quality" = \'good\''
                f'{_influxql_time(start_s, end_s)} GROUP BY "path"'
            )
            params = {
                "db": database,
                "q": query,
                "epoch": "ms",
                "chunked": "true",
                "chunk_size": str(_CHUNK_SIZE),
            }
            if username:
                params["u"] = username
                params["p"] = password or ""
            try:
                response = client.get(f"{url.rstrip('/')}/query", params=params)
            except httpx.HTTPError as err:
                raise SinkUnavailable(f"cannot read history from {url}: {err}") from err
            if response.status_code != 200:
                raise SinkError(
                    f"InfluxQL query to {url} answered {response.status_code}: "
                    f"{response.text[:200]}"
                )
            collected = _influxql_points(response.text, url)
            for path, points in collected.items():
                found[path] = arrays_of(points)
            remaining = [p for p in remaining if p not in found]
    logger.info("read %d of %d paths from %s (InfluxQL)", len(found), len(paths), url)
    return found


def _influxql_points(body: str, url: str) -> dict[str, list[tuple[float, float]]]:
    """The points of a chunked ``/query`` answer: one JSON document per line."""
    collected: dict[str, list[tuple[float, float]]] = {}
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            document = json.loads(line)
            for result in document.get("results", []):
                if "error" in result:
                    raise SinkError(f"InfluxQL query to {url} failed: {result['error']}")
                for series in result.get("series", []):
                    path = str(series["tags"]["path"])
                    column = series["columns"].index("value")
                    collected.setdefault(path, []).extend(
                        (float(row[0]) / 1000.0, float(row[column]))
                        for row in series["values"]
                        if _is_number(row[column])
                    )
        except (ValueError, KeyError, TypeError) as err:
            raise SinkError(f"unexpected InfluxQL answer from {url}: {err}") from err
    return collected


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _no_flux_endpoint(status: int | None, body: object) -> bool:
    """The server has no ``/api/v2/query`` at all (VictoriaMetrics answers 400 "unsupported
    path"), as opposed to a Flux error (InfluxDB answers 400 with a JSON ``code``)."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    return status in (404, 405) or (status == 400 and "unsupported path" in text)


def _flux_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _flux_time(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def flux_query(
    bucket: str,
    measurement: str,
    paths: Sequence[str],
    start_s: float | None,
    end_s: float | None,
) -> str:
    """The Flux query of ``paths`` in ``measurement`` (good quality, field ``value``)."""
    start = _flux_time(start_s) if start_s is not None else "0"
    stop = f", stop: {_flux_time(end_s + 0.001)}" if end_s is not None else ""
    wanted = "[" + ", ".join(_flux_string(p) for p in paths) + "]"
    return (
        f"from(bucket: {_flux_string(bucket)})\n"
        f"  |> range(start: {start}{stop})\n"
        f"  |> filter(fn: (r) => r._measurement == {_flux_string(measurement)}"
        ' and r._field == "value" and r.quality == "good")\n'
        f"  |> filter(fn: (r) => contains(value: r.path, set: {wanted}))\n"
        '  |> keep(columns: ["_time", "_value", "path"])'
    )


def read_flux_history(
    url: str,
    org: str,
    bucket: str,
    paths: Sequence[str],
    start_s: float | None = None,
    end_s: float | None = None,
    *,
    token: str = "",
    measurements: Sequence[str] = ("sample", "twin_kpi"),
    timeout_s: float = 30.0,
    verify_ssl: bool = True,
) -> Arrays:
    """``paths`` from an InfluxDB with Flux at ``url``; :class:`FluxNotSupported` when the
    server has no ``/api/v2/query``."""
    from influxdb_client.client.influxdb_client import InfluxDBClient
    from influxdb_client.rest import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    found: Arrays = {}
    remaining = list(dict.fromkeys(paths))
    with InfluxDBClient(
        url=url, token=token, org=org, timeout=int(timeout_s * 1000), verify_ssl=verify_ssl
    ) as client:
        api = client.query_api()
        for measurement in measurements:
            if not remaining:
                break
            query = flux_query(bucket, measurement, remaining, start_s, end_s)
            collected: dict[str, list[tuple[float, float]]] = {}
            try:
                for record in api.query_stream(query, org=org):
                    value = record.get_value()
                    if not _is_number(value):
                        continue
                    path = str(record.values.get("path"))
                    collected.setdefault(path, []).append(
                        (record.get_time().timestamp(), float(value))
                    )
            except ApiException as err:
                if _no_flux_endpoint(err.status, err.body):
                    raise FluxNotSupported(f"{url} has no Flux query API ({err.status})") from err
                raise SinkError(f"Flux query to {url} answered {err.status}: {err.body}") from err
            except (Urllib3Error, OSError) as err:
                raise SinkUnavailable(f"cannot read history from {url}: {err}") from err
            for path, points in collected.items():
                found[path] = arrays_of(points)
            remaining = [p for p in remaining if p not in found]
    logger.info("read %d of %d paths from %s (Flux)", len(found), len(paths), url)
    return found
