"""Shared plumbing of the SQLite-backed outputs: one connection on one worker thread, and a
thread-safe intake that wakes a consumer task on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Concatenate, Generic, ParamSpec, Self, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")
_I = TypeVar("_I")


class SQLiteWorker:
    """One SQLite connection, used only from one dedicated thread.

    Every database call goes through :meth:`call`, so calls are serialized without locks and the
    event loop never blocks on disk I/O.
    """

    def __init__(self, path: Path, thread_name: str, synchronous: str = "normal") -> None:
        self.path = path
        self._thread_name = thread_name
        self._synchronous = synchronous.upper()
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    def _connect(self, page_size: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA page_size={page_size}")  # only takes effect on a new file
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA journal_size_limit=67108864")
        self._conn = conn

    async def open(self, page_size: int = 4096) -> None:
        if self._executor is not None:
            raise RuntimeError(f"{self.path} is already open")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._thread_name)
        try:
            await self._run(self._connect, page_size)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def _run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        if self._executor is None:
            raise RuntimeError(f"{self.path} is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args, **kwargs))

    def submit(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> asyncio.Future[_T]:
        """Queue ``fn(connection, *args)`` for the worker thread; its result as a future."""
        if self._executor is None:
            raise RuntimeError(f"{self.path} is not open")
        loop = asyncio.get_running_loop()
        job = partial(self._with_conn, fn, *args, **kwargs)
        return loop.run_in_executor(self._executor, job)

    async def call(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Run ``fn(connection, *args)`` on the worker thread."""
        return await self.submit(fn, *args, **kwargs)

    def _with_conn(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        if self._conn is None:
            raise RuntimeError(f"{self.path} is closed")
        return fn(self._conn, *args, **kwargs)

    def _close_conn(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        """Close the connection after every call queued before it, then end the thread."""
        executor = self._executor
        if executor is None:
            return
        try:
            await self._run(self._close_conn)
        finally:
            self._executor = None
            executor.shutdown(wait=False)


class Intake(Generic[_I]):
    """Items handed from any thread to one consumer task on the event loop.

    ``push`` is thread-safe and cheap (a deque append, and a wake-up of the loop only when one is
    not already pending). Items pushed before :meth:`bind` wait until the consumer starts.
    """

    def __init__(self) -> None:
        self._items: deque[_I] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._event: asyncio.Event | None = None
        self._wake_pending = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._event = asyncio.Event()
        self._event.set()  # anything pushed before now is taken at once

    def unbind(self) -> None:
        self._loop = None
        self._event = None

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: _I) -> None:
        self._items.append(item)
        loop, event = self._loop, self._event
        if loop is None or event is None:
            return
        if threading.get_ident() == self._loop_thread:
            event.set()
        elif not self._wake_pending:
            self._wake_pending = True
            with contextlib.suppress(RuntimeError):  # the loop is closing: taken at next start
                loop.call_soon_threadsafe(self._wake)

    def wake(self) -> None:
        """Wake the consumer (loop thread only), e.g. to notice a stop request."""
        if self._event is not None:
            self._event.set()

    def _wake(self) -> None:
        self._wake_pending = False
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        """Until something was pushed (or :meth:`wake`) since the last wait."""
        if self._event is None:
            raise RuntimeError("intake is not bound to a loop")
        await self._event.wait()
        self._event.clear()

    def take(self, limit: int | None = None) -> list[_I]:
        """Remove and return the oldest items (all, or at most ``limit``)."""
        count = len(self._items) if limit is None else min(limit, len(self._items))
        popleft = self._items.popleft
        return [popleft() for _ in range(count)]


class BackgroundService:
    """Lifecycle shared by the outbox and the embedded store.

    ``async with service:`` opens it (errors surface here), then runs :meth:`_serve` in a
    TaskGroup owned by the context: a failure in it cancels the body of the ``async with``, like
    any TaskGroup child. Leaving the context calls :meth:`stop`, waits for ``_serve`` to finish
    and closes. :meth:`run` is the same as a coroutine for the service's own TaskGroup.
    """

    def __init__(self) -> None:
        self._tg: asyncio.TaskGroup | None = None
        self._stop_event = asyncio.Event()
        self._stopping = False

    async def _open(self) -> None:
        raise NotImplementedError

    async def _serve(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    def _on_stop(self) -> None:
        """Wake the loops of ``_serve`` so they notice ``_stopping``."""

    async def __aenter__(self) -> Self:
        if self._tg is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._stopping = False
        self._stop_event.clear()
        await self._open()
        tg = asyncio.TaskGroup()
        await tg.__aenter__()
        self._tg = tg
        tg.create_task(self._serve(), name=type(self).__name__)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        tg, self._tg = self._tg, None
        try:
            if tg is not None:
                await tg.__aexit__(exc_type, exc, tb)
        finally:
            await self._close()

    async def run(self) -> None:
        """Open, work until :meth:`stop` or cancellation, then close."""
        async with self:
            await self._stop_event.wait()

    def stop(self) -> None:
        """Finish: what was accepted is committed; the context/``run`` then returns."""
        self._stopping = True
        self._on_stop()
        self._stop_event.set()


class GroupCommitService(BackgroundService, Generic[_I]):
    """A :class:`BackgroundService` that commits what arrives in its :class:`Intake` in groups
    (everything pushed while the previous commit ran goes into the next one), beside one
    companion loop (delivery, retention) that ends when the service stops."""

    def __init__(self) -> None:
        super().__init__()
        self._intake: Intake[_I] = Intake()
        self._committing = False
        # Someone waits for the next commit (an acknowledgement): ``_urgent_interval_s`` then
        # replaces ``_commit_interval_s``. Set on the loop thread; the commit clears it.
        self._urgent = False
        self._hurry = asyncio.Event()

    async def _commit_pending(self) -> None:
        """Commit everything in the intake."""
        raise NotImplementedError

    async def _companion(self) -> None:
        raise NotImplementedError

    def _on_stop(self) -> None:
        self._intake.wake()
        self._hurry.set()

    def _hurry_commit(self) -> None:
        """The next commit has a waiter: commit within ``_urgent_interval_s`` (loop thread)."""
        if not self._urgent:
            self._urgent = True
            self._hurry.set()

    #: Shortest time between two commits (0: commit as soon as something arrives). Longer
    #: intervals batch more rows per transaction: less CPU and far fewer page writes.
    _commit_interval_s: float = 0.0
    #: The same while a commit is awaited (:meth:`_hurry_commit`).
    _urgent_interval_s: float = 0.0

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        last_commit = -math.inf
        async with asyncio.TaskGroup() as tg:
            companion = tg.create_task(self._companion(), name=f"{type(self).__name__}-companion")
            while True:
                await self._intake.wait()
                while not self._stopping:
                    interval = self._urgent_interval_s if self._urgent else self._commit_interval_s
                    delay = last_commit + min(interval, self._commit_interval_s) - loop.time()
                    if delay <= 0:
                        break
                    self._hurry.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._hurry.wait(), delay)
                self._urgent = False
                await self._commit_pending()
                last_commit = loop.time()
                if self._stopping and not len(self._intake):
                    break
            companion.cancel()
