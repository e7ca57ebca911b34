# asyncua types its scalars as NewTypes (Int32, UInt32, DateTime...) and re-exports names
# implicitly, so strict mypy objects to ordinary calls such as ua.NodeId(ua.ObjectIds.Folder):
# mypy: disable-error-code="arg-type, attr-defined, no-untyped-call"
"""The simulated line PLC: an OPC UA server (asyncua) over the shared plant model.

Address space (namespace ``urn:circman5:sim:plc``; every node id is a string id in that
namespace, e.g. ``ns=2;s=Line1.Laminator.Temperature``; the index is looked up by URI)::

    Objects/Line1/Laminator/   Status, Temperature, EnergyConsumption, ProductionRate,
                               Efficiency, DefectRate, ModulesProduced,
                               TargetTemperature (rw), CycleTime (rw), Running (rw)
    Objects/Line1/Materials/SiliconWafer/  Inventory, Quality
    Objects/Line1/Materials/SolarGlass/    Inventory, Quality
    Objects/Line1/Environment/ Temperature, Humidity
    Objects/Line1/EnergyMeter/ ActivePower, EnergyTotal, Voltage, Current, PowerFactor, Frequency
    Objects/Line1/Batch/       BatchId, ModulesProduced, BatchSize,
                               StartBatch(BatchId: String) -> BatchId, EndBatch() -> BatchId
    Objects/Line1/Alarms/      Temperature, Humidity, SiliconWaferLow, SolarGlassLow, DefectRate
    Objects/Line1/Synthetic/GroupNNN/TagNNNNN   (only with synthetic tags; node ids
                               Line1.Synthetic.Tag00000 ..., 100 tags per group folder)

Analog variables (Double) are ``AnalogItemType`` with ``EngineeringUnits`` (EUInformation,
UNECE units) and ``EURange`` properties. Values carry source timestamps (the plant's update
time) and status codes (Good, or Bad/Uncertain under the ``bad_quality`` fault) and are written
into the address space ``rate_hz`` times a second. Writes to the setpoints change the plant
(visible on Modbus too); a value outside the setpoint range is refused with BadOutOfRange.

Security: endpoints for ``None``, ``Basic256Sha256 Sign`` and ``Basic256Sha256
SignAndEncrypt`` (configurable); the server certificate is generated at start-up into
``<workdir>/server_cert.der|.pem`` and ``server_key.pem`` (kept across restarts). Identity:
anonymous (optional) and username/password users; a wrong password is refused with
BadUserAccessDenied. Client certificates must be trusted: put them into
``<workdir>/pki/trusted`` (or ``trusted_clients``); an unknown one is refused with
BadCertificateUntrusted and lands in ``<workdir>/pki/rejected`` (``trust_all`` accepts any).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import logging
import math
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from asyncua import Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import (
    ADMIN_TYPES,
    USER_TYPES,
    SimpleRoleRuleset,
    User,
    UserRole,
)
from asyncua.server.user_managers import UserManager

from simulators.certs import CertificateFiles, ClientTrustList, ensure_certificate
from simulators.config import OpcUaConfig, security_policy_name
from simulators.external import free_port
from simulators.faults import Faults
from simulators.lifecycle import Lifecycle
from simulators.plant import SETPOINT_LIMITS, Plant
from simulators.tags import TAGS, Value, unece_unit_id

__all__ = [
    "APPLICATION_URI",
    "METHOD_END_BATCH",
    "METHOD_START_BATCH",
    "NAMESPACE_URI",
    "NODES",
    "OBJECTS",
    "SECURITY_POLICIES",
    "SYNTHETIC_FOLDER",
    "SYNTHETIC_GROUP_SIZE",
    "NodeSpec",
    "OpcUaConfig",
    "OpcUaPlc",
    "security_policy_name",
    "synthetic_node_id",
    "synthetic_values",
]

log = logging.getLogger(__name__)

NAMESPACE_URI = "urn:circman5:sim:plc"
APPLICATION_URI = "urn:circman5:sim:plc:server"
SYNTHETIC_GROUP_SIZE = 100

SECURITY_POLICIES: dict[str, ua.SecurityPolicyType] = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One variable of the PLC: its string node id and the twin path it carries."""

    node_id: str
    path: str
    variant: ua.VariantType

    @property
    def writable(self) -> bool:
        return TAGS[self.path].setpoint


_D = ua.VariantType.Double
_B = ua.VariantType.Boolean
_S = ua.VariantType.String
_U = ua.VariantType.UInt32

NODES: tuple[NodeSpec, ...] = (
    NodeSpec("Line1.Laminator.Status", "production_line.status", _S),
    NodeSpec("Line1.Laminator.Temperature", "production_line.temperature", _D),
    NodeSpec("Line1.Laminator.EnergyConsumption", "production_line.energy_consumption", _D),
    NodeSpec("Line1.Laminator.ProductionRate", "production_line.production_rate", _D),
    NodeSpec("Line1.Laminator.Efficiency", "production_line.efficiency", _D),
    NodeSpec("Line1.Laminator.DefectRate", "production_line.defect_rate", _D),
    NodeSpec("Line1.Laminator.ModulesProduced", "production_line.modules_produced", _U),
    NodeSpec("Line1.Laminator.TargetTemperature", "production_line.target_temperature", _D),
    NodeSpec("Line1.Laminator.CycleTime", "production_line.cycle_time", _D),
    NodeSpec("Line1.Laminator.Running", "production_line.running", _B),
    NodeSpec("Line1.Materials.SiliconWafer.Inventory", "materials.silicon_wafer.inventory", _D),
    NodeSpec("Line1.Materials.SiliconWafer.Quality", "materials.silicon_wafer.quality", _D),
    NodeSpec("Line1.Materials.SolarGlass.Inventory", "materials.solar_glass.inventory", _D),
    NodeSpec("Line1.Materials.SolarGlass.Quality", "materials.solar_glass.quality", _D),
    NodeSpec("Line1.Environment.Temperature", "environment.temperature", _D),
    NodeSpec("Line1.Environment.Humidity", "environment.humidity", _D),
    NodeSpec("Line1.EnergyMeter.ActivePower", "energy_meter.active_power", _D),
    NodeSpec("Line1.EnergyMeter.EnergyTotal", "energy_meter.energy_total", _D),
    NodeSpec("Line1.EnergyMeter.Voltage", "energy_meter.voltage", _D),
    NodeSpec("Line1.EnergyMeter.Current", "energy_meter.current", _D),
    NodeSpec("Line1.EnergyMeter.PowerFactor", "energy_meter.power_factor", _D),
    NodeSpec("Line1.EnergyMeter.Frequency", "energy_meter.frequency", _D),
    NodeSpec("Line1.Batch.BatchId", "batch.id", _S),
    NodeSpec("Line1.Batch.ModulesProduced", "batch.modules_produced", _U),
    NodeSpec("Line1.Batch.BatchSize", "batch.size", _U),
    NodeSpec("Line1.Alarms.Temperature", "alarms.temperature", _B),
    NodeSpec("Line1.Alarms.Humidity", "alarms.humidity", _B),
    NodeSpec("Line1.Alarms.SiliconWaferLow", "alarms.silicon_wafer_low", _B),
    NodeSpec("Line1.Alarms.SolarGlassLow", "alarms.solar_glass_low", _B),
    NodeSpec("Line1.Alarms.DefectRate", "alarms.defect_rate", _B),
)
"""Every documented variable, in address-space order."""

OBJECTS: tuple[str, ...] = (
    "Line1",
    "Line1.Laminator",
    "Line1.Materials",
    "Line1.Materials.SiliconWafer",
    "Line1.Materials.SolarGlass",
    "Line1.Environment",
    "Line1.EnergyMeter",
    "Line1.Batch",
    "Line1.Alarms",
)
METHOD_START_BATCH = "Line1.Batch.StartBatch"
METHOD_END_BATCH = "Line1.Batch.EndBatch"
SYNTHETIC_FOLDER = "Line1.Synthetic"


def synthetic_node_id(index: int) -> str:
    return f"{SYNTHETIC_FOLDER}.Tag{index:05d}"


def synthetic_values(count: int, tick: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Values of the synthetic OPC UA tags at update number ``tick`` (deterministic)."""
    index = np.arange(count, dtype=np.float64)
    return np.round(50.0 + 50.0 * np.sin(0.1 * tick + 0.37 * index), 3)


class _Users(UserManager):
    def __init__(self, users: Mapping[str, str], allow_anonymous: bool) -> None:
        self.users = dict(users)
        self.allow_anonymous = allow_anonymous

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is None:
            if self.allow_anonymous:
                return User(role=UserRole.Anonymous, name="anonymous")
            return None
        expected = self.users.get(username)
        given = password.encode() if isinstance(password, str) else (password or b"")
        if expected is not None and hmac.compare_digest(expected.encode(), bytes(given)):
            return User(role=UserRole.User, name=username)
        log.warning("OPC UA login refused for user %r", username)
        return None


class _Rules(SimpleRoleRuleset):
    """Users read, write and call; anonymous sessions too unless ``anonymous_write`` is off."""

    def __init__(self, anonymous_write: bool) -> None:
        super().__init__()
        user_ids = {ua.NodeId(i) for i in USER_TYPES}
        admin_ids = {ua.NodeId(i) for i in ADMIN_TYPES}
        read_only = user_ids - {
            ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary),
            ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary),
        }
        self._allowed = {
            UserRole.Admin: user_ids | admin_ids,
            UserRole.User: user_ids,
            UserRole.Anonymous: user_ids if anonymous_write else read_only,
        }

    def check_validity(self, user: User, action_type_id: ua.NodeId, body: Any) -> bool:
        return action_type_id in self._allowed.get(user.role, set())


_STATUS = {
    None: ua.StatusCodes.Good,
    "bad": ua.StatusCodes.BadSensorFailure,
    "uncertain": ua.StatusCodes.UncertainLastUsableValue,
}


def _convert(value: Value, variant: ua.VariantType) -> Any:
    if variant == ua.VariantType.Double:
        return float(value)
    if variant == ua.VariantType.Boolean:
        return bool(value)
    if variant == ua.VariantType.String:
        return str(value)
    number = int(value)
    return min(max(number, 0), 2**32 - 1)


class OpcUaPlc(Lifecycle):
    """The OPC UA server. ``async with OpcUaPlc(plant, faults, config, workdir) as plc:``.

    Attributes once started: ``url`` (``opc.tcp://host:port/circman5/plc``), ``port``,
    ``namespace_index``, ``node_ids`` (twin path -> ``ns=<i>;s=...`` string),
    ``certificate`` (server certificate files). ``stop()``/``start()`` restart it on the same
    port with the same certificate.
    """

    def __init__(
        self,
        plant: Plant,
        faults: Faults | None = None,
        config: OpcUaConfig | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.plant = plant
        self.faults = faults or Faults()
        self.config = config or OpcUaConfig()
        for name in self.config.security:
            security_policy_name(name)
        self._own_workdir: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._own_workdir = tempfile.TemporaryDirectory(prefix="circman5-opcua-")
            workdir = Path(self._own_workdir.name)
        self.workdir = Path(workdir)
        self.port = self.config.port
        self.namespace_index = 0
        self.server: Server | None = None
        self._nodes: list[tuple[ua.NodeId, NodeSpec]] = []
        self._synthetic: list[ua.NodeId] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.certificate: CertificateFiles | None = None
        self.client_trust = ClientTrustList(
            self.workdir / "pki" / "trusted",
            self.workdir / "pki" / "rejected",
            trust_all=self.config.trust_all,
        )
        for certificate_file in self.config.trusted_clients:
            self.client_trust.trust(certificate_file)
        self.writes_applied = 0

    @property
    def _secure(self) -> bool:
        return any(security_policy_name(s) != "None" for s in self.config.security)

    def _cert_files(self) -> CertificateFiles:
        return ensure_certificate(self.workdir, name="server", application_uri=APPLICATION_URI)

    @property
    def url(self) -> str:
        return f"opc.tcp://{self.config.host}:{self.port}{self.config.path}"

    @property
    def running(self) -> bool:
        return self.server is not None

    @property
    def node_ids(self) -> dict[str, str]:
        """Twin path -> node id string (``ns=<index>;s=Line1...``)."""
        return {spec.path: f"ns={self.namespace_index};s={spec.node_id}" for spec in NODES}

    def endpoint_info(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "host": self.config.host,
            "port": self.port,
            "namespace": NAMESPACE_URI,
            "namespace_index": self.namespace_index,
            "security": [security_policy_name(s) for s in self.config.security],
            "users": sorted(self.config.users),
            "allow_anonymous": self.config.allow_anonymous,
            "server_certificate": str(self.certificate.cert_der) if self.certificate else None,
            "client_trust": "all" if self.config.trust_all else str(self.client_trust.trusted),
            "rejected_clients": str(self.client_trust.rejected),
            "synthetic_tags": self.config.synthetic_tags,
        }

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the address space and listen (on the same port again after a stop)."""
        if self.server is not None:
            return
        if self._secure and self.certificate is None:
            # made (or found again in the work directory) at the first start
            self.certificate = await asyncio.to_thread(self._cert_files)
        auto_port = self.port == 0
        for attempt in range(5):
            if auto_port:
                self.port = free_port()
            server = await self._build()
            try:
                await server.start()
            except OSError:
                with contextlib.suppress(Exception):
                    await server.stop()
                if not auto_port or attempt == 4:
                    raise
                continue
            self.server = server
            break
        self._tasks = [asyncio.create_task(self._push_loop(), name="opcua-push")]
        if self._synthetic:
            self._tasks.append(asyncio.create_task(self._synthetic_loop(), name="opcua-synth"))
        log.info("OPC UA PLC listening on %s", self.url)

    async def stop(self) -> None:
        """Stop listening and drop all sessions (``start()`` brings it back on the same port)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server, self.server = self.server, None
        if server is not None:
            await server.stop()
            log.info("OPC UA PLC on port %d stopped", self.port)

    async def _closed(self) -> None:
        if self._own_workdir is not None:
            self._own_workdir.cleanup()

    # -- building ------------------------------------------------------------------------------

    async def _build(self) -> Server:
        cfg = self.config
        server = Server(user_manager=_Users(cfg.users, cfg.allow_anonymous))
        await server.init()
        # the built-in 1 s clock task makes stop() wait up to a second; our push loop keeps
        # Server/ServerStatus/CurrentTime up to date instead
        server.disable_clock(True)
        server.set_endpoint(self.url)
        server.set_server_name("CIRCMAN5.0 simulated line PLC")
        await server.set_application_uri(APPLICATION_URI)
        server.product_uri = "urn:circman5:simulators"
        server.manufacturer_name = "CIRCMAN5.0"
        if self.certificate is not None:
            await server.load_certificate(str(self.certificate.cert_der))
            await server.load_private_key(str(self.certificate.key_pem))
        server.set_security_policy(
            [SECURITY_POLICIES[security_policy_name(s)] for s in cfg.security],
            permission_ruleset=_Rules(cfg.anonymous_write),
        )
        server.set_certificate_validator(self._validate_client)
        tokens: list[type] = [ua.UserNameIdentityToken]
        if cfg.allow_anonymous:
            tokens.insert(0, ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        self.namespace_index = await server.register_namespace(NAMESPACE_URI)
        await self._build_address_space(server)
        server.subscribe_server_callback(CallbackType.PreRead, self._pre_read)
        server.subscribe_server_callback(CallbackType.PreWrite, self._pre_write)
        server.subscribe_server_callback(CallbackType.PostWrite, self._post_write)
        return server

    async def _validate_client(self, certificate: Any, _application: Any) -> None:
        """Refuse client certificates that are not trusted (they land in the rejected folder)."""
        trust = self.client_trust
        if await asyncio.to_thread(trust.is_trusted, certificate):
            return
        path = await asyncio.to_thread(trust.reject, certificate)
        log.warning("OPC UA client certificate not trusted; stored as %s", path)
        raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    def _nid(self, identifier: str) -> ua.NodeId:
        return ua.NodeId(identifier, self.namespace_index)

    async def _build_address_space(self, server: Server) -> None:
        idx = self.namespace_index
        parents: dict[str, Any] = {}
        for object_id in OBJECTS:
            parent_id, _, name = object_id.rpartition(".")
            parent = parents[parent_id] if parent_id else server.nodes.objects
            parents[object_id] = await parent.add_object(
                self._nid(object_id), ua.QualifiedName(name, idx)
            )
        values = self.faults.apply("opcua", self.plant.snapshot())
        now = datetime.now(UTC)
        items: list[ua.AddNodesItem] = []
        self._nodes = []
        for spec in NODES:
            parent_id, _, name = spec.node_id.rpartition(".")
            nodeid = self._nid(spec.node_id)
            tag = TAGS[spec.path]
            value = _convert(values[spec.path], spec.variant)
            analog = spec.variant == ua.VariantType.Double
            items.append(
                _variable_item(
                    nodeid,
                    ua.QualifiedName(name, idx),
                    parents[parent_id].nodeid,
                    ua.Variant(value, spec.variant),
                    tag.description,
                    spec.writable,
                    analog,
                    now,
                )
            )
            self._nodes.append((nodeid, spec))
        _check(await server.iserver.isession.add_nodes(items))
        props: list[ua.AddNodesItem] = []
        for nodeid, spec in self._nodes:
            tag = TAGS[spec.path]
            if spec.variant != ua.VariantType.Double:
                continue
            eu = ua.EUInformation(
                NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
                UnitId=unece_unit_id(tag.unece),
                DisplayName=ua.LocalizedText(tag.unit),
                Description=ua.LocalizedText(tag.unit),
            )
            props.append(
                _property_item(
                    nodeid, "EngineeringUnits", ua.Variant(eu), ua.ObjectIds.EUInformation
                )
            )
            eu_range = ua.Range(Low=float(tag.low or 0.0), High=float(tag.high or 0.0))
            props.append(
                _property_item(nodeid, "EURange", ua.Variant(eu_range), ua.ObjectIds.Range)
            )
        _check(await server.iserver.isession.add_nodes(props))

        batch = parents["Line1.Batch"]
        batch_id_arg = ua.Argument(
            Name="BatchId",
            DataType=ua.NodeId(ua.ObjectIds.String),
            ValueRank=-1,
            Description=ua.LocalizedText("Batch id ('' = next automatic id)"),
        )
        await batch.add_method(
            self._nid(METHOD_START_BATCH),
            ua.QualifiedName("StartBatch", idx),
            self._start_batch,
            [batch_id_arg],
            [batch_id_arg],
        )
        await batch.add_method(
            self._nid(METHOD_END_BATCH),
            ua.QualifiedName("EndBatch", idx),
            self._end_batch,
            [],
            [batch_id_arg],
        )
        await self._build_synthetic(server, parents["Line1"])

    async def _build_synthetic(self, server: Server, line: Any) -> None:
        count = self.config.synthetic_tags
        self._synthetic = []
        if count <= 0:
            return
        idx = self.namespace_index
        folder = await line.add_folder(
            self._nid(SYNTHETIC_FOLDER), ua.QualifiedName("Synthetic", idx)
        )
        groups = []
        for group in range((count + SYNTHETIC_GROUP_SIZE - 1) // SYNTHETIC_GROUP_SIZE):
            name = f"Group{group:03d}"
            groups.append(
                await folder.add_folder(
                    self._nid(f"{SYNTHETIC_FOLDER}.{name}"), ua.QualifiedName(name, idx)
                )
            )
        initial = synthetic_values(count, 0)
        now = datetime.now(UTC)
        items = []
        for i in range(count):
            nodeid = self._nid(synthetic_node_id(i))
            items.append(
                _variable_item(
                    nodeid,
                    ua.QualifiedName(f"Tag{i:05d}", idx),
                    groups[i // SYNTHETIC_GROUP_SIZE].nodeid,
                    ua.Variant(float(initial[i]), ua.VariantType.Double),
                    "synthetic load-test tag",
                    False,
                    False,
                    now,
                )
            )
            self._synthetic.append(nodeid)
        _check(await server.iserver.isession.add_nodes(items))

    # -- methods -------------------------------------------------------------------------------

    async def _start_batch(self, parent: ua.NodeId, batch_id: ua.Variant) -> Any:
        raw = batch_id.Value if isinstance(batch_id, ua.Variant) else batch_id
        try:
            record = self.plant.start_batch(str(raw) if raw is not None else None)
        except ValueError:
            return ua.StatusCode(ua.StatusCodes.BadInvalidArgument)
        await self._push_once()
        return [ua.Variant(record.batch_id, ua.VariantType.String)]

    async def _end_batch(self, parent: ua.NodeId) -> Any:
        record = self.plant.end_batch()
        await self._push_once()
        return [ua.Variant(record.batch_id if record else "", ua.VariantType.String)]

    # -- request hooks (faults and setpoint writes) -------------------------------------------

    async def _pre_read(self, event: ServerItemCallback, dispatcher: Any) -> None:
        delay = self.faults.delay("opcua")
        if delay:
            await asyncio.sleep(delay)

    def _setpoint_writes(self, params: Any) -> list[tuple[NodeSpec, Any]]:
        by_id = {nodeid: spec for nodeid, spec in self._nodes if spec.writable}
        writes = []
        for item in params.NodesToWrite:
            spec = by_id.get(item.NodeId)
            if spec is None or item.AttributeId != ua.AttributeIds.Value:
                continue
            variant = item.Value.Value if item.Value is not None else None
            writes.append((spec, variant.Value if variant is not None else None))
        return writes

    async def _pre_write(self, event: ServerItemCallback, dispatcher: Any) -> None:
        delay = self.faults.delay("opcua")
        if delay:
            await asyncio.sleep(delay)
        for spec, value in self._setpoint_writes(event.request_params):
            name = spec.path.split(".", 1)[1]
            if name in SETPOINT_LIMITS:
                low, high = SETPOINT_LIMITS[name]
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or not math.isfinite(value)
                    or not low <= value <= high
                ):
                    raise ua.uaerrors.BadOutOfRange()

    async def _post_write(self, event: ServerItemCallback, dispatcher: Any) -> None:
        results = event.response_params or []
        items = list(event.request_params.NodesToWrite)
        by_id = {nodeid: spec for nodeid, spec in self._nodes if spec.writable}
        changed = False
        for item, status in zip(items, results, strict=False):
            spec = by_id.get(item.NodeId)
            if spec is None or not status.is_good() or item.Value.Value is None:
                continue
            value = item.Value.Value.Value
            name = spec.path.split(".", 1)[1]
            try:
                self.plant.set_setpoints(**{name: value})
            except (ValueError, TypeError) as err:
                log.warning("OPC UA setpoint write %s=%r refused: %s", name, value, err)
                continue
            self.writes_applied += 1
            changed = True
        if changed:
            await self._push_once()

    # -- value updates ---------------------------------------------------------------------------

    async def _push_once(self) -> None:
        server = self.server
        if server is None or self.faults.is_frozen("opcua"):
            return
        values = self.faults.apply("opcua", self.plant.snapshot())
        source_ts = self.plant.updated_at
        now = datetime.now(UTC)
        for nodeid, spec in self._nodes:
            quality = self.faults.quality(spec.path)
            try:
                value = _convert(values[spec.path], spec.variant)
            except (TypeError, ValueError, OverflowError):
                continue
            if spec.variant == ua.VariantType.Double and not math.isfinite(value):
                quality = quality or "bad"
            dv = ua.DataValue(
                Value=ua.Variant(value, spec.variant),
                StatusCode=ua.StatusCode(_STATUS[quality]),
                SourceTimestamp=source_ts,
                ServerTimestamp=now,
            )
            await server.write_attribute_value(nodeid, dv)

    async def _update_clock(self) -> None:
        server = self.server
        if server is None:
            return
        now = datetime.now(UTC)
        status_node = server.get_node(ua.NodeId(ua.ObjectIds.Server_ServerStatus))
        status = copy.copy(await status_node.read_value())
        status.CurrentTime = now
        await status_node.write_value(status)
        await server.get_node(ua.NodeId(ua.ObjectIds.Server_ServerStatus_CurrentTime)).write_value(
            now
        )

    async def _push_loop(self) -> None:
        period = 1.0 / max(self.config.rate_hz, 0.01)
        next_at = time.monotonic()
        next_clock = next_at
        while True:
            try:
                await self._push_once()
                if time.monotonic() >= next_clock:
                    next_clock = time.monotonic() + 1.0
                    await self._update_clock()
            except Exception:
                log.exception("OPC UA value update failed")
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if time.monotonic() - next_at > 5 * period:
                next_at = time.monotonic()

    async def _synthetic_loop(self) -> None:
        period = 1.0 / max(self.config.synthetic_rate_hz, 0.001)
        tick = 0
        next_at = time.monotonic()
        while True:
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if time.monotonic() - next_at > 5 * period:
                next_at = time.monotonic()
            server = self.server
            if server is None or self.faults.is_frozen("opcua"):
                continue
            tick += 1
            values = synthetic_values(len(self._synthetic), tick).tolist()
            now = datetime.now(UTC)
            good = ua.StatusCode(ua.StatusCodes.Good)
            for nodeid, value in zip(self._synthetic, values, strict=True):
                dv = ua.DataValue(
                    Value=ua.Variant(value, ua.VariantType.Double),
                    StatusCode=good,
                    SourceTimestamp=now,
                    ServerTimestamp=now,
                )
                await server.write_attribute_value(nodeid, dv)


def _check(results: list[ua.AddNodesResult]) -> None:
    for result in results:
        result.StatusCode.check()


def _variable_item(
    nodeid: ua.NodeId,
    qname: ua.QualifiedName,
    parent: ua.NodeId,
    value: ua.Variant,
    description: str,
    writable: bool,
    analog: bool,
    now: datetime,
) -> ua.AddNodesItem:
    item = ua.AddNodesItem()
    item.RequestedNewNodeId = nodeid
    item.BrowseName = qname
    item.NodeClass = ua.NodeClass.Variable
    item.ParentNodeId = parent
    item.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasComponent)
    item.TypeDefinition = ua.NodeId(
        ua.ObjectIds.AnalogItemType if analog else ua.ObjectIds.BaseDataVariableType
    )
    attrs = ua.VariableAttributes()
    attrs.DisplayName = ua.LocalizedText(qname.Name)
    attrs.Description = ua.LocalizedText(description)
    attrs.DataType = ua.NodeId(int(value.VariantType.value))
    attrs.Value = value
    attrs.ValueRank = ua.ValueRank.Scalar
    access = ua.AccessLevel.CurrentRead.mask
    if writable:
        access |= ua.AccessLevel.CurrentWrite.mask
    attrs.AccessLevel = access
    attrs.UserAccessLevel = access
    attrs.WriteMask = 0
    attrs.UserWriteMask = 0
    attrs.Historizing = False
    item.NodeAttributes = attrs
    return item


def _property_item(
    parent: ua.NodeId, name: str, value: ua.Variant, datatype: int
) -> ua.AddNodesItem:
    item = ua.AddNodesItem()
    item.RequestedNewNodeId = ua.NodeId(f"{parent.Identifier!s}.{name}", parent.NamespaceIndex)
    item.BrowseName = ua.QualifiedName(name, 0)
    item.NodeClass = ua.NodeClass.Variable
    item.ParentNodeId = parent
    item.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasProperty)
    item.TypeDefinition = ua.NodeId(ua.ObjectIds.PropertyType)
    attrs = ua.VariableAttributes()
    attrs.DisplayName = ua.LocalizedText(name)
    attrs.DataType = ua.NodeId(datatype)
    attrs.Value = value
    attrs.ValueRank = ua.ValueRank.Scalar
    attrs.AccessLevel = ua.AccessLevel.CurrentRead.mask
    attrs.UserAccessLevel = ua.AccessLevel.CurrentRead.mask
    item.NodeAttributes = attrs
    return item
