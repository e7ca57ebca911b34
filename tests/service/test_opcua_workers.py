"""OPC UA ingestion workers (``workers = 2``): `circman5 run` as a process against a kiln server
written here with asyncua (another address space than the plant's), real mosquitto and
VictoriaMetrics; subscriptions counted in the OPC UA server, points counted in VictoriaMetrics.

* steady writes: two sessions, every tag monitored by exactly one of them (none missing), every
  value of every tag stored exactly once, the workers' counters add up to what is stored, and
  the twin has the latest value of every tag;
* one worker SIGKILLed while the time-series server is down: it is restarted (metrics, log),
  every point it had stored in its outbox reaches the server, and its tags come back.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from circman5.connectors.opcua.shares import share_of
from simulators.external import Mosquitto, VictoriaMetrics, free_port
from tests.fixtures.worker_service import worker_pids
from tests.service.opcua_workers_helpers import (
    BUSY_BOX,
    NAMESPACE,
    TAGS,
    kiln_connector,
    kiln_server,
    kiln_tags,
    monitored_nodes,
    outbox_points,
    service_toml,
    stored_points,
    until,
    worker_metric,
)
from tests.service.service_process import RetainedState, ServiceProcess

ROUNDS = 25


def start_service(
    tmp_path: Path, url: str, mosquitto: Mosquitto, vm: VictoriaMetrics
) -> ServiceProcess:
    health_port = free_port()
    config = tmp_path / "edge.toml"
    config.write_text(service_toml(vm.url, mosquitto.port, health_port, kiln_connector(url, 2)))
    service = ServiceProcess(config, tmp_path / "data", tmp_path / "service.log", health_port)
    service.start()
    return service


def outbox_file(tmp_path: Path, index: int) -> Path:
    return tmp_path / "data" / "outbox" / f"influxdb-kiln-worker-{index}.sqlite3"


def share_nodes(index: int) -> set[str]:
    """The kiln nodes of worker ``index`` of 2, by the documented split."""
    return {node for node, _ in kiln_tags() if share_of(f"nsu={NAMESPACE};s={node}", 2) == index}


def all_stored_at(vm_url: str, paths: list[str], value: float) -> bool:
    points = stored_points(vm_url, "kiln")
    return all((path, value) in points for path in paths)


async def latest_everywhere(
    vm_url: str, state: RetainedState, paths: list[str], last: float
) -> None:
    """Until every tag's ``last`` value is stored and the twin holds it."""
    await until(lambda: all_stored_at(vm_url, paths, last), 90, "every tag's last value stored")
    await until(
        lambda: all(twin_value(state, p) == last for p in paths),
        60,
        "the twin at every tag's last value",
    )


def each_node_in_one_of_two_sessions(monitored: dict[str, Counter[str]], nodes: set[str]) -> None:
    """Counted in the server: two sessions, every node monitored once, by one of them."""
    assert len(monitored) == 2, {session: len(c) for session, c in monitored.items()}
    everything = sum(monitored.values(), start=Counter[str]())
    assert set(everything) == nodes, sorted(set(everything) ^ nodes)[:10]
    assert set(everything.values()) == {1}, "a node monitored twice"


def twin_value(state: RetainedState, path: str) -> object:
    return state.value(*path.split("."))


async def test_two_workers_split_the_tags_store_each_value_once_and_the_twin_has_the_latest(
    tmp_path: Path, mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics
) -> None:
    paths = [path for _, path in kiln_tags()]
    async with kiln_server(free_port()) as kiln:
        service = start_service(tmp_path, kiln.url, mosquitto, victoria_metrics)
        state = RetainedState(mosquitto.port, "circman5/kilnsite/line1/state")
        try:
            await asyncio.to_thread(service.wait_ready, 90)
            await until(
                lambda: sum(sum(c.values()) for c in kiln.monitored().values()) >= TAGS,
                60,
                "every tag monitored",
            )
            monitored = kiln.monitored()
            await kiln.write_rounds(ROUNDS)
            last = float(ROUNDS - 1)
            await latest_everywhere(victoria_metrics.url, state, paths, last)
            samples = [worker_metric(service, "kiln", "samples", k) for k in (1, 2)]
            tags = [worker_metric(service, "kiln", "tags", k) for k in (1, 2)]
            outboxes = sorted(p.name for p in (tmp_path / "data" / "outbox").iterdir())
        finally:
            state.close()
            exit_code = await asyncio.to_thread(service.stop)
    assert exit_code == 0, service.log_tail()

    # counted in the OPC UA server: two sessions, each tag in exactly one of them
    each_node_in_one_of_two_sessions(monitored, {node for node, _ in kiln_tags()})
    assert sorted(len(c) for c in monitored.values()) == sorted(int(t) for t in tags)
    by_share = [share_nodes(k) for k in (1, 2)]
    assert sorted(map(sorted, by_share)) == sorted(sorted(c) for c in monitored.values())
    assert min(tags) > 0

    # counted in VictoriaMetrics: every value of every tag exactly once
    points = stored_points(victoria_metrics.url, "kiln")
    written = {(p, float(n)) for p in paths for n in range(ROUNDS)}
    assert written <= set(points), sorted(written - set(points))[:10]
    repeated = {point: n for point, n in points.items() if n > 1}
    assert not repeated, list(repeated.items())[:10]
    assert sum(points.values()) == sum(samples), (sum(points.values()), samples)
    assert {"influxdb-kiln-worker-1.sqlite3", "influxdb-kiln-worker-2.sqlite3"} <= set(outboxes)


async def test_a_worker_killed_with_its_outbox_full_is_restarted_and_loses_nothing_it_stored(
    tmp_path: Path, mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics
) -> None:
    paths = [path for _, path in kiln_tags()]
    async with kiln_server(free_port()) as kiln:
        service = start_service(tmp_path, kiln.url, mosquitto, victoria_metrics)
        state = RetainedState(mosquitto.port, "circman5/kilnsite/line1/state")
        writing: asyncio.Task[None] | None = None
        try:
            await asyncio.to_thread(service.wait_ready, 90)
            assert service.process is not None
            pid = service.process.pid
            before = await asyncio.to_thread(worker_pids, pid)
            assert len(before) == 2, before
            writing = asyncio.create_task(kiln.write_rounds(10_000))
            await until(
                lambda: len(stored_points(victoria_metrics.url, "kiln")) > TAGS,
                60,
                "points in the server",
            )
            await asyncio.to_thread(victoria_metrics.stop)  # from here on the outboxes fill
            await until(
                lambda: (
                    min(worker_metric(service, "kiln", "outbox_depth_points", k) for k in (1, 2))
                    > 2 * TAGS
                ),
                60,
                "points waiting in both workers' outboxes",
            )
            victim = min(before)
            os.kill(victim, signal.SIGKILL)
            await until(
                lambda: sum(worker_metric(service, "kiln", "restarts", k) for k in (1, 2)) == 1,
                60,
                "the killed worker reported",
            )
            restarts = [
                await asyncio.to_thread(worker_metric, service, "kiln", "restarts", k)
                for k in (1, 2)
            ]
            index = restarts.index(1) + 1
            await until(
                lambda: worker_metric(service, "kiln", "connected", index) == 1,
                60,
                "the restarted worker connected",
            )
            after = await asyncio.to_thread(worker_pids, pid)
            # everything the dead worker stored is still in its outbox: the server is down
            kept = await asyncio.to_thread(
                outbox_points,
                tmp_path / "data" / "outbox" / f"influxdb-kiln-worker-{index}.sqlite3",
            )
            await asyncio.to_thread(victoria_metrics.start)
            await until(
                lambda: kept <= set(stored_points(victoria_metrics.url, "kiln")),
                120,
                "every point of the killed worker's outbox in the server",
            )
            writing.cancel()
            last = float(kiln.rounds)
            await kiln.write_round()
            await latest_everywhere(victoria_metrics.url, state, paths, last)
        finally:
            if writing is not None:
                writing.cancel()
            state.close()
            exit_code = await asyncio.to_thread(service.stop)
    assert exit_code == 0, service.log_tail()
    assert victim not in after and len(after) == 2
    share = {
        path for node, path in kiln_tags() if share_of(f"nsu={NAMESPACE};s={node}", 2) == index
    }
    assert kept and {path for path, _ in kept} <= share, "the killed worker's outbox held its share"
    missing = kept - set(stored_points(victoria_metrics.url, "kiln"))
    assert not missing, f"{len(missing)} of {len(kept)} lost, e.g. {sorted(missing)[:5]}"
    log = service.log_tail(200_000)
    assert "exited with code -9" in log, log[-3000:]


SYNTHETIC = 250


def simulator_connector(url: str) -> str:
    return f"""
[[connectors]]
type = "opcua"
name = "plc"
url = "{url}"
namespace_uri = "urn:circman5:sim:plc"
publishing_interval_ms = 100
{BUSY_BOX}
workers = 2

[[connectors.tags]]
address = "s=Line1.Laminator.Temperature"
path = "production_line.temperature"

[[connectors.discover]]
root = "s=Line1.Synthetic"
pattern = "*/Tag*"
path = "synthetic.{{1}}.{{name}}"
"""


async def test_workers_split_what_they_discover_on_the_plant_simulator(
    tmp_path: Path,
    mosquitto: Mosquitto,
    victoria_metrics: VictoriaMetrics,
    sim_bench_factory: Any,
) -> None:
    from simulators.config import OpcUaConfig

    bench = await sim_bench_factory(
        opcua=OpcUaConfig(port=0, synthetic_tags=SYNTHETIC, synthetic_rate_hz=2.0), modbus=None
    )
    plc = bench.opcua
    assert plc is not None and plc.server is not None
    health_port = free_port()
    config = tmp_path / "edge.toml"
    config.write_text(
        service_toml(
            victoria_metrics.url, mosquitto.port, health_port, simulator_connector(plc.url)
        )
    )
    service = ServiceProcess(config, tmp_path / "data", tmp_path / "service.log", health_port)
    service.start()
    state = RetainedState(mosquitto.port, "circman5/kilnsite/line1/state")
    synthetic = {
        f"synthetic.group{i // 100:03d}.tag{i:05d}" for i in range(SYNTHETIC)
    }  # Line1/Synthetic/GroupNNN/TagNNNNN
    try:
        await asyncio.to_thread(service.wait_ready, 90)
        await until(
            lambda: synthetic <= {p for p, _ in stored_points(victoria_metrics.url, "plc")},
            90,
            "every discovered tag stored",
        )
        await until(
            lambda: all(isinstance(twin_value(state, p), float) for p in synthetic),
            60,
            "every discovered tag in the twin",
        )
        monitored = monitored_nodes(plc.server)
        tags = [worker_metric(service, "plc", "tags", k) for k in (1, 2)]
    finally:
        state.close()
        exit_code = await asyncio.to_thread(service.stop)
    assert exit_code == 0, service.log_tail()
    expected = {f"Line1.Synthetic.Tag{i:05d}" for i in range(SYNTHETIC)}
    expected.add("Line1.Laminator.Temperature")
    each_node_in_one_of_two_sessions(monitored, expected)
    assert sum(tags) == len(expected) and min(tags) > 0, tags
