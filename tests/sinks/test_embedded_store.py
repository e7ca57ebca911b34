"""The embedded SQLite time-series store: writes, queries, retention, persistence."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from circman5.connectors.sample import Quality, Sample
from circman5.sinks.config import (
    EmbeddedStoreSettings,
    InfluxDB2Settings,
    OutputSettings,
    SeriesSettings,
)
from circman5.sinks.embedded_store import EmbeddedStore, SeriesInfo, StoredPoint
from circman5.sinks.timeseries import open_series_output
from simulators.external import VictoriaMetrics
from tests.sinks.helpers import vm_values

T0 = time.time_ns() // 10**9 * 10**9  # recent: the default age limit keeps it
TEMP = "production_line.temperature"


def temperatures(count: int, start: int = 0, t0: int = T0) -> list[Sample]:
    return [Sample("plc", "ns=2;s=T", TEMP, 20.0 + i, t0 + i * 1000) for i in range(start, count)]


async def test_writes_and_queries(isolated_data_dir: Path) -> None:
    async with EmbeddedStore() as store:
        store.write_samples(temperatures(10))
        store.write_samples(
            [
                Sample("mes", "line/status", "production_line.status", "running", T0 + 5),
                Sample("plc", "ns=2;s=R", "production_line.running", True, T0 + 6),
                Sample("plc", "ns=2;s=T2", TEMP, 99.5, T0 + 7, Quality.BAD),
            ]
        )
        store.write_state(
            {"production_line": {"temperature": 21.5, "status": "running"}, "n": 3}, T0 + 50
        )
        await store.flush()
        series = await store.series()
        window = await store.points(TEMP, T0 + 2000, T0 + 5000, measurement="sample")
        everything = await store.points(TEMP)
        latest = await store.latest([TEMP, "production_line.status"])
        kpi_only = await store.latest(measurement="twin_kpi")
        rows = store.rows
    assert (isolated_data_dir / "timeseries.sqlite3").exists()
    assert series == [
        SeriesInfo("twin_kpi", "n", "twin"),
        SeriesInfo("sample", "production_line.running", "plc"),
        SeriesInfo("sample", "production_line.status", "mes"),
        SeriesInfo("sample", TEMP, "plc"),
        SeriesInfo("twin_kpi", TEMP, "twin"),
    ]
    assert [(p.timestamp_ns, p.value) for p in window] == [
        (T0 + 2000, 22.0),
        (T0 + 3000, 23.0),
        (T0 + 4000, 24.0),
    ]
    assert len(everything) == 12  # 10 + the bad one + the KPI
    assert everything[1] == StoredPoint("sample", TEMP, "plc", T0 + 7, 99.5, "bad")
    assert latest == [
        StoredPoint("sample", "production_line.status", "mes", T0 + 5, "running", "good"),
        StoredPoint("sample", TEMP, "plc", T0 + 9000, 29.0, "good"),
        StoredPoint("twin_kpi", TEMP, "twin", T0 + 50, 21.5, "good"),
    ]
    assert [(p.path, p.value) for p in kpi_only] == [("n", 3), (TEMP, 21.5)]
    assert rows == 15  # 10 + 3 samples, 2 KPIs


async def test_same_timestamp_replaces_and_data_survives_reopen() -> None:
    async with EmbeddedStore() as store:
        store.write_samples(temperatures(3))
        store.write_samples([Sample("plc", "x", TEMP, -1.0, T0 + 1000)])
        await store.flush()
    async with EmbeddedStore() as store:
        points = await store.points(TEMP)
    assert [p.value for p in points] == [20.0, -1.0, 22.0]


async def test_retention_by_age_and_by_rows() -> None:
    now = time.time_ns()
    settings = EmbeddedStoreSettings(max_age_s=3600, max_rows=25, retention_interval_s=3600)
    async with EmbeddedStore(settings) as store:
        store.write_samples(temperatures(10, t0=now - 7200 * 10**9))  # two hours old
        store.write_samples(
            [Sample("old", "a", "old.path", 1.0, now - 7200 * 10**9)]  # a series that empties
        )
        store.write_samples(temperatures(30, t0=now))
        await store.flush()
        deleted = await store.apply_retention()
        kept = await store.points(TEMP)
        names = {s.path for s in await store.series()}
    assert deleted == 11 + 5
    assert [p.value for p in kept] == [20.0 + i for i in range(5, 30)]  # the 25 newest
    assert names == {TEMP}


async def test_writes_from_other_threads_are_committed() -> None:
    async with EmbeddedStore() as store:
        await asyncio.gather(
            *(
                asyncio.to_thread(store.write_samples, temperatures(k * 10 + 10, k * 10))
                for k in range(4)
            )
        )
        await store.flush()
        points = await store.points(TEMP)
    assert [p.value for p in points] == [20.0 + i for i in range(40)]


async def test_series_output_without_influxdb_uses_the_embedded_store(
    isolated_data_dir: Path,
) -> None:
    settings = OutputSettings(series=SeriesSettings(sample_measurement="raw"))
    async with open_series_output(settings) as output:
        assert output.outbox is None and output.store is not None
        output.writer.write_samples(temperatures(2))
        output.writer.write_state({"production_line": {"temperature": 20.5}}, T0)
        await output.store.flush()
        measurements = sorted({p.measurement for p in await output.store.points(TEMP)})
    assert measurements == ["raw", "twin_kpi"]
    assert (isolated_data_dir / "timeseries.sqlite3").exists()


async def test_series_output_to_influxdb_and_local_history(
    victoria_metrics: VictoriaMetrics,
) -> None:
    settings = OutputSettings(
        influxdb=InfluxDB2Settings(url=victoria_metrics.url),
        embedded=EmbeddedStoreSettings(mode="always"),
    )
    async with open_series_output(settings) as output:
        assert output.outbox is not None and output.store is not None
        output.writer.write_samples(temperatures(5))
        output.writer.write_state({"production_line": {"temperature": 20.5}}, T0)
        await output.store.flush()
        await asyncio.wait_for(output.outbox.drain(), 10)
        local = await output.store.points(TEMP)
        delivered = output.outbox.metrics.delivered_points
    victoria_metrics.force_flush()
    assert delivered == 6 and len(local) == 6
    assert vm_values(victoria_metrics.url, '{__name__="sample_value"}') == [
        20.0 + i for i in range(5)
    ]
    assert vm_values(victoria_metrics.url, '{__name__="twin_kpi_value"}') == [20.5]


async def test_kpi_records_are_stored_under_their_measurement(tmp_path: Path) -> None:
    from circman5.sinks.config import EmbeddedStoreSettings, SeriesSettings
    from circman5.sinks.embedded_store import EmbeddedStore

    async with EmbeddedStore(
        EmbeddedStoreSettings(), SeriesSettings(), path=tmp_path / "kpi.sqlite3"
    ) as store:
        store.write_kpi(
            "batch_footprint",
            {"total": 123.5, "per_module": 1.25, "label": "x"},  # type: ignore[dict-item]
            {"batch_id": "B-1"},
            1_700_000_000_000_000_000,
        )
        await store.flush()
        points = await store.points("total", measurement="batch_footprint")
        assert [(p.timestamp_ns, p.value) for p in points] == [(1_700_000_000_000_000_000, 123.5)]
        names = {s.path for s in await store.series("batch_footprint")}
        assert names == {"total", "per_module"}
