"""Settings of the Modbus connector (``type = "modbus"``): TCP, RTU or RTU over TCP, request
planning limits and the tag map (``hr:100`` registers to twin paths). See ``README.md`` in this
folder."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from circman5.connectors.config_base import (
    Name,
    NonNegative,
    Positive,
    TagBase,
    check_path,
    located,
)
from circman5.connectors.modbus.codec import DataType as ModbusDataType
from circman5.connectors.modbus.codec import register_count
from circman5.connectors.modbus.plan import (
    BIT_TABLES,
    MAX_BITS,
    MAX_REGISTERS,
    WRITABLE_TABLES,
    parse_address,
)

__all__ = ["ModbusConnectorSettings", "ModbusTag"]


class ModbusTag(TagBase):
    """A coil, discrete input, input register or holding register (``hr:100``).

    ``data_type``: int16, uint16, int32, uint32, int64, uint64, float32, float64, string (with
    ``length`` in registers) or bit (coils and discrete inputs always; in a register with
    ``bit`` = 0..15). ``byte_order``/``word_order``/``unit_id`` default to the connector's.
    """

    data_type: ModbusDataType | None = None
    unit_id: Annotated[int, Field(ge=0, le=255)] | None = None
    byte_order: Literal["big", "little"] | None = None
    word_order: Literal["big", "little"] | None = None
    length: Annotated[int, Field(ge=1, le=MAX_REGISTERS)] | None = None
    bit: Annotated[int, Field(ge=0, le=15)] | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_path(value)

    @model_validator(mode="after")
    def _layout(self) -> ModbusTag:
        try:
            address = parse_address(self.address)
        except ValueError as err:
            raise located(("address",), str(err)) from err
        data_type = self.effective_type
        if address.table in BIT_TABLES:
            if data_type != "bit":
                raise located(
                    ("data_type",),
                    f"{address.table} holds bits; data_type must be 'bit', not '{data_type}'",
                )
            if self.bit is not None:
                raise located(
                    ("bit",), f"'bit' selects a bit of a register, not of a {address.table}"
                )
        elif data_type == "bit" and self.bit is None:
            raise located(("bit",), "a 'bit' tag in a register needs bit = 0..15")
        if data_type == "string" and self.length is None:
            raise located(("length",), "a string tag needs 'length' (registers)")
        if data_type != "string" and self.length is not None:
            raise located(("length",), "'length' applies to string tags only")
        if data_type != "bit" and self.bit is not None:
            raise located(("bit",), "'bit' applies to data_type 'bit' only")
        if data_type in ("string", "bit") and (
            self.scale != 1.0 or self.offset != 0.0 or self.deadband
        ):
            raise ValueError(f"scale, offset and deadband do not apply to {data_type} tags")
        count = register_count(data_type, self.length)
        if address.offset + count > 0x10000:
            raise located(("address",), f"{count} registers from {address.offset} pass 65535")
        if self.writable and (
            address.table not in WRITABLE_TABLES or (data_type == "bit" and not address.is_bit)
        ):
            raise located(
                ("writable",),
                "only coils and holding registers (not single bits of a register) are writable",
            )
        return self

    @property
    def effective_type(self) -> str:
        if self.data_type is not None:
            return self.data_type
        return "bit" if parse_address(self.address).is_bit else "uint16"


class ModbusConnectorSettings(BaseModel):
    """A Modbus TCP server, an RTU serial line, or RTU framing over TCP (gateways, tests).

    Tags are polled every ``poll_interval_s``; tags of one unit and table are merged into as few
    requests as possible (``max_registers_per_request``, ``max_bits_per_request``, reading over
    gaps of up to ``max_gap``). A unit that keeps failing is polled less often, doubling up to
    ``backoff_max_s``, until it answers again.

    ``report``: ``"change"`` passes a polled value on when it changed (by more than the tag's
    ``deadband``, if it has one), after a failure, and at least every ``heartbeat_s`` (0: never
    just for being old), like an OPC UA subscription; ``"poll"`` passes every polled value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["modbus"]
    name: Name
    enabled: bool = True
    transport: Literal["tcp", "rtu", "rtu_over_tcp"] = "tcp"
    host: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 502
    serial_port: str | None = None
    baudrate: Annotated[int, Field(ge=50, le=4_000_000)] = 19200
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit_id: Annotated[int, Field(ge=0, le=255)] = 1
    byte_order: Literal["big", "little"] = "big"
    word_order: Literal["big", "little"] = "big"
    poll_interval_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1.0
    timeout_s: Positive = 1.0
    retries: Annotated[int, Field(ge=0, le=10)] = 0
    max_registers_per_request: Annotated[int, Field(ge=1, le=MAX_REGISTERS)] = MAX_REGISTERS
    max_bits_per_request: Annotated[int, Field(ge=1, le=MAX_BITS)] = MAX_BITS
    max_gap: Annotated[int, Field(ge=0, le=MAX_REGISTERS)] = 0
    backoff_max_s: Positive = 60.0
    report: Literal["change", "poll"] = "change"
    heartbeat_s: NonNegative = 60.0
    reconnect_initial_s: Positive = 0.5
    reconnect_max_s: Positive = 30.0
    #: Retry interval while the server is absent (connection refused, no route); ``None``:
    #: back off as for a server that refuses (see docs/tag_mapping.md, "Reconnecting").
    reconnect_absent_s: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] | None = 0.5
    max_buffered_samples: Annotated[int, Field(ge=1)] = 1_000_000
    tags: list[ModbusTag] = Field(default_factory=list)

    @model_validator(mode="after")
    def _endpoint(self) -> ModbusConnectorSettings:
        if self.transport == "rtu":
            if not self.serial_port:
                raise ValueError("transport 'rtu' needs 'serial_port' (e.g. '/dev/ttyUSB0')")
        elif not self.host:
            raise ValueError(f"transport '{self.transport}' needs 'host'")
        for index, tag in enumerate(self.tags):
            count = register_count(tag.effective_type, tag.length)
            if not parse_address(tag.address).is_bit and count > self.max_registers_per_request:
                raise located(
                    ("tags", index, "length"),
                    f"{count} registers exceed max_registers_per_request "
                    f"({self.max_registers_per_request})",
                )
        return self
