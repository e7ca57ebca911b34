"""The engine carries the acknowledgements of sample batches to the sink that makes them durable."""

from __future__ import annotations

import asyncio
import time

from circman5.manufacturing.digital_twin.core.synchronization import SynchronizationEngine
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.samples import Sample, SampleBatch, acks_of, fire_acks


def batch(fired: list[str], name: str, *values: float) -> SampleBatch:
    samples = [Sample("mes", "t", "production_line.temperature", v, time.time_ns()) for v in values]
    return SampleBatch(samples, [lambda: fired.append(name)])


async def test_the_acknowledging_sink_gets_batches_at_once_and_fires_their_acks(
    twin: DigitalTwin,
) -> None:
    fired: list[str] = []
    durable: list[list[Sample]] = []
    plain: list[list[Sample]] = []
    engine = SynchronizationEngine(twin)
    engine.add_sink(plain.append)
    engine.add_sink(durable.append, acknowledges=True)
    engine.ingest(batch(fired, "a", 21.0))
    engine.ingest(batch(fired, "b", 22.0, 23.0))
    await asyncio.sleep(0)  # the flush runs on the loop's next turn, not at the next tick
    assert [[s.value for s in b] for b in durable] == [[21.0, 22.0, 23.0]]
    assert plain == [] and fired == []  # the others wait for the tick; nobody fired yet
    fire_acks(acks_of(durable[0]))  # what the durable sink does once committed
    assert fired == ["a", "b"]
    await engine.tick()
    assert [[s.value for s in b] for b in plain] == [[21.0, 22.0, 23.0]]
    assert len(durable) == 1  # not twice
    assert fired == ["a", "b"]


async def test_without_an_acknowledging_sink_the_engine_fires_after_delivery(
    twin: DigitalTwin,
) -> None:
    fired: list[str] = []
    seen: list[list[Sample]] = []
    engine = SynchronizationEngine(twin, max_pending_samples=2)
    engine.add_sink(seen.append)
    engine.ingest(batch(fired, "dropped", 1.0, 2.0))
    engine.ingest(batch(fired, "kept", 3.0))  # over the limit: the oldest batch is dropped
    assert fired == ["dropped"] and engine.stats.dropped == 2
    await engine.tick()
    assert [[s.value for s in b] for b in seen] == [[3.0]]
    assert fired == ["dropped", "kept"]
    bare = SynchronizationEngine(twin)  # no sink keeps raw samples: fired on ingest
    bare.ingest(batch(fired, "unkept", 4.0))
    assert fired == ["dropped", "kept", "unkept"]
