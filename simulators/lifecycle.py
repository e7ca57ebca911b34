"""The start/stop contract every simulator server (and the bench) shares, written once.

A subclass implements ``start()`` and ``stop()``; it gets ``restart(downtime)`` (fault
injection: stop, stay away ``downtime`` seconds, start again) and the async context manager
(``async with Server(...) as server``: start on entry, stop on exit, then ``_closed()`` for what
outlives a restart, such as a temporary working directory).
"""

from __future__ import annotations

import abc
import asyncio
from types import TracebackType
from typing import Self


class Lifecycle(abc.ABC):
    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    async def restart(self, downtime: float = 0.0) -> None:
        """Stop, stay away ``downtime`` seconds, start again (clients see an outage)."""
        await self.stop()
        if downtime > 0:
            await asyncio.sleep(downtime)
        await self.start()

    async def _closed(self) -> None:
        """After the final stop of ``async with`` (not after a restart's stop)."""
        return None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.stop()
        finally:
            await self._closed()
