"""A writer process for the crash test: an outbox in front of VictoriaMetrics.

``outbox_writer.py URL write``: accept batches of 500 points until killed, printing each batch
number once ``put`` returned (the batch is on disk). ``outbox_writer.py URL drain``: deliver what
the outbox holds, print ``drained <points>`` and exit.
"""

from __future__ import annotations

import asyncio
import sys

from circman5.sinks.config import InfluxDB2Settings, OutboxSettings
from circman5.sinks.influxdb import InfluxDB2Sink
from circman5.sinks.outbox import Outbox

BATCH = 500
T0_MS = 1_700_000_000_000


def batch(seq: int) -> bytes:
    first = seq * BATCH
    return "".join(
        f"killtest,path=p{i % 4} value={i} {(T0_MS + i) * 1_000_000}\n"
        for i in range(first, first + BATCH)
    ).encode()


async def main(url: str, mode: str) -> None:
    settings = OutboxSettings(backoff_initial_s=0.05, backoff_max_s=0.5)
    async with (
        InfluxDB2Sink(InfluxDB2Settings(url=url)) as sink,
        Outbox(sink, name="kill9", settings=settings, mergeable=True) as outbox,
    ):
        if mode == "drain":
            await outbox.drain()
            print("drained", outbox.metrics.delivered_points, flush=True)
            return
        seq = 0
        while True:
            await outbox.put(batch(seq), BATCH)
            print(seq, flush=True)
            seq += 1
            await asyncio.sleep(0.01)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
