"""Where circman5 keeps its files.

Everything the program writes goes under one data directory: the one the composition root
chose (:func:`locations`: the command line's ``--data-dir`` or the TOML's ``data_dir``), else
``CIRCMAN5_DATA_DIR`` when set, otherwise ``$XDG_DATA_HOME/circman5``
(``~/.local/share/circman5``). The twin's JSON constants directory likewise: the chosen one,
else ``CIRCMAN5_CONFIG_DIR``, else none (the embedded defaults). Nothing is written to the
current directory or the source tree. Directories are created on first use, never at import.

The choice is passed in, not written to the process environment: :func:`locations` holds it
for the ``with`` block of the command or the service that made it, and child processes never
inherit it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "CIRCMAN5_DATA_DIR"
CONFIG_DIR_ENV = "CIRCMAN5_CONFIG_DIR"


@dataclass(frozen=True, slots=True)
class Locations:
    """The directories a composition root chose (None: not chosen, the environment decides)."""

    data_dir: Path | None = None
    constants_dir: Path | None = None


_chosen = Locations()
_chosen_lock = threading.Lock()


@contextmanager
def locations(
    data_dir: Path | str | None = None, constants_dir: Path | str | None = None
) -> Iterator[Locations]:
    """Use these directories (where not None) inside the block; the previous ones after it.

    Called by the composition roots (the ``circman5`` command, ``EdgeService.run``) with what
    the user configured; every thread of the process sees the choice.
    """
    global _chosen
    with _chosen_lock:
        previous = _chosen
        _chosen = Locations(
            Path(data_dir).expanduser() if data_dir is not None else previous.data_dir,
            Path(constants_dir).expanduser()
            if constants_dir is not None
            else previous.constants_dir,
        )
        current = _chosen
    try:
        yield current
    finally:
        with _chosen_lock:
            _chosen = previous


def data_dir_source() -> str | None:
    """What the data directory currently comes from (chosen or the environment variable);
    a change of it means another data directory (used to rebind open databases)."""
    chosen = _chosen.data_dir
    return str(chosen) if chosen is not None else os.environ.get(DATA_DIR_ENV)


def data_dir(create: bool = True) -> Path:
    """The data directory (created when ``create``)."""
    configured = data_dir_source()
    if configured:
        path = Path(configured).expanduser()
    else:
        xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        path = Path(xdg) / "circman5"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def data_path(*parts: str) -> Path:
    """A path under the data directory; its parent folder is created."""
    path = data_dir().joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path | None:
    """The twin's JSON constants directory (chosen, else ``CIRCMAN5_CONFIG_DIR``), or None for
    the embedded defaults."""
    if _chosen.constants_dir is not None:
        return _chosen.constants_dir
    configured = os.environ.get(CONFIG_DIR_ENV)
    return Path(configured).expanduser() if configured else None
