"""Settings of the simulators: plain frozen dataclasses, importable without the protocol
libraries (the command line parses and checks them before loading asyncua, pymodbus, paho)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from simulators.plant import PlantConfig

SECURITY_POLICY_NAMES: tuple[str, ...] = (
    "None",
    "Basic256Sha256_Sign",
    "Basic256Sha256_SignAndEncrypt",
)
SECURITY_ALIASES: dict[str, str] = {
    "none": "None",
    "sign": "Basic256Sha256_Sign",
    "basic256sha256_sign": "Basic256Sha256_Sign",
    "encrypt": "Basic256Sha256_SignAndEncrypt",
    "sign-encrypt": "Basic256Sha256_SignAndEncrypt",
    "signandencrypt": "Basic256Sha256_SignAndEncrypt",
    "basic256sha256_signandencrypt": "Basic256Sha256_SignAndEncrypt",
}


def security_policy_name(name: str) -> str:
    """Normalize a security policy name or alias (``none``, ``sign``, ``encrypt``)."""
    if name in SECURITY_POLICY_NAMES:
        return name
    try:
        return SECURITY_ALIASES[name.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown security policy {name!r}; expected one of "
            f"{list(SECURITY_POLICY_NAMES)} or {sorted(SECURITY_ALIASES)}"
        ) from None


@dataclass(frozen=True, slots=True)
class OpcUaConfig:
    """Settings of the OPC UA PLC. ``port=0`` picks a free port."""

    host: str = "127.0.0.1"
    port: int = 4840
    path: str = "/circman5/plc"
    security: tuple[str, ...] = ("None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt")
    users: Mapping[str, str] = field(default_factory=lambda: {"operator": "circman5"})
    allow_anonymous: bool = True
    anonymous_write: bool = True
    """Anonymous sessions may write setpoints and call methods (else read/browse/subscribe)."""
    rate_hz: float = 10.0
    synthetic_tags: int = 0
    synthetic_rate_hz: float = 1.0
    trust_all: bool = False
    """Accept any client certificate (lab only). Otherwise a client certificate must be in
    ``<workdir>/pki/trusted`` (or ``trusted_clients``); unknown ones are refused with
    BadCertificateUntrusted and copied to ``<workdir>/pki/rejected``, as real servers do."""
    trusted_clients: tuple[Path, ...] = ()
    """Client certificates (DER or PEM files) trusted from the start."""


@dataclass(frozen=True, slots=True)
class ModbusConfig:
    """Settings of the Modbus devices. Port 0 picks a free port."""

    host: str = "127.0.0.1"
    tcp_port: int = 5020
    rtu_port: int = 5021
    """Modbus RTU framing over TCP."""
    rtu_enabled: bool = True
    synthetic_registers: int = 0
    synthetic_rate_hz: float = 1.0
    """Synthetic registers count up ``synthetic_rate_hz`` times a second."""


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """Broker address and what the MES publishes."""

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "circman5-sim-mes"
    username: str | None = None
    password: str | None = None
    topic_prefix: str = "mes"
    line: str = "line1"
    qos: int = 1
    keepalive: int = 30
    inventory_interval: float = 5.0
    """Seconds between inventory messages (0 switches them off)."""
    inspections: bool = True
    synthetic_topics: int = 0
    synthetic_rate: float = 100.0
    """Synthetic messages per second, over all synthetic topics."""
    synthetic_prefix: str = "sim/synthetic"
    control_topic: str | None = None
    oversize_bytes: int = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SparkplugConfig:
    """The plant as a Sparkplug B edge node on a broker (:mod:`simulators.sparkplug_node`)."""

    host: str = "127.0.0.1"
    port: int = 1883
    group_id: str = "Plant1"
    edge_node_id: str = "sim-line1"
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    keepalive: int = 30
    rate_hz: float = 5.0
    """How often changed values are published (DDATA)."""


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What to run. ``None`` for a server leaves it out."""

    workdir: Path | None = None
    """Certificates and other files; a temporary directory (removed at exit) when None."""
    plant: PlantConfig = field(default_factory=PlantConfig)
    opcua: OpcUaConfig | None = field(default_factory=lambda: OpcUaConfig(port=0))
    modbus: ModbusConfig | None = field(
        default_factory=lambda: ModbusConfig(tcp_port=0, rtu_port=0)
    )
    mqtt: MqttConfig | None = None
    sparkplug: SparkplugConfig | None = None
    """The plant as a Sparkplug B edge node (off by default)."""
    broker_timeout: float = 10.0
    """Seconds to wait for the MES to connect at start (0: do not wait)."""
