"""The MQTT MES, heard by the real ``mosquitto_sub`` client on a real mosquitto broker."""

from __future__ import annotations

import asyncio
import json

import pytest

from simulators.bench import SimulatorBench
from simulators.external import Mosquitto
from simulators.plant import PlantConfig
from tests.fixtures.simulators import BenchFactory
from tests.simulators.helpers import Subscriber, eventually, mosquitto_pub

MATERIALS = ("silicon_wafer", "solar_glass")


async def test_mosquitto_sub_receives_the_mes_topics(
    mosquitto: Mosquitto, sim_bench_factory: BenchFactory
) -> None:
    async with Subscriber(mosquitto.port, "mes/line1/#") as sub:
        bench = await sim_bench_factory(
            broker=mosquitto,
            mqtt_options={"inventory_interval": 0.5},
            opcua=None,
            modbus=None,
            plant=PlantConfig(speed=60.0, batch_size=3),
        )
        assert bench.mes is not None and bench.mes.connected
        await sub.wait_for("two complete batches", 2, "mes/line1/solar_glass/consumption")
        await sub.wait_for("inventory", 2, "mes/line1/silicon_wafer/inventory")

    expected = {
        "mes/line1/status",
        "mes/line1/batch/start",
        "mes/line1/batch/end",
        "mes/line1/quality/inspection",
        *(f"mes/line1/{m}/consumption" for m in MATERIALS),
        *(f"mes/line1/{m}/inventory" for m in MATERIALS),
    }
    assert expected <= sub.topics_seen()
    assert sub.json("mes/line1/status")[0]["state"] == "online"
    starts = sub.json("mes/line1/batch/start")
    assert starts[0]["batch_id"] == "L1-00001"
    for start in starts:
        assert start["planned_modules"] == 3 and start["line"] == "line1"
        assert {"batch_id", "start_time", "target_temperature", "cycle_time", "ts"} <= set(start)
    ends = sub.json("mes/line1/batch/end")
    for end in ends:
        assert end["modules_produced"] == 3
        assert end["modules_passed"] + end["modules_failed"] == 3
        assert end["start_time"] < end["end_time"]
        assert end["energy_kwh"] > 0
    for material in MATERIALS:
        consumption = sub.json(f"mes/line1/{material}/consumption")
        assert [c["batch_id"] for c in consumption] == [e["batch_id"] for e in ends]
        per_module = {"silicon_wafer": 0.5, "solar_glass": 0.2}[material]
        for item in consumption:
            assert set(item) == {
                "batch_id",
                "material",
                "consumption",
                "waste",
                "recycled",
                "unit",
                "ts",
            }
            assert item["unit"] == "kg" and item["material"] == material
            assert item["consumption"] == pytest.approx(3 * per_module)
            assert 0 < item["recycled"] < item["waste"] <= item["consumption"]
    inspections = sub.json("mes/line1/quality/inspection")
    assert len(inspections) >= 6
    for inspection in inspections:
        assert inspection["result"] in ("pass", "fail")
        assert inspection["passed"] is (inspection["result"] == "pass")
        assert inspection["module_id"].startswith(inspection["batch_id"])
        assert inspection["power_w"] > 100
    inventory = sub.json("mes/line1/solar_glass/inventory")[-1]
    assert inventory["unit"] == "kg" and 0 < inventory["inventory"] <= 420
    assert 0 < inventory["quality"] <= 1


async def test_synthetic_topics(mosquitto: Mosquitto, sim_bench_factory: BenchFactory) -> None:
    async with Subscriber(mosquitto.port, "sim/synthetic/#") as sub:
        bench = await sim_bench_factory(
            broker=mosquitto,
            mqtt_options={"synthetic_topics": 50, "synthetic_rate": 500.0, "inventory_interval": 0},
            opcua=None,
            modbus=None,
        )
        await sub.wait_for("300 synthetic messages", 300)
    assert bench.mes is not None
    indexes = {int(topic.rsplit("/", 1)[1]) for topic in sub.topics_seen()}
    assert indexes == set(range(50))
    for body in sub.received():
        message = json.loads(body)
        assert set(message) == {"value", "ts", "seq"}
        assert 0.0 <= message["value"] <= 100.0


async def test_control_topic_switches_faults_and_acks(
    mosquitto: Mosquitto, sim_bench_factory: BenchFactory
) -> None:
    bench = await sim_bench_factory(
        broker=mosquitto, mqtt_options={"control_topic": "sim/control"}, opcua=None
    )
    async with Subscriber(mosquitto.port, "sim/control/ack") as acks:
        await mosquitto_pub(
            mosquitto.port,
            "sim/control",
            "-m",
            '{"cmd": "stuck", "path": "production_line.temperature", "value": 31.5}',
        )
        await acks.wait_for("the first ack", 1)
        await mosquitto_pub(
            mosquitto.port,
            "sim/control",
            "-m",
            '{"cmd": "modbus_exception", "unit": 2, "code": "DEVICE_BUSY"}',
        )
        await acks.wait_for("the second ack", 2)
        await mosquitto_pub(mosquitto.port, "sim/control", "-m", "not json")
        await acks.wait_for("the third ack", 3)
        await mosquitto_pub(
            mosquitto.port, "sim/control", "-m", '{"cmd": "setpoint", "cycle_time": 40}'
        )
        await acks.wait_for("the fourth ack", 4)
    results = acks.json("sim/control/ack")
    assert [r["ok"] for r in results] == [True, True, False, True]
    assert bench.faults.describe()["stuck"] == {"production_line.temperature": 31.5}
    assert bench.faults.modbus_exception_for(2) == 6
    assert bench.plant.setpoints.cycle_time == 40.0


async def test_mes_reconnects_after_a_broker_restart(
    mosquitto: Mosquitto, sim_bench_mqtt: SimulatorBench
) -> None:
    mes = sim_bench_mqtt.mes
    assert mes is not None and mes.connected
    await asyncio.to_thread(mosquitto.stop)
    await eventually(lambda: not mes.connected, "the MES to notice the broker is gone")
    await asyncio.to_thread(mosquitto.start)
    await eventually(lambda: mes.connected, "the MES to reconnect", within=20)
    async with Subscriber(mosquitto.port, "mes/line1/status") as sub:
        await sub.wait_for("the retained status", 1)
    assert sub.json("mes/line1/status")[-1]["state"] == "online"
