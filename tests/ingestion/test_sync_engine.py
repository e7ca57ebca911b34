"""The synchronization engine with the real DigitalTwin: coalescing, quality, modes, sinks."""

from __future__ import annotations

import asyncio
import time

import pytest

from circman5.connectors.config import MqttConnectorSettings
from circman5.connectors.mqtt.client import MqttConnector
from circman5.manufacturing.digital_twin.core.synchronization import SynchronizationEngine, SyncMode
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import event_manager
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    ErrorEvent,
    Event,
    EventSeverity,
)
from circman5.manufacturing.digital_twin.event_notification.reporter import EventProblemReporter
from circman5.samples import Quality, Sample
from circman5.state_paths import lookup
from tests.ingestion.conftest import Clock, RecordingReporter, eventually, sample


@pytest.fixture
def clock() -> Clock:
    return Clock()


def engine_for(twin: DigitalTwin, clock: Clock, **kwargs: object) -> SynchronizationEngine:
    return SynchronizationEngine(twin, clock=clock, **kwargs)  # type: ignore[arg-type]


async def test_one_update_per_tick_with_the_latest_values(twin: DigitalTwin, clock: Clock) -> None:
    engine = engine_for(twin, clock)
    before = twin.update_count
    history = len(twin.get_state_history())
    engine.ingest(
        [sample("production_line.temperature", 21.0), sample("environment.humidity", 40.0)]
    )
    engine.ingest([sample("production_line.temperature", 22.0)])
    engine.ingest([sample("production_line.temperature", 23.5)])
    await engine.tick()
    state = twin.get_current_state()
    assert state["production_line"]["temperature"] == 23.5
    assert state["environment"]["humidity"] == 40.0
    assert twin.update_count == before + 1
    assert len(twin.get_state_history()) == history + 1
    assert engine.stats.samples_in == 4 and engine.stats.samples_applied == 2
    assert engine.stats.updates == 1
    assert state["quality"] == {
        "production_line.temperature": "good",
        "environment.humidity": "good",
    }
    # a tick with nothing new does not touch the twin
    await engine.tick()
    assert twin.update_count == before + 1


async def test_sinks_get_every_raw_sample_in_order(twin: DigitalTwin, clock: Clock) -> None:
    seen: list[list[Sample]] = []
    engine = engine_for(twin, clock, sinks=[seen.append])
    subscription = engine.subscribe(maxsize=10)
    first = [sample("production_line.temperature", float(i)) for i in range(5)]
    second = [sample("environment.temperature", 19.0)]
    engine.ingest(first)
    engine.ingest(second)
    await engine.tick()
    assert seen == [first + second]
    assert await asyncio.wait_for(subscription.__anext__(), 1.0) == first + second
    await engine.tick()
    assert len(seen) == 1  # no samples, no call


async def test_a_failing_sink_is_counted_and_reported_once(twin: DigitalTwin, clock: Clock) -> None:
    reporter = RecordingReporter()
    good: list[list[Sample]] = []

    def broken(batch: list[Sample]) -> None:
        raise RuntimeError("disk full")

    engine = engine_for(twin, clock, sinks=[broken, good.append], reporter=reporter)
    for value in (1.0, 2.0, 3.0):
        engine.ingest([sample("production_line.temperature", value)])
        await engine.tick()
    assert len(good) == 3
    assert engine.stats.sink_errors == 3
    assert len(reporter.of("SinkError")) == 1
    assert twin.get_current_state()["production_line"]["temperature"] == 3.0


async def test_stale_and_bad_samples_set_quality_not_value(twin: DigitalTwin, clock: Clock) -> None:
    engine = engine_for(twin, clock)
    engine.ingest([sample("production_line.temperature", 24.0)])
    await engine.tick()
    engine.ingest([sample("production_line.temperature", 99.0, Quality.STALE)])
    await engine.tick()
    state = twin.get_current_state()
    assert state["production_line"]["temperature"] == 24.0
    assert state["quality"]["production_line.temperature"] == "stale"
    engine.ingest([sample("production_line.temperature", 98.0, Quality.BAD)])
    await engine.tick()
    assert lookup(twin.get_current_state(), "production_line.temperature") == 24.0
    assert twin.get_current_state()["quality"]["production_line.temperature"] == "bad"
    engine.ingest([sample("production_line.temperature", 25.0, Quality.UNCERTAIN)])
    await engine.tick()
    state = twin.get_current_state()
    assert state["production_line"]["temperature"] == 25.0
    assert state["quality"]["production_line.temperature"] == "uncertain"
    assert engine.quality("production_line.temperature") is Quality.UNCERTAIN


async def test_silent_paths_go_stale_and_recover(twin: DigitalTwin, clock: Clock) -> None:
    engine = engine_for(twin, clock, stale_timeout_s=5.0)
    engine.ingest(
        [sample("production_line.temperature", 24.0), sample("environment.humidity", 41.0)]
    )
    await engine.tick()
    clock.now += 3.0
    engine.ingest([sample("environment.humidity", 42.0)])
    await engine.tick()
    clock.now += 2.5  # temperature silent for 5.5 s, humidity for 2.5 s
    await engine.tick()
    quality = twin.get_current_state()["quality"]
    assert quality == {"production_line.temperature": "stale", "environment.humidity": "good"}
    assert engine.stats.stale_paths == 1
    clock.now += 1.0
    engine.ingest([sample("production_line.temperature", 24.5)])
    await engine.tick()
    state = twin.get_current_state()
    assert state["quality"]["production_line.temperature"] == "good"
    assert state["production_line"]["temperature"] == 24.5
    assert engine.stats.stale_paths == 0


async def test_connector_timeouts_per_path(twin: DigitalTwin, clock: Clock) -> None:
    settings = MqttConnectorSettings.model_validate(
        {
            "type": "mqtt",
            "name": "mes",
            "tags": [
                {"address": "a/never", "path": "mes.never", "stale_timeout_s": 0},
                {"address": "a/fast", "path": "mes.fast", "stale_timeout_s": 1.0},
                {"address": "a/default", "path": "mes.default"},
            ],
        }
    )
    connector = MqttConnector(settings)
    engine = engine_for(twin, clock, stale_timeout_s=10.0)
    engine.add_connector(connector)
    engine.ingest(
        [sample(p, 1.0, source="mes") for p in ("mes.never", "mes.fast", "mes.default")],
        connector,
    )
    await engine.tick()
    clock.now += 2.0
    await engine.tick()
    assert engine.qualities() == {"mes.never": "good", "mes.fast": "stale", "mes.default": "good"}
    clock.now += 60.0
    await engine.tick()
    assert engine.qualities() == {"mes.never": "good", "mes.fast": "stale", "mes.default": "stale"}


async def test_announced_paths_without_data_go_stale(twin: DigitalTwin, clock: Clock) -> None:
    engine = engine_for(twin, clock, stale_timeout_s=2.0)
    engine.watch(["production_line.temperature", "environment.humidity"])
    engine.ingest([sample("environment.humidity", 50.0)])
    await engine.tick()
    clock.now += 3.0
    engine.ingest([sample("environment.humidity", 51.0)])
    await engine.tick()
    assert twin.get_current_state()["quality"] == {
        "environment.humidity": "good",
        "production_line.temperature": "stale",
    }


async def test_batch_mode_applies_every_interval(twin: DigitalTwin, clock: Clock) -> None:
    seen: list[list[Sample]] = []
    engine = engine_for(twin, clock, mode="batch", batch_interval_s=1.0, sinks=[seen.append])
    await engine.tick()  # first apply (nothing pending)
    before = twin.update_count
    for step in range(5):
        clock.now += 0.1
        engine.ingest([sample("production_line.temperature", 20.0 + step)])
        await engine.tick()
    assert twin.update_count == before  # not yet
    assert len(seen) == 5  # the sinks still see every tick
    clock.now += 0.6
    await engine.tick()
    assert twin.update_count == before + 1
    assert twin.get_current_state()["production_line"]["temperature"] == 24.0


async def test_manual_mode_waits_for_synchronize(twin: DigitalTwin, clock: Clock) -> None:
    engine = engine_for(twin, clock, mode=SyncMode.MANUAL)
    before = twin.update_count
    engine.ingest([sample("production_line.temperature", 26.0)])
    await engine.tick()
    clock.now += 100.0
    await engine.tick()
    assert twin.update_count == before
    assert await engine.synchronize() is True
    assert twin.get_current_state()["production_line"]["temperature"] == 26.0
    assert twin.update_count == before + 1


async def test_event_driven_mode_applies_promptly(twin: DigitalTwin) -> None:
    engine = SynchronizationEngine(twin, mode="event_driven", tick_rate_hz=1.0)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(engine.run())
        await asyncio.sleep(0)
        started = time.monotonic()
        engine.ingest([sample("production_line.temperature", 27.5)])
        await eventually(
            lambda: twin.get_current_state()["production_line"]["temperature"] == 27.5,
            within=5.0,
            what="the event-driven update",
        )
        elapsed = time.monotonic() - started
        task.cancel()
    # applied long before the 1 s tick would have come round
    assert elapsed < 0.9


async def test_real_time_run_ticks_on_its_own(twin: DigitalTwin) -> None:
    engine = SynchronizationEngine(twin, tick_rate_hz=100.0)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(engine.run())
        engine.ingest([sample("environment.temperature", 18.5)])
        await eventually(lambda: engine.stats.updates >= 1, within=5.0, what="a tick")
        await eventually(lambda: engine.stats.ticks >= 10, within=5.0, what="ten ticks")
        task.cancel()
    assert twin.get_current_state()["environment"]["temperature"] == 18.5


async def test_values_the_twin_rejects_do_not_spoil_the_tick(
    twin: DigitalTwin, clock: Clock
) -> None:
    reporter = RecordingReporter()
    engine = engine_for(twin, clock, reporter=reporter)
    engine.ingest(
        [sample("production_line.temperature", "hot"), sample("environment.humidity", 47.0)]
    )
    await engine.tick()
    state = twin.get_current_state()
    assert state["environment"]["humidity"] == 47.0
    assert state["production_line"]["temperature"] != "hot"
    assert state["quality"]["production_line.temperature"] == "bad"
    assert len(reporter.of("RejectedSample")) == 1
    # next tick: the bad path is tried on its own; the rest goes through in one update
    engine.ingest(
        [sample("production_line.temperature", "still hot"), sample("environment.humidity", 48.0)]
    )
    await engine.tick()
    assert twin.get_current_state()["environment"]["humidity"] == 48.0
    assert len(reporter.of("RejectedSample")) == 1  # reported once
    engine.ingest([sample("production_line.temperature", 23.0)])
    await engine.tick()
    state = twin.get_current_state()
    assert state["production_line"]["temperature"] == 23.0
    assert state["quality"]["production_line.temperature"] == "good"


async def test_path_conflicts_are_reported(twin: DigitalTwin, clock: Clock) -> None:
    reporter = RecordingReporter()
    engine = engine_for(twin, clock, reporter=reporter)
    engine.ingest([sample("extra.a", 1.0), sample("extra.a.b", 2.0)])
    await engine.tick()
    assert twin.get_current_state()["extra"]["a"] == 1.0
    assert len(reporter.of("PathConflict")) == 1


async def test_lag_and_counters_per_source(twin: DigitalTwin, clock: Clock) -> None:
    engine = engine_for(twin, clock)
    old = Sample("plc", "x", "production_line.temperature", 20.0, time.time_ns() - 2_000_000_000)
    engine.ingest([old])
    engine.ingest([sample("environment.humidity", 40.0, source="meter")])
    stats = engine.stats.sources
    assert stats["plc"].samples_in == 1 and stats["meter"].samples_in == 1
    assert 1.9 < stats["plc"].lag_s < 10.0
    assert stats["meter"].lag_s < 1.0
    assert engine.stats.snapshot()["sources"]["plc"]["batches_in"] == 1


def test_tick_rate_limits(twin: DigitalTwin) -> None:
    with pytest.raises(ValueError, match="tick_rate_hz"):
        SynchronizationEngine(twin, tick_rate_hz=101.0)
    with pytest.raises(ValueError):
        SynchronizationEngine(twin, mode="sometimes")
    engine = SynchronizationEngine(twin, tick_rate_hz=100.0)
    assert engine.tick_rate_hz == 100.0


def test_from_config(twin: DigitalTwin) -> None:
    from circman5.adapters.config.digital_twin import SynchronizationConfig

    config = SynchronizationConfig(
        default_sync_mode="batch", tick_rate_hz=50.0, stale_timeout_s=3.0
    )
    engine = SynchronizationEngine.from_config(twin, [], config)
    assert (engine.mode, engine.tick_rate_hz, engine.stale_timeout_s) == (SyncMode.BATCH, 50.0, 3.0)


def test_event_reporter_publishes_error_events(twin: DigitalTwin) -> None:
    events: list[Event] = []
    event_manager.subscribe(events.append)
    try:
        EventProblemReporter().report(
            "warning", "MalformedInput", "bad payload on a/b", {"source": "mes", "address": "a/b"}
        )
    finally:
        event_manager.unsubscribe(events.append)
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert len(errors) == 1
    assert errors[0].severity is EventSeverity.WARNING
    assert errors[0].source == "mes"
    assert errors[0].details["error_type"] == "MalformedInput"


def test_sample_buffer_drops_the_oldest_when_full() -> None:
    from circman5.connectors.buffer import SampleBuffer

    buffer = SampleBuffer(max_samples=10)
    batches = [[sample("a.b", float(i))] * 4 for i in range(5)]
    for batch in batches:
        buffer.put(batch)
    assert buffer.dropped == 12 and len(buffer) == 8

    async def take() -> list[Sample] | None:
        return await buffer.get()

    got = asyncio.run(take())
    assert got == batches[3] + batches[4]
    buffer.close()
    assert asyncio.run(take()) is None


def test_backoff_doubles_to_the_cap_and_resets() -> None:
    from circman5.retry import Backoff

    backoff = Backoff(0.5, 4.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    jittered = Backoff(1.0, 10.0, jitter=0.1)
    assert 0.9 <= jittered.next_delay() <= 1.1
