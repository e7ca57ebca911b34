"""``circman5.files``: replacing a file leaves the old or the new content, never half, and no
temporary file behind."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from circman5.files import atomic_write, atomic_write_with


def test_replaces_content_with_the_asked_mode(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "users.json"
    atomic_write(target, '{"v": 1}', mode=0o600)
    atomic_write(target, b'{"v": 2}', mode=0o600)
    assert target.read_text() == '{"v": 2}'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["users.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.joblib"
    atomic_write(target, "old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_with(target, half_then_fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.glob("*model.joblib*")) == ["model.joblib"]
