"""``circman5 sparkplug discover`` lists what an independent edge node (Tahu's Node.js client)
was born with, by asking it for a rebirth when it only hears DATA."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from simulators.external import Mosquitto
from tests.ingestion.sparkplug_edge import EdgeNode
from tests.ingestion.test_sparkplug import GROUP, NODE_BIRTH, OVEN_BIRTH


async def test_discover_lists_the_born_metrics(mosquitto: Mosquitto, tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n\n'
        "[[connectors]]\n"
        'type = "sparkplug"\n'
        'name = "plant"\n'
        f"port = {mosquitto.port}\n"
        f'groups = ["{GROUP}"]\n'
        "rebirth_interval_s = 0.5\n",
        encoding="utf-8",
    )
    edge = EdgeNode(mosquitto.url, GROUP, "gw1")
    try:
        await edge.await_event("connected")
        # Born before discovery listens: only DATA is heard, which makes it ask for a rebirth.
        await edge.asend("nbirth", metrics=NODE_BIRTH, silent=True)
        await edge.asend("dbirth", device="oven", metrics=OVEN_BIRTH, silent=True)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "circman5",
            "sparkplug",
            "discover",
            "--config",
            str(config),
            "--seconds",
            "6",
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        communicate = asyncio.ensure_future(process.communicate())
        try:
            while not communicate.done():
                await edge.asend("ndata", metrics=[{"alias": 1, "type": "Int64", "value": 5}])
                await asyncio.wait({communicate}, timeout=0.3)
        finally:
            stdout, stderr = await communicate
        assert process.returncode == 0, stderr.decode()
        listed = {item["address"]: item for item in json.loads(stdout)}
        temperature = listed[f"{GROUP}/gw1/oven/Temperature"]
        assert (temperature["datatype"], temperature["alias"], temperature["unit"]) == (
            "Double",
            10,
            "degC",
        )
        assert listed[f"{GROUP}/gw1//Uptime"]["datatype"] == "Int64"
        assert len([a for a in listed if a.startswith(f"{GROUP}/gw1/oven/")]) == len(OVEN_BIRTH)
        assert await edge.await_event("ncmd")
    finally:
        edge.close()


def test_discover_without_a_sparkplug_connector_is_a_config_error(tmp_path: Path) -> None:
    from circman5.cli import main

    config = tmp_path / "edge.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    assert main(["sparkplug", "discover", "--config", str(config), "--seconds", "1"]) == 2
