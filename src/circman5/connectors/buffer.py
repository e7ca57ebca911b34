"""The bounded buffer between a connector's protocol thread or task and its consumer."""

from __future__ import annotations

import asyncio
import operator
from collections import deque

from circman5.samples import Sample, acks_of, fire_acks, merge_batches

__all__ = ["SampleBuffer"]

_path_of = operator.attrgetter("path")


class SampleBuffer:
    """A bounded single-consumer buffer of sample batches between a connector and its reader.

    ``put`` never blocks: when more than ``max_samples`` are waiting, the oldest batches are
    dropped and counted (``dropped``), so a stalled consumer costs memory up to a limit and then
    data, never the device connection. ``get`` returns everything waiting as one list.
    """

    def __init__(self, max_samples: int = 1_000_000) -> None:
        self._batches: deque[list[Sample]] = deque()
        self._count = 0
        self._max = max_samples
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0

    def __len__(self) -> int:
        return self._count

    def put(self, batch: list[Sample]) -> None:
        if not batch or self._closed:
            return
        self._batches.append(batch)
        self._count += len(batch)
        while self._count > self._max and len(self._batches) > 1:
            old = self._batches.popleft()
            self._count -= len(old)
            self.dropped += len(old)
            fire_acks(acks_of(old))  # lost and counted: do not hold the source back
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        self._closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> list[Sample] | None:
        """Everything waiting (at least one sample), or None once closed and empty."""
        while not self._batches:
            if self._closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if len(self._batches) == 1:
            batch = self._batches.popleft()
        else:
            batch = merge_batches(self._batches)  # carries the parts' acknowledgements
            self._batches.clear()
        self._count = 0
        return batch
