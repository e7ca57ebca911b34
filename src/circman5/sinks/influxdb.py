"""InfluxDB sinks: the v2 write API through influxdb-client, and the 1.x ``/write`` endpoint.

Both take batches of prebuilt line protocol (nanosecond timestamps) and either store them or
raise:

* :class:`~circman5.errors.SinkUnavailable` when the server cannot take the batch now
  (connection refused, timeout, 5xx, 408, 429), with ``retry_after`` from ``Retry-After``;
* :class:`~circman5.errors.SinkRejected` for any other 4xx, with the HTTP status.

Neither retries by itself; the :class:`~circman5.sinks.outbox.Outbox` in front of it does.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import httpx
import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from circman5.errors import SinkError, SinkRejected, SinkUnavailable
from circman5.sinks.base import parse_retry_after
from circman5.sinks.config import InfluxDB1Settings, InfluxDB2Settings

logger = logging.getLogger(__name__)

_TRANSIENT_4XX = frozenset({408, 425, 429})


def http_error(sink: str, status: int, message: str, retry_after: str | None) -> SinkError:
    """The sink error for an HTTP error status (see the module docstring)."""
    text = f"{sink}: HTTP {status}: {message.strip()[:500]}"
    if status >= 500 or status in _TRANSIENT_4XX or status == 0:
        # the server answered (or a proxy did for it): it is there but cannot take it now
        return SinkUnavailable(
            text, retry_after=parse_retry_after(retry_after), overloaded=status != 0
        )
    return SinkRejected(text, status=status)


def _timed_out(err: BaseException) -> bool:
    """A timeout (the server is there but slow: back off), not a refused connection (probe)."""
    if isinstance(err, urllib3.exceptions.MaxRetryError) and err.reason is not None:
        err = err.reason
    if isinstance(err, urllib3.exceptions.NewConnectionError):  # refused, no route: absent
        return False
    return isinstance(err, urllib3.exceptions.TimeoutError | TimeoutError)


class InfluxDB2Sink:
    """Writes line protocol through ``/api/v2/write`` with influxdb-client's synchronous API,
    run on a worker thread. Works with InfluxDB 2.x/3.x, 1.8+ (``bucket`` = ``db/rp``,
    ``token`` = ``user:password``) and VictoriaMetrics."""

    def __init__(self, settings: InfluxDB2Settings, *, name: str = "influxdb") -> None:
        self.settings = settings
        self._name = name
        self._client: Any = None
        self._write_api: Any = None

    @property
    def name(self) -> str:
        return self._name

    async def __aenter__(self) -> Self:
        s = self.settings
        self._client = InfluxDBClient(
            url=s.url,
            token=s.token.get_secret_value(),
            org=s.org,
            timeout=int(s.timeout_s * 1000),
            enable_gzip=s.gzip,
            verify_ssl=s.verify_ssl,
            ssl_ca_cert=str(s.ssl_ca_cert) if s.ssl_ca_cert else None,
            retries=False,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client, self._write_api = self._client, None, None
        if client is not None:
            await asyncio.to_thread(client.close)

    async def write(self, records: Sequence[bytes]) -> None:
        if self._write_api is None:
            raise RuntimeError(f"{self._name}: use 'async with' before writing")
        body = records[0] if len(records) == 1 else b"".join(records)
        await asyncio.to_thread(self._write, body)

    def _write(self, body: bytes) -> None:
        s = self.settings
        try:
            self._write_api.write(
                bucket=s.bucket, org=s.org, record=body, write_precision=WritePrecision.NS
            )
        except ApiException as err:
            status = int(err.status or 0)
            message = str(getattr(err, "message", None) or err.reason or "")
            retry_after = None
            if err.headers is not None:
                retry_after = err.headers.get("Retry-After")
            raise http_error(self._name, status, message, retry_after) from err
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise SinkUnavailable(
                f"{self._name}: {type(err).__name__}: {err}", overloaded=_timed_out(err)
            ) from err


class InfluxDB1Sink:
    """Writes line protocol to an InfluxDB 1.x ``/write`` endpoint (database, retention policy,
    basic auth) with httpx."""

    def __init__(self, settings: InfluxDB1Settings, *, name: str = "influxdb1") -> None:
        self.settings = settings
        self._name = name
        self._client: httpx.AsyncClient | None = None
        params = {"db": settings.database, "precision": "ns"}
        if settings.retention_policy:
            params["rp"] = settings.retention_policy
        self._params = params

    @property
    def name(self) -> str:
        return self._name

    async def __aenter__(self) -> Self:
        s = self.settings
        auth = None
        if s.username is not None:
            password = s.password.get_secret_value() if s.password is not None else ""
            auth = httpx.BasicAuth(s.username, password)
        self._client = httpx.AsyncClient(
            base_url=s.url, timeout=s.timeout_s, verify=s.verify_ssl, auth=auth
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def write(self, records: Sequence[bytes]) -> None:
        client = self._client
        if client is None:
            raise RuntimeError(f"{self._name}: use 'async with' before writing")
        body = records[0] if len(records) == 1 else b"".join(records)
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.settings.gzip:
            body = await asyncio.to_thread(gzip.compress, body, 1)
            headers["Content-Encoding"] = "gzip"
        try:
            response = await client.post(
                "/write", params=self._params, content=body, headers=headers
            )
        except httpx.HTTPError as err:
            raise SinkUnavailable(
                f"{self._name}: {type(err).__name__}: {err}",
                overloaded=isinstance(err, httpx.TimeoutException),
            ) from err
        if response.status_code in (200, 204):
            return
        message = response.headers.get("X-Influxdb-Error") or response.text
        raise http_error(
            self._name, response.status_code, message, response.headers.get("Retry-After")
        )


TimeSeriesSink = InfluxDB2Sink | InfluxDB1Sink
