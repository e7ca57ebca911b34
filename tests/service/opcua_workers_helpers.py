"""Helpers of the OPC UA ingestion worker tests: a kiln server written here with asyncua (tags
unlike the plant's), what an asyncua server's subscriptions monitor (counted in the server), the
service's worker metrics, and the points stored in VictoriaMetrics and in a worker's outbox."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asyncua import Server, ua

from tests.fixtures.worker_service import mqtt_state_output, worker_service_toml
from tests.service.service_process import ServiceProcess
from tests.sinks.helpers import vm_export

NAMESPACE = "urn:othervendor:kilns"
KILNS = 3
ZONES = 20
TAGS = KILNS * ZONES


def kiln_tags() -> list[tuple[str, str]]:
    """(node id string, twin path) of every kiln zone's pressure."""
    return [
        (f"Kiln{k}.Zone{z:02d}.Pressure", f"kilns.k{k}.zone{z:02d}.pressure")
        for k in range(1, KILNS + 1)
        for z in range(1, ZONES + 1)
    ]


def monitored_nodes(server: Server) -> dict[str, Counter[str]]:
    """Per server session: how often each node (string id) is monitored by its subscriptions."""
    sessions: dict[str, Counter[str]] = {}
    service = server.iserver.subscription_service
    for subscription in list(service.subscriptions.values()):
        counts = sessions.setdefault(str(subscription.session_id), Counter())
        items = subscription.monitored_item_srv._monitored_items  # no public accessor
        for item in list(items.values()):
            if item.read_value_id is not None:
                counts[str(item.read_value_id.NodeId.Identifier)] += 1
    return {session: counts for session, counts in sessions.items() if counts}


class KilnServer:
    """An asyncua server with ``TAGS`` pressures (initially -1); :meth:`write_round` sets every
    one to ``n`` with the source timestamp ``base + n`` milliseconds (each value a point of its
    own; ``base`` is the time of the first write, so every write is newer than the initial
    value)."""

    def __init__(self, port: int) -> None:
        self.url = f"opc.tcp://127.0.0.1:{port}/othervendor/kilns"
        self.server = Server()
        self.nodes: list[Any] = []
        self.base: datetime | None = None  # the first write: newer than the initial values
        self.rounds = 0

    async def start(self) -> None:
        server = self.server
        await server.init()
        server.set_endpoint(self.url)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        index = await server.register_namespace(NAMESPACE)
        for k in range(1, KILNS + 1):
            kiln = await server.nodes.objects.add_object(ua.NodeId(f"Kiln{k}", index), f"Kiln{k}")
            for z in range(1, ZONES + 1):
                zone = await kiln.add_object(ua.NodeId(f"Kiln{k}.Zone{z:02d}", index), f"Zone{z}")
                self.nodes.append(
                    await zone.add_variable(
                        ua.NodeId(f"Kiln{k}.Zone{z:02d}.Pressure", index),
                        "Pressure",
                        -1.0,
                        ua.VariantType.Double,
                    )
                )
        await server.start()

    async def write_round(self) -> None:
        n = self.rounds
        if self.base is None:
            self.base = datetime.now(UTC)
        stamp = self.base + timedelta(milliseconds=n)
        for node in self.nodes:
            await node.write_value(
                ua.DataValue(ua.Variant(float(n), ua.VariantType.Double), SourceTimestamp=stamp)
            )
        self.rounds += 1

    async def write_rounds(self, count: int, interval_s: float = 0.2) -> None:
        for _ in range(count):
            await self.write_round()
            await asyncio.sleep(interval_s)

    def monitored(self) -> dict[str, Counter[str]]:
        return monitored_nodes(self.server)


@contextlib.asynccontextmanager
async def kiln_server(port: int) -> AsyncIterator[KilnServer]:
    kiln = KilnServer(port)
    await kiln.start()
    try:
        yield kiln
    finally:
        await kiln.server.stop()


#: Timeouts for a loaded 2-core box: a late publish response or watchdog read must not end a
#: session (a new session repeats every tag's current value: a repeat the tests would count).
BUSY_BOX = """keepalive_count = 50
lifetime_count = 500
watchdog_timeout_s = 15
request_timeout_s = 30"""


def kiln_connector(url: str, workers: int) -> str:
    tags = "".join(
        f'\n[[connectors.tags]]\naddress = "s={node}"\npath = "{path}"\n'
        for node, path in kiln_tags()
    )
    return f"""
[[connectors]]
type = "opcua"
name = "kiln"
url = "{url}"
namespace_uri = "{NAMESPACE}"
publishing_interval_ms = 100
queue_size = 100
{BUSY_BOX}
workers = {workers}
{tags}"""


def service_toml(vm_url: str, mqtt_port: int, health_port: int, connectors: str) -> str:
    return worker_service_toml(
        site="kilnsite",
        health_port=health_port,
        vm_url=vm_url,
        outputs=mqtt_state_output(mqtt_port),
        connector=connectors,
    )


def worker_metric(service: ServiceProcess, connector: str, name: str, worker: int) -> float:
    """``circman5_ingestion_worker_<name>{connector=...,worker=...}``."""
    pattern = (
        rf"^circman5_ingestion_worker_{name}(?:_total)?"
        rf'{{connector="{connector}",worker="{worker}"}} (\S+)$'
    )
    found = re.search(pattern, service.metrics(), re.MULTILINE)
    assert found is not None, f"no {name} metric for worker {worker}"
    return float(found.group(1))


def stored_points(vm_url: str, source: str) -> Counter[tuple[str, float]]:
    """(path, value) of every point of ``source`` in VictoriaMetrics, with repeats counted."""
    with contextlib.suppress(OSError):
        from urllib.request import urlopen

        urlopen(f"{vm_url}/internal/force_flush", timeout=10).close()
    points: Counter[tuple[str, float]] = Counter()
    for series in vm_export(vm_url, f'{{__name__="sample_value",source="{source}"}}'):
        path = series["metric"]["path"]
        for value in series["values"]:
            points[(path, float(value))] += 1
    return points


_PATH = re.compile(r"(?:^|,)path=((?:[^,\\ ]|\\.)+)")
_VALUE = re.compile(r"(?:^| |,)value=([^, ]+)")


def outbox_points(path: Path) -> set[tuple[str, float]]:
    """(path, value) of every point waiting in an outbox file (line protocol payloads)."""
    points: set[tuple[str, float]] = set()
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        for (payload,) in db.execute("SELECT payload FROM outbox"):
            for line in bytes(payload).decode().splitlines():
                head, _, rest = line.partition(" ")
                found_path, found_value = _PATH.search(head), _VALUE.search(" " + rest)
                if found_path and found_value and head.startswith("sample"):
                    points.add((found_path.group(1), float(found_value.group(1))))
    return points


async def until(condition: Callable[[], bool], within_s: float, what: str) -> None:
    """Poll ``condition`` in a thread (it may do blocking I/O) without blocking the loop that
    runs the OPC UA server."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s

    def check() -> bool:
        try:
            return condition()
        except (OSError, AssertionError, KeyError, ValueError):
            return False

    while not await asyncio.to_thread(check):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)
