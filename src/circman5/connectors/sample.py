"""The Sample: one value read from a device, on its way into the twin."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

SampleValue = float | int | bool | str


class Quality(StrEnum):
    """OPC UA style quality of a sample."""

    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class Sample:
    """A frozen value: where it came from, where it goes in the twin, and how good it is.

    ``source`` is the connector's name, ``address`` the protocol address (node id, topic,
    register), ``path`` the twin path (``production_line.temperature``), ``timestamp_ns`` the
    source timestamp in nanoseconds since the Unix epoch.
    """

    source: str
    address: str
    path: str
    value: SampleValue
    timestamp_ns: int = field(default_factory=time.time_ns)
    quality: Quality = Quality.GOOD
