"""Fault injection on the MQTT MES: malformed payloads, late messages, frozen values, offline."""

from __future__ import annotations

import json
import math

import pytest

from simulators.bench import SimulatorBench
from simulators.external import Mosquitto
from simulators.faults import MALFORMED_KINDS
from simulators.plant import PlantConfig
from tests.fixtures.simulators import BenchFactory
from tests.simulators.helpers import Subscriber, eventually

START = "mes/line1/batch/start"


async def _mes_bench(
    factory: BenchFactory, broker: Mosquitto, **mqtt_options: object
) -> SimulatorBench:
    bench = await factory(
        broker=broker,
        mqtt_options={"inventory_interval": 0, **mqtt_options},
        opcua=None,
        modbus=None,
    )
    bench.runner.paused = True  # no automatic batches: the test makes every message itself
    return bench


def _strict(body: bytes) -> object:
    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(body, parse_constant=refuse)


async def test_malformed_payloads_of_every_kind(
    mosquitto: Mosquitto, sim_bench_factory: BenchFactory
) -> None:
    bench = await _mes_bench(sim_bench_factory, mosquitto)
    assert bench.mes is not None
    async with Subscriber(mosquitto.port, START) as sub:
        for n, kind in enumerate(MALFORMED_KINDS, start=1):
            bench.faults.mqtt_malformed(kind)
            bench.plant.start_batch(f"M-{kind}")
            await sub.wait_for(f"the {kind} message", n, START)
            bench.faults.clear_mqtt_malformed()
        bench.plant.start_batch("GOOD")
        await sub.wait_for("a well-formed message again", len(MALFORMED_KINDS) + 1, START)
        bench.mes.publish_malformed("invalid_json", topic=START)
        await sub.wait_for("a one-off malformed message", len(MALFORMED_KINDS) + 2, START)

    bodies = dict(zip([*MALFORMED_KINDS, "good", "one-off"], sub.received(START), strict=True))
    with pytest.raises(ValueError):
        json.loads(bodies["invalid_json"])
    wrong = json.loads(bodies["wrong_types"])
    assert isinstance(wrong["batch_id"], int) and isinstance(wrong["planned_modules"], str)
    with pytest.raises(ValueError, match="NaN"):
        _strict(bodies["nan"])
    assert math.isnan(json.loads(bodies["nan"])["target_temperature"])
    assert len(bodies["oversized"]) > bench.mes.config.oversize_bytes
    assert json.loads(bodies["oversized"])["batch_id"] == "M-oversized"
    assert bodies["empty"] == b""
    with pytest.raises(UnicodeDecodeError):
        bodies["binary"].decode()
    good = _strict(bodies["good"])
    assert isinstance(good, dict) and good["batch_id"] == "GOOD"
    with pytest.raises(ValueError):
        json.loads(bodies["one-off"])


async def test_delay_holds_mes_messages_until_cleared(
    mosquitto: Mosquitto, sim_bench_factory: BenchFactory
) -> None:
    bench = await _mes_bench(sim_bench_factory, mosquitto, synthetic_topics=5, synthetic_rate=200.0)
    mes = bench.mes
    assert mes is not None
    async with Subscriber(mosquitto.port, START, "sim/synthetic/#") as sub:
        bench.faults.set_delay(3600.0, servers="mqtt")
        bench.plant.start_batch("LATE")
        seen = len(sub.received())
        # synthetic messages are never delayed: 100 of them prove time has passed
        await sub.wait_for("synthetic messages after the batch start", seen + 100)
        assert sub.received(START) == []
        assert mes.pending >= 1
        bench.faults.clear_delay()
        await sub.wait_for("the held batch start", 1, START)
    assert sub.json(START)[0]["batch_id"] == "LATE"
    assert mes.pending == 0


async def test_freeze_repeats_inventory_values(
    mosquitto: Mosquitto, sim_bench_factory: BenchFactory
) -> None:
    bench = await sim_bench_factory(
        broker=mosquitto,
        mqtt_options={"inventory_interval": 0.1, "inspections": False},
        opcua=None,
        modbus=None,
        plant=PlantConfig(speed=60.0),
    )
    topic = "mes/line1/silicon_wafer/inventory"
    async with Subscriber(mosquitto.port, topic) as sub:
        bench.faults.freeze("mqtt")
        await sub.wait_for("a frozen inventory", 1, topic)
        frozen = sub.json(topic)[-1]["inventory"]
        count = len(sub.received(topic))
        await eventually(
            lambda: float(bench.plant.snapshot()["materials.silicon_wafer.inventory"]) < frozen - 2,
            "the plant to use some silicon",
        )
        await sub.wait_for("more frozen inventories", count + 2, topic)
        assert {m["inventory"] for m in sub.json(topic)[count - 1 :]} == {frozen}
        bench.faults.unfreeze("mqtt")
        count = len(sub.received(topic))
        await sub.wait_for("a live inventory", count + 1, topic)
    assert sub.json(topic)[-1]["inventory"] < frozen


async def test_mes_goes_offline_and_comes_back(
    mosquitto: Mosquitto, sim_bench_factory: BenchFactory
) -> None:
    bench = await _mes_bench(sim_bench_factory, mosquitto)
    status = "mes/line1/status"
    async with Subscriber(mosquitto.port, status) as sub:
        await sub.wait_for("online", 1, status)
        await bench.stop_server("mqtt")
        await sub.wait_for("offline", 2, status)
        await bench.start_server("mqtt")
        await sub.wait_for("online again", 3, status)
    assert [m["state"] for m in sub.json(status)] == ["online", "offline", "online"]
