"""``workers`` on an OPC UA connector: checked at load (file, key, reason), and the split of the
tags into shares: disjoint, complete, balanced, and the same in every process (stable across
restarts, whatever the interpreter's hash seed)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from circman5.connectors.opcua.config import OpcUaConnectorSettings
from circman5.connectors.opcua.shares import share_of
from circman5.service.workers.job import WorkerJob
from circman5.service.workers.process import worker_connector_settings
from circman5.settings import load_settings
from tests.ingestion.test_workers_config import INFLUXDB, load_error

TAG = """
[[connectors.tags]]
address = "nsu=urn:kiln;s=Kiln.Zone1.Pressure"
path = "kiln.zone1.pressure"
"""

DISCOVER = """
[[connectors.discover]]
pattern = "Kiln/*/Pressure"
path = "kiln.{1}.pressure"
"""


def config(tmp_path: Path, options: str, body: str = TAG, outputs: str = INFLUXDB) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        f"""{outputs}
[[connectors]]
type = "opcua"
name = "kiln"
url = "opc.tcp://127.0.0.1:4840"
{options}
{body}
"""
    )
    return path


def test_zero_workers_fail_at_load_naming_the_file_and_key(tmp_path: Path) -> None:
    path = config(tmp_path, "workers = 0")
    message = load_error(path)
    assert str(path) in message
    assert "connectors[0].workers" in message
    assert "greater than or equal to 1" in message


def test_workers_without_tags_or_discovery_fail_at_load(tmp_path: Path) -> None:
    message = load_error(config(tmp_path, "workers = 2", body=""))
    assert "connectors[0].workers" in message
    assert "[[connectors.discover]]" in message


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (TAG.replace('path = "kiln', 'writable = true\npath = "kiln'), "tags[0]"),
        (DISCOVER + "writable = true\n", "discover[0]"),
    ],
)
def test_writable_tags_on_a_connector_with_workers_are_refused_at_load(
    tmp_path: Path, body: str, named: str
) -> None:
    message = load_error(config(tmp_path, "workers = 2", body=body))
    assert "connectors[0].workers" in message
    assert named in message
    assert "workers = 1" in message


def test_workers_without_an_influxdb_output_fail_at_load(tmp_path: Path) -> None:
    message = load_error(config(tmp_path, "workers = 2", outputs=""))
    assert "connectors[0].workers" in message
    assert "[outputs.influxdb]" in message


@pytest.mark.parametrize(
    ("options", "reason"),
    [("share = [3, 2]", "within 1..n"), ("workers = 2\nshare = [1, 2]", "not both")],
)
def test_a_bad_share_fails_at_load(tmp_path: Path, options: str, reason: str) -> None:
    message = load_error(config(tmp_path, options))
    assert "connectors[0].share" in message
    assert reason in message


def test_workers_load_with_tags_and_discovery(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, "workers = 3", body=TAG + DISCOVER))
    kiln = settings.connectors[0]
    assert isinstance(kiln, OpcUaConnectorSettings)
    assert (kiln.workers, kiln.share) == (3, None)
    shares = [
        worker_connector_settings(WorkerJob(kiln, settings.outputs, index)) for index in (1, 2, 3)
    ]
    assert [(s.share, s.workers) for s in shares] == [((1, 3), 1), ((2, 3), 1), ((3, 3), 1)]


ADDRESSES = [f"nsu=urn:kiln;s=Kiln.Zone{z}.Sensor{i:04d}" for z in range(4) for i in range(2500)]


def test_the_shares_are_disjoint_complete_and_balanced() -> None:
    for workers in (2, 3, 8):
        counts = Counter(share_of(address, workers) for address in ADDRESSES)
        assert set(counts) == set(range(1, workers + 1))
        assert sum(counts.values()) == len(ADDRESSES)
        fair = len(ADDRESSES) / workers
        assert all(abs(n - fair) < 0.1 * fair for n in counts.values()), counts


def test_the_split_is_the_same_in_another_process_with_another_hash_seed() -> None:
    here = [share_of(address, 3) for address in ADDRESSES]
    script = (
        "import sys\n"
        "from circman5.connectors.opcua.shares import share_of\n"
        "print(''.join(str(share_of(a, 3)) for a in sys.stdin.read().split()))\n"
    )
    for seed in ("1", "12345"):
        there = subprocess.run(
            [sys.executable, "-c", script],
            input="\n".join(ADDRESSES),
            env=dict(os.environ, PYTHONHASHSEED=seed),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert there == "".join(str(s) for s in here)
