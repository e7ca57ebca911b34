"""What every connector's settings share: the tag base model, number and name types, and
located validation errors (``tags[3].address: ...``).

Each protocol folder (``connectors/opcua``, ``mqtt``, ``modbus``, ``sparkplug``) has its own
``config.py`` built on these; :mod:`circman5.connectors.config` joins them into the
``[[connectors]]`` union.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)
from pydantic_core import PydanticCustomError

from circman5.connectors.mqtt.topics import validate_twin_path

__all__ = [
    "Finite",
    "Name",
    "NonNegative",
    "Positive",
    "Qos",
    "TagBase",
    "check_path",
    "located",
    "location_key",
    "stale_timeout",
]

Finite = Annotated[float, Field(allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Qos = Literal[0, 1, 2]


def located(loc: tuple[str | int, ...], message: str) -> PydanticCustomError:
    """An error whose message starts with a location below the model being validated."""
    return PydanticCustomError(
        "connector_config", "{loc}: {reason}", {"loc": location_key(loc), "reason": message}
    )


def location_key(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def check_path(path: str) -> str:
    validate_twin_path(path)
    return path


class TagBase(BaseModel):
    """What every tag has: where it is read, where it goes in the twin, how it is scaled.

    ``value = raw * scale + offset``; ``deadband``: the change a new value needs to be passed on
    (absolute, engineering units; 0 = every value); ``stale_timeout_s``: seconds of silence
    after which the twin marks the path stale (default: the connector's rule; 0 = never by
    silence); ``writable``: allow :meth:`Connector.write` to this tag.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str
    path: str
    scale: Finite = 1.0
    offset: Finite = 0.0
    unit: str = ""
    deadband: NonNegative = 0.0
    stale_timeout_s: NonNegative | None = None
    writable: bool = False

    @field_validator("scale")
    @classmethod
    def _scale(cls, value: float) -> float:
        if value == 0:
            raise ValueError("scale must not be 0")
        return value


def stale_timeout(tag: TagBase) -> float | None:
    """A tag's silence timeout: None = connector default, ``inf`` for 0 (never)."""
    if tag.stale_timeout_s is None:
        return None
    return math.inf if tag.stale_timeout_s == 0 else tag.stale_timeout_s
