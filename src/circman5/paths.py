"""Where circman5 keeps its files.

Everything the program writes goes under one data directory: ``CIRCMAN5_DATA_DIR`` when set,
otherwise ``$XDG_DATA_HOME/circman5`` (``~/.local/share/circman5``). Nothing is written to the
current directory or the source tree. Directories are created on first use, never at import.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "CIRCMAN5_DATA_DIR"
CONFIG_DIR_ENV = "CIRCMAN5_CONFIG_DIR"


def data_dir(create: bool = True) -> Path:
    """The configured data directory (created when ``create``)."""
    configured = os.environ.get(DATA_DIR_ENV)
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
    """The twin's JSON constants directory from ``CIRCMAN5_CONFIG_DIR``, or None for defaults."""
    configured = os.environ.get(CONFIG_DIR_ENV)
    return Path(configured).expanduser() if configured else None
