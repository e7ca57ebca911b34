"""Shared pytest setup: an isolated data directory per test, and real servers on free ports.

Server fixtures live in ``tests/fixtures/``; each module there is a pytest plugin.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.servers", "tests.fixtures.simulators"]


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test writes under its own data directory, never the checkout or the home folder."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("CIRCMAN5_DATA_DIR", str(data))
    monkeypatch.delenv("CIRCMAN5_CONFIG_DIR", raising=False)
    yield data
