"""Writing a file so that readers and crashes see the old or the new content, never half of it.

The one way the product replaces its own files (users, state snapshots, calibrations, models,
LCA results): a temporary file in the same folder, flushed and fsynced, renamed over the target,
then the folder fsynced so the rename itself survives a power cut. The temporary file is removed
when anything fails. ``mode`` sets the permissions before any content is written (``0o600`` for
secrets).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_with"]


def atomic_write(path: Path, data: str | bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` by ``data`` (text as UTF-8)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data

    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            handle.write(payload)

    atomic_write_with(path, write, mode=mode)


def atomic_write_with(
    path: Path, write: Callable[[Path], None], *, mode: int | None = None
) -> None:
    """Replace ``path`` by what ``write(tmp)`` writes to the temporary file ``tmp`` (for
    libraries that write files themselves, such as ``joblib.dump``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        os.close(fd)
        write(tmp)
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
