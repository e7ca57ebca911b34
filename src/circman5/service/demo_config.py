"""The demo's service settings: the bundled simulators, mapped into the twin over three protocols.

``config/demo.toml`` is this template rendered with the simulators' default ports (a test keeps
them equal), so ``circman5 run --config config/demo.toml`` works against ``circman5-sim``.
"""

from __future__ import annotations

from dataclasses import dataclass

DEMO_TEMPLATE = """\
# The demo: circman5 against the bundled simulators (circman5-sim), over all three protocols.
# OPC UA: the PLC's process values and setpoints; Modbus: energy meter and environment sensor;
# MQTT: the MES's batches and per-batch material use. Outputs: the embedded time-series store,
# events/state back out over MQTT, and the twin as a Sparkplug B edge node (group "demo", node
# "line1") that a SCADA host may write setpoints to. See docs/tag_mapping.md for the tag syntax.

site = "demo"
line = "line1"

[health]
port = {health_port}

[api]
port = {api_port}

[outputs.mqtt]
host = "127.0.0.1"
port = {mqtt_port}
protocol = "{mqtt_protocol}"
topic_prefix = "circman5"

[outputs.sparkplug]
host = "127.0.0.1"
port = {mqtt_port}
group_id = "demo"
edge_node_id = "line1"
deadband = 0.01
writable = ["production_line.target_temperature", "production_line.cycle_time"]

[[connectors]]
type = "opcua"
name = "plc"
url = "opc.tcp://127.0.0.1:{opcua_port}/circman5/plc"
namespace_uri = "urn:circman5:sim:plc"
publishing_interval_ms = 100

[[connectors.tags]]
address = "s=Line1.Laminator.Status"
path = "production_line.status"

[[connectors.tags]]
address = "s=Line1.Laminator.Temperature"
path = "production_line.temperature"
unit = "°C"

[[connectors.tags]]
address = "s=Line1.Laminator.EnergyConsumption"
path = "production_line.energy_consumption"
unit = "kW"

[[connectors.tags]]
address = "s=Line1.Laminator.ProductionRate"
path = "production_line.production_rate"
unit = "1/min"

[[connectors.tags]]
address = "s=Line1.Laminator.Efficiency"
path = "production_line.efficiency"

[[connectors.tags]]
address = "s=Line1.Laminator.DefectRate"
path = "production_line.defect_rate"

[[connectors.tags]]
address = "s=Line1.Laminator.TargetTemperature"
path = "production_line.target_temperature"
unit = "°C"
writable = true

[[connectors.tags]]
address = "s=Line1.Laminator.CycleTime"
path = "production_line.cycle_time"
unit = "s"
writable = true

[[connectors.tags]]
address = "s=Line1.Materials.SiliconWafer.Inventory"
path = "materials.silicon_wafer.inventory"
unit = "kg"

[[connectors.tags]]
address = "s=Line1.Materials.SolarGlass.Inventory"
path = "materials.solar_glass.inventory"
unit = "kg"

[[connectors.tags]]
address = "s=Line1.Batch.BatchId"
path = "batch.current.batch_id"

[[connectors]]
type = "modbus"
name = "meters"
host = "127.0.0.1"
port = {modbus_port}
unit_id = 1
poll_interval_s = 0.5

[[connectors.tags]]
address = "ir:0"
path = "energy_meter.active_power"
data_type = "float32"
unit = "kW"

[[connectors.tags]]
address = "ir:2"
path = "energy_meter.energy_total"
data_type = "float32"
unit = "kWh"

[[connectors.tags]]
address = "ir:4"
path = "energy_meter.voltage"
data_type = "float32"
unit = "V"

[[connectors.tags]]
address = "ir:0"
path = "environment.temperature"
data_type = "int16"
unit_id = 2
scale = 0.1
unit = "°C"

[[connectors.tags]]
address = "ir:1"
path = "environment.humidity"
data_type = "int16"
unit_id = 2
scale = 0.1
unit = "%"

[[connectors]]
type = "mqtt"
name = "mes"
host = "127.0.0.1"
port = {mqtt_port}
protocol = "{mqtt_protocol}"

[[connectors.tags]]
address = "mes/line1/batch/end"
path = "batch.completed.batch_id"
field = "batch_id"
data_type = "str"
stale_timeout_s = 0

[[connectors.tags]]
address = "mes/line1/batch/end"
path = "batch.completed.modules_produced"
field = "modules_produced"
stale_timeout_s = 0

[[connectors.tags]]
address = "mes/line1/batch/end"
path = "batch.completed.energy_kwh"
field = "energy_kwh"
stale_timeout_s = 0

[[connectors.tags]]
address = "mes/line1/+/consumption"
path = "materials.{{1}}.batch_id"
field = "batch_id"
data_type = "str"
stale_timeout_s = 0

[[connectors.tags]]
address = "mes/line1/+/consumption"
path = "materials.{{1}}.consumption"
field = "consumption"
stale_timeout_s = 0

[[connectors.tags]]
address = "mes/line1/+/consumption"
path = "materials.{{1}}.waste"
field = "waste"
stale_timeout_s = 0

[[connectors.tags]]
address = "mes/line1/+/consumption"
path = "materials.{{1}}.recycled"
field = "recycled"
stale_timeout_s = 0

[[setpoints]]
path = "production_line.target_temperature"
min = 18.0
max = 27.0
unit = "°C"
description = "Laminator target temperature"

[[setpoints]]
path = "production_line.cycle_time"
min = 20.0
max = 60.0
unit = "s"
description = "Laminator cycle time"
"""


@dataclass(frozen=True)
class DemoPorts:
    """Where the demo's simulators, broker, API and health port listen."""

    opcua_port: int = 4840
    modbus_port: int = 5020
    mqtt_port: int = 1883
    api_port: int = 8080
    health_port: int = 9108
    mqtt_protocol: str = "5"


def demo_settings_toml(ports: DemoPorts = DemoPorts()) -> str:
    return DEMO_TEMPLATE.format(
        opcua_port=ports.opcua_port,
        modbus_port=ports.modbus_port,
        mqtt_port=ports.mqtt_port,
        api_port=ports.api_port,
        health_port=ports.health_port,
        mqtt_protocol=ports.mqtt_protocol,
    )
