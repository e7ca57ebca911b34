"""Tags compiled for the hot path: node address, value conversion, scaling (no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from asyncua import ua

from circman5.connectors.opcua.config import OpcUaTag
from circman5.connectors.opcua.nodeid import NodeAddress, parse_node_address
from circman5.samples import SampleValue

__all__ = ["CompiledTag", "compile_tag", "convert_auto"]


@dataclass(slots=True)
class CompiledTag:
    """A tag compiled for the hot path; ``nodeid`` is resolved at every (re)connect."""

    path: str
    address: str
    node: NodeAddress
    settings: OpcUaTag
    convert: Callable[[object], SampleValue] | None
    scaled: bool
    nodeid: ua.NodeId | None = None


def convert_auto(value: object) -> SampleValue:
    """The server's value as it is, if it is a sample value (ValueError if not)."""
    kind = type(value)
    if kind is float or kind is int or kind is bool or kind is str:
        return value  # type: ignore[return-value]
    raise ValueError(f"unsupported value type {kind.__name__}")


def _to_float(value: object) -> SampleValue:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _to_int(value: object) -> SampleValue:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


def _to_bool(value: object) -> SampleValue:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    raise ValueError(f"expected a boolean, got {type(value).__name__}")


def _to_str(value: object) -> SampleValue:
    if hasattr(value, "Text"):  # LocalizedText
        return str(value.Text or "")
    return str(value)


_CONVERTERS: dict[str, Callable[[object], SampleValue]] = {
    "auto": convert_auto,
    "float": _to_float,
    "int": _to_int,
    "bool": _to_bool,
    "str": _to_str,
}


def compile_tag(tag: OpcUaTag, namespace_uri: str | None) -> CompiledTag:
    """``tag`` ready for the hot path: a converter only where the value needs one."""
    node = parse_node_address(tag.address, namespace_uri)
    scaled = tag.scale != 1.0 or tag.offset != 0.0
    convert = None if tag.data_type == "auto" and not scaled else _CONVERTERS[tag.data_type]
    return CompiledTag(tag.path, str(node), node, tag, convert, scaled)
