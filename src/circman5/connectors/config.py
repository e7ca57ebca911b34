"""The tag map: connector settings in the service's TOML config (pydantic, ``extra="forbid"``).

Each ``[[connectors]]`` table has a ``type`` (``"opcua"``, ``"mqtt"``, ``"modbus"`` or
``"sparkplug"``) that picks its model, and a list of ``[[connectors.tags]]``: protocol address,
twin path, data type, scale, offset, unit, deadband. Everything is checked at load time; an
error names the entry, e.g. ``connectors[0].tags[3].address: 'ns=2;s=X' uses a namespace index
...``. Twin paths must be unique across all connectors. See ``docs/tag_mapping.md`` for worked
examples.

For the service settings use :data:`ConnectorList`::

    class Settings(BaseSettings):
        connectors: ConnectorList = []

(:data:`ConnectorSettings` is the discriminated union of one entry.) Standalone:
:func:`load_connectors` reads a TOML document with ``[[connectors]]`` tables.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, WrapValidator

from circman5.connectors.config_base import TagBase, stale_timeout
from circman5.connectors.modbus.config import ModbusConnectorSettings, ModbusTag
from circman5.connectors.mqtt.config import MqttConnectorSettings, MqttTag, MqttTls
from circman5.connectors.opcua.config import (
    OpcUaConnectorSettings,
    OpcUaDiscovery,
    OpcUaSecurity,
    OpcUaTag,
)
from circman5.connectors.sparkplug.config import SparkplugConnectorSettings
from circman5.errors import ConfigError

__all__ = [
    "CONNECTOR_TYPES",
    "ConnectorList",
    "ConnectorSettings",
    "ConnectorsFile",
    "ModbusConnectorSettings",
    "ModbusTag",
    "MqttConnectorSettings",
    "MqttTag",
    "MqttTls",
    "OpcUaConnectorSettings",
    "OpcUaDiscovery",
    "OpcUaSecurity",
    "OpcUaTag",
    "SparkplugConnectorSettings",
    "TagBase",
    "load_connectors",
    "stale_timeout",
]

CONNECTOR_TYPES: tuple[str, ...] = ("opcua", "mqtt", "modbus", "sparkplug")

# -- the union and the list -----------------------------------------------------------------------

ConnectorSettings = Annotated[
    OpcUaConnectorSettings
    | MqttConnectorSettings
    | ModbusConnectorSettings
    | SparkplugConnectorSettings,
    Field(discriminator="type"),
]
"""One ``[[connectors]]`` entry; ``type`` picks the model."""

AnyConnectorSettings: TypeAlias = (
    OpcUaConnectorSettings
    | MqttConnectorSettings
    | ModbusConnectorSettings
    | SparkplugConnectorSettings
)


def _problem_key(prefix: str, loc: Sequence[str | int], ctx: dict[str, Any] | None) -> str:
    parts = list(loc)
    # The discriminated union adds the connector type after the list index: drop it.
    if len(parts) >= 2 and isinstance(parts[0], int) and parts[1] in CONNECTOR_TYPES:
        del parts[1]
    key = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
    if ctx and "loc" in ctx:
        inner = str(ctx["loc"])
        key += inner if inner.startswith("[") else "." + inner
    return key


def _describe(prefix: str, err: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for problem in err.errors():
        ctx = problem.get("ctx")
        key = _problem_key(prefix, problem["loc"], ctx)
        if problem["type"] == "connector_config" and ctx:
            message = str(ctx["reason"])
        elif problem["type"] == "extra_forbidden":
            message = "unknown key"
        elif problem["type"] == "union_tag_invalid":
            message = (
                f"unknown connector type {problem['input'].get('type')!r}; "
                f"expected one of {', '.join(CONNECTOR_TYPES)}"
                if isinstance(problem["input"], dict)
                else problem["msg"]
            )
        elif problem["type"] == "union_tag_not_found":
            message = f"missing 'type' (one of {', '.join(CONNECTOR_TYPES)})"
        else:
            message = problem["msg"]
            if message.startswith("Value error, "):
                message = message[len("Value error, ") :]
        problems.append((key, message))
    return problems


def _path_pattern(path: str) -> str:
    return re.sub(r"\{\d+\}", "*", path)


def check_unique(connectors: Sequence[AnyConnectorSettings], prefix: str = "connectors") -> None:
    """Raise ``ValueError`` naming the entry when a twin path or connector name repeats."""
    names: dict[str, int] = {}
    seen: dict[str, str] = {}
    templates: list[tuple[re.Pattern[str], str, str]] = []
    for index, connector in enumerate(connectors):
        if connector.name in names:
            raise ValueError(
                f"{prefix}[{index}].name: duplicate connector name '{connector.name}' "
                f"(also {prefix}[{names[connector.name]}].name)"
            )
        names[connector.name] = index
        for tag_index, tag in enumerate(connector.tags):
            key = f"{prefix}[{index}].tags[{tag_index}].path"
            normal = _path_pattern(tag.path)
            if normal in seen:
                raise ValueError(f"{key}: duplicate twin path '{tag.path}' (also {seen[normal]})")
            seen[normal] = key
            if "*" in normal:
                regex = re.compile("^" + re.escape(normal).replace(r"\*", r"[A-Za-z0-9_.]+") + "$")
                templates.append((regex, tag.path, key))
    concrete = sorted((path, key) for path, key in seen.items() if "*" not in path)
    for (path, key), (other, other_key) in itertools.pairwise(concrete):
        if other.startswith(path + "."):
            raise ValueError(
                f"{other_key}: twin path '{other}' is inside '{path}' ({key}); a path cannot be "
                "both a value and a section"
            )
    for regex, template, key in templates:
        for path, other in seen.items():
            if other != key and "*" not in path and regex.match(path):
                raise ValueError(
                    f"{other}: twin path '{path}' is also produced by '{template}' ({key})"
                )


def _validate_list(value: Any, handler: Any, info: ValidationInfo) -> list[AnyConnectorSettings]:
    try:
        result: list[AnyConnectorSettings] = handler(value)
    except ValidationError as err:
        problems = _describe("connectors", err)
        raise ValueError("; ".join(f"{key}: {message}" for key, message in problems)) from None
    check_unique(result)
    return result


ConnectorList = Annotated[list[ConnectorSettings], WrapValidator(_validate_list)]
"""``connectors: ConnectorList = []`` in the service settings: the whole tag map, validated."""


class ConnectorsFile(BaseModel):
    """A TOML document holding only ``[[connectors]]`` tables (for tests, tools and docs)."""

    model_config = ConfigDict(extra="forbid")

    connectors: ConnectorList = Field(default_factory=list)


def load_connectors(
    source: str | Path, file_label: str | None = None
) -> list[AnyConnectorSettings]:
    """Validate the ``[[connectors]]`` of a TOML file (``Path``) or TOML text (``str``).

    Raises :class:`ConfigError` with the file, the entry (``connectors[0].tags[3].address``)
    and the reason.
    """
    if isinstance(source, Path):
        label = file_label or str(source)
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(label, "(file)", f"cannot read: {err}") from err
    else:
        label = file_label or "<toml>"
        text = source
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(label, "(syntax)", f"invalid TOML: {err}") from err
    raw = data.get("connectors", [])
    try:
        adapter_result = ConnectorsFile.model_validate({"connectors": raw})
    except ValidationError as err:
        first = err.errors()[0]
        message = str(first["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        key, _, reason = message.partition(": ")
        if not key.startswith("connectors"):
            key, reason = "connectors", message
        raise ConfigError(label, key, reason) from err
    return list(adapter_result.connectors)
