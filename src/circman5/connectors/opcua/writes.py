"""Writing a value to a node: coerced to the node's data type, refusals as ``TagWriteError``."""

from __future__ import annotations

import math

from asyncua import ua
from asyncua.common.node import Node
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from circman5.connectors.opcua.session import describe
from circman5.connectors.opcua.tags import CompiledTag
from circman5.connectors.status import ConnectorStatus
from circman5.errors import DeviceUnavailable, TagWriteError
from circman5.samples import SampleValue

__all__ = ["coerce", "variant_type_of", "write_value"]

# DataType node ids (namespace 0) of the built-in scalar types -> variant type.
_DATA_TYPES: dict[int, ua.VariantType] = {
    1: ua.VariantType.Boolean,
    2: ua.VariantType.SByte,
    3: ua.VariantType.Byte,
    4: ua.VariantType.Int16,
    5: ua.VariantType.UInt16,
    6: ua.VariantType.Int32,
    7: ua.VariantType.UInt32,
    8: ua.VariantType.Int64,
    9: ua.VariantType.UInt64,
    10: ua.VariantType.Float,
    11: ua.VariantType.Double,
    12: ua.VariantType.String,
}
_INT_TYPES = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}


async def write_value(
    node: Node,
    tag: CompiledTag,
    value: SampleValue,
    variant_types: dict[str, ua.VariantType],
    status: ConnectorStatus,
    connector: str,
) -> None:
    """Write ``value`` (engineering units) to ``node``; ``variant_types`` caches node types."""
    raw: object = value
    if tag.scaled and not isinstance(value, bool | str):
        raw = (float(value) - tag.settings.offset) / tag.settings.scale
    try:
        variant_type = variant_types.get(tag.address)
        if variant_type is None:
            data_type = await node.read_data_type()
            variant_type = variant_type_of(data_type)
            variant_types[tag.address] = variant_type
        variant = ua.Variant(coerce(raw, variant_type), variant_type)
        await node.write_attribute(AttributeIds.Value, ua.DataValue(variant))
    except ValueError as err:
        status.write_errors += 1
        raise TagWriteError(f"opcua {connector}: {tag.path} = {value!r}: {err}") from err
    except UaStatusCodeError as err:
        status.write_errors += 1
        raise TagWriteError(
            f"opcua {connector}: writing {tag.path} = {value!r} refused: {describe(err)}"
        ) from err
    except (OSError, TimeoutError, ConnectionError, UaError) as err:
        status.write_errors += 1
        raise DeviceUnavailable(f"opcua {connector}: write failed: {describe(err)}") from err
    status.writes += 1


def variant_type_of(data_type: ua.NodeId) -> ua.VariantType:
    """The variant type of a built-in scalar DataType node (ValueError for any other)."""
    if data_type.NamespaceIndex == 0 and isinstance(data_type.Identifier, int):
        found = _DATA_TYPES.get(data_type.Identifier)
        if found is not None:
            return found
    raise ValueError(f"cannot write to a node of data type {data_type}")


def coerce(value: object, variant_type: ua.VariantType) -> object:
    """``value`` as the Python type asyncua expects for ``variant_type`` (ValueError if not)."""
    if variant_type == ua.VariantType.Boolean:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
        raise ValueError(f"{value!r} is not a boolean")
    if variant_type == ua.VariantType.String:
        return str(value)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    if variant_type in (ua.VariantType.Float, ua.VariantType.Double):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return float(value)
    low, high = _INT_TYPES[variant_type]
    if isinstance(value, float):
        if not value.is_integer():
            value = round(value)
        value = int(value)
    if not low <= value <= high:
        raise ValueError(f"{value} is outside the {variant_type.name} range [{low}, {high}]")
    return value
