"""The API served by uvicorn on a free port from a background event loop, for browser tests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager

from circman5.api.app import create_app
from circman5.api.context import ApiContext
from circman5.api.server import ApiServer
from circman5.settings import ApiSettings


@contextmanager
def served_api(
    open_context: Callable[[], AbstractAsyncContextManager[ApiContext]],
) -> Iterator[str]:
    """The base URL of the app of the context ``open_context()`` yields (entered on the
    server's loop, left after the server stopped)."""
    ready: concurrent.futures.Future[str] = concurrent.futures.Future()
    stop = threading.Event()

    async def serve() -> None:
        async with open_context() as context:
            server = ApiServer(create_app(context), ApiSettings(host="127.0.0.1", port=0))
            async with asyncio.TaskGroup() as tasks:
                serving = tasks.create_task(server.serve())
                async with asyncio.timeout(20):
                    await server.wait_started()
                ready.set_result(f"http://127.0.0.1:{server.port}")
                await asyncio.to_thread(stop.wait)
                server.stop()
                await serving

    def main() -> None:
        try:
            asyncio.run(serve())
        except BaseException as err:
            if not ready.done():
                ready.set_exception(err)
            raise

    thread = threading.Thread(target=main, name="served-api", daemon=True)
    thread.start()
    try:
        yield ready.result(timeout=60)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive(), "the API did not stop"
