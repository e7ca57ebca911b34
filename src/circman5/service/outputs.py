"""What the composition root adds to the outputs: acknowledge-after-durable, and readiness.

* :func:`durable_sample_sink` is the synchronization engine's sample sink: it writes every raw
  sample to the time-series output and fires the acknowledgements the batch carries
  (:class:`~circman5.samples.SampleBatch`, e.g. MQTT QoS 1/2 PUBACKs) once that write
  is committed: to the outbox, or to the embedded store when that is the only output.
* :func:`output_reasons` says why the outputs make the service not ready: a destination that is
  down while data waits, and an outbox that is dropping data (with how much).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from circman5.samples import Sample, SampleBatch, acks_of, fire_acks
from circman5.sinks.outbox import OutboxMetrics
from circman5.sinks.timeseries import SeriesWriter


def durable_sample_sink(
    writer: SeriesWriter, stored_elsewhere: frozenset[str] = frozenset()
) -> Callable[[list[Sample]], None]:
    """``sink(batch)`` for :meth:`SynchronizationEngine.add_sink` with ``acknowledges=True``.

    Samples whose ``source`` is in ``stored_elsewhere`` are not written (ingestion workers
    stored every sample of those connectors already; the service sees only their latest).
    """

    def write(batch: list[Sample]) -> None:
        if stored_elsewhere:
            kept = [s for s in batch if s.source not in stored_elsewhere]
            if len(kept) != len(batch):
                batch = SampleBatch(kept, acks_of(batch))
        acks = acks_of(batch)
        if acks:
            writer.write_samples(batch, partial(fire_acks, acks))
        else:
            writer.write_samples(batch)

    return write


def output_reasons(outboxes: Sequence[OutboxMetrics]) -> list[str]:
    """The outboxes' reasons for ``/ready`` to say 503 (empty: they are fine)."""
    reasons = [
        f"outbox {m.name}: destination unavailable ({m.last_error or 'not written yet'})"
        for m in outboxes
        if not m.sink_available and m.depth_batches > 0
    ]
    reasons += [
        f"outbox {m.name}: dropping data: {m.episode_dropped_points} points"
        f" ({m.episode_dropped_batches} batches) dropped in this overflow episode,"
        f" {m.dropped_points} points in total"
        for m in outboxes
        if m.dropping
    ]
    return reasons
