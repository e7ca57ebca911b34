"""Calibrations as files: the standalone layout (the default, unchanged).

``<data dir>/calibrations/calibration-000001.json`` (numbered monotonically, one JSON document
each, created exclusively so two writers never share a number) and ``active.json``, the
pointer to the active version, replaced atomically.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from circman5.errors import ConfigError
from circman5.files import atomic_write

__all__ = ["FileCalibrationStore"]

_FILE = re.compile(r"^calibration-(\d{6,})\.json$")
_ACTIVE = "active.json"


class FileCalibrationStore:
    """The calibrations of one folder (``<data dir>/calibrations``, created on first save)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @property
    def location(self) -> str:
        return str(self.folder)

    def _file(self, version: int) -> Path:
        return self.folder / f"calibration-{version:06d}.json"

    def versions(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        found = (_FILE.match(p.name) for p in self.folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def document(self, version: int) -> str | None:
        path = self._file(version)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(str(path), "(file)", f"not readable: {err}") from err

    def add(self, document_for: Callable[[int], str], activate: bool) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        version = (self.versions() or [0])[-1] + 1
        while True:
            try:
                with self._file(version).open("x", encoding="utf-8") as out:
                    out.write(document_for(version))
            except FileExistsError:  # another writer took this number
                version += 1
                continue
            break
        if activate:
            self._point_at(version)
        return version

    def activate(self, version: int) -> bool:
        if not self._file(version).is_file():
            return False
        self._point_at(version)
        return True

    def _point_at(self, version: int) -> None:
        pointer = {"version": version, "file": self._file(version).name}
        atomic_write(self.folder / _ACTIVE, json.dumps(pointer, indent=2) + "\n")

    def active_version(self) -> int | None:
        pointer = self.folder / _ACTIVE
        try:
            data = json.loads(pointer.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise ConfigError(str(pointer), "(syntax)", f"not readable JSON: {err}") from err
        version = data.get("version") if isinstance(data, dict) else None
        if isinstance(version, bool) or not isinstance(version, int):
            raise ConfigError(str(pointer), "version", "must be an integer")
        return version

    def active_stamp(self) -> object | None:
        """A cheap change marker of the pointer (inode, mtime: one stat)."""
        try:
            st = (self.folder / _ACTIVE).stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    def where(self, version: int) -> str:
        """Where one version lives, for messages."""
        return str(self._file(version))
