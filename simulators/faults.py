"""Fault injection shared by the device servers.

One :class:`Faults` object is handed to the OPC UA, Modbus and MQTT servers of a bench. Every
fault can be switched on and off at run time, and most can be limited to some of the servers
(``servers=("opcua",)``; default: all three). Faults act on what the servers *report*; the plant
itself keeps running.

=====================  ========================================================================
fault                  effect
=====================  ========================================================================
freeze                 values stop changing: OPC UA stops writing (values and source timestamps
                       stay), Modbus answers with the values of the moment of freezing, the MES
                       repeats them in its inventory messages.
stuck_at(path, v)      the tag reports ``v`` (a stuck sensor: timestamps keep moving).
spike(path, v)         the tag reports an out-of-range value (default: the tag's ``spike`` value
                       from :mod:`simulators.tags`), optionally only for ``duration`` seconds.
bad_quality(path)      OPC UA status code of the tag becomes BadSensorFailure ("bad") or
                       UncertainLastUsableValue ("uncertain"); value keeps updating.
delay(seconds)         OPC UA Read/Write requests and Modbus requests are answered ``seconds``
                       later; MES messages are published ``seconds`` late.
modbus_exception(u,c)  every request to Modbus unit ``u`` gets exception code ``c``
                       (6 SLAVE_DEVICE_BUSY by default; 2 ILLEGAL_ADDRESS, 4 DEVICE_FAILURE...).
mqtt_malformed(kind)   MES messages are published malformed: invalid_json, wrong_types, nan,
                       oversized, empty or binary (see :mod:`simulators.mqtt_mes`).
=====================  ========================================================================

Stopping and restarting a server (same port) is done on the server objects
(``await bench.opcua.stop()`` / ``start()``, or ``bench.outage("opcua", seconds)``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from simulators.tags import TAGS, Value, coerce

log = logging.getLogger(__name__)

ServerName = Literal["opcua", "modbus", "mqtt"]
SERVER_NAMES: tuple[ServerName, ...] = get_args(ServerName)
MalformedKind = Literal["invalid_json", "wrong_types", "nan", "oversized", "empty", "binary"]
MALFORMED_KINDS: tuple[MalformedKind, ...] = get_args(MalformedKind)
QualityFault = Literal["bad", "uncertain"]

MODBUS_EXCEPTION_CODES = {
    "ILLEGAL_FUNCTION": 1,
    "ILLEGAL_ADDRESS": 2,
    "ILLEGAL_VALUE": 3,
    "DEVICE_FAILURE": 4,
    "SLAVE_DEVICE_FAILURE": 4,
    "ACKNOWLEDGE": 5,
    "DEVICE_BUSY": 6,
    "SLAVE_DEVICE_BUSY": 6,
    "GATEWAY_PATH_UNAVAILABLE": 10,
    "GATEWAY_NO_RESPONSE": 11,
}

VALID_MODBUS_EXCEPTION_CODES = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 10, 11})

Servers = ServerName | str | Iterable[str] | None


def _servers(servers: Servers) -> frozenset[ServerName]:
    if servers is None:
        return frozenset(SERVER_NAMES)
    names = [servers] if isinstance(servers, str) else list(servers)
    picked: set[ServerName] = set()
    for name in names:
        for part in str(name).split(","):
            part = part.strip().lower()
            if not part:
                continue
            if part == "all":
                picked.update(SERVER_NAMES)
                continue
            if part not in SERVER_NAMES:
                raise ValueError(f"unknown server {part!r}; expected one of {SERVER_NAMES}")
            picked.add(part)
    return frozenset(picked)


def modbus_exception_code(code: int | str) -> int:
    """An exception code from a number or a name (``DEVICE_BUSY``, ``ILLEGAL_ADDRESS``...)."""
    if isinstance(code, int):
        value = code
    elif code.strip().isdigit():
        value = int(code)
    else:
        try:
            value = MODBUS_EXCEPTION_CODES[code.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown Modbus exception {code!r}") from None
    if value not in VALID_MODBUS_EXCEPTION_CODES:
        raise ValueError(
            f"Modbus exception code {value} not one of {sorted(VALID_MODBUS_EXCEPTION_CODES)}"
        )
    return value


@dataclass(frozen=True, slots=True)
class _Override:
    value: Value
    servers: frozenset[ServerName]
    until: float | None  # time.monotonic() deadline


class Faults:
    """The switchable faults of one simulator bench (see the module docstring)."""

    def __init__(self) -> None:
        self._frozen: set[ServerName] = set()
        self._last: dict[ServerName, dict[str, Value]] = {}
        self._stuck: dict[str, _Override] = {}
        self._spikes: dict[str, _Override] = {}
        self._quality: dict[str, QualityFault] = {}
        self._delay: dict[ServerName, float] = {}
        self._modbus_exceptions: dict[int, int] = {}
        self._malformed: MalformedKind | None = None
        self.version = 0
        """Incremented on every change (servers use it to notice a switch)."""

    def _changed(self, what: str) -> None:
        self.version += 1
        log.info("fault change: %s", what)

    # -- freeze ------------------------------------------------------------------------------

    def freeze(self, servers: Servers = None) -> None:
        """Stop reported values from changing on the given servers."""
        picked = _servers(servers)
        self._frozen |= picked
        self._changed(f"freeze {sorted(picked)}")

    def unfreeze(self, servers: Servers = None) -> None:
        picked = _servers(servers)
        self._frozen -= picked
        for name in picked:
            self._last.pop(name, None)
        self._changed(f"unfreeze {sorted(picked)}")

    def is_frozen(self, server: ServerName) -> bool:
        return server in self._frozen

    # -- value overrides -----------------------------------------------------------------------

    def stuck_at(self, path: str, value: object, servers: Servers = None) -> None:
        """The tag at ``path`` reports ``value`` until :meth:`clear_stuck`."""
        self._stuck[path] = _Override(coerce(path, value), _servers(servers), None)
        self._changed(f"stuck {path}={value!r}")

    def clear_stuck(self, path: str | None = None) -> None:
        if path is None:
            self._stuck.clear()
        else:
            self._stuck.pop(path, None)
        self._changed(f"clear stuck {path or 'all'}")

    def spike(
        self,
        path: str,
        value: object | None = None,
        *,
        duration: float | None = None,
        servers: Servers = None,
    ) -> None:
        """The tag reports an out-of-range value (for ``duration`` seconds, or until cleared)."""
        if value is None:
            tag = TAGS.get(path)
            if tag is None or tag.spike is None:
                raise ValueError(f"no default spike value for {path!r}; give one")
            value = tag.spike
        until = time.monotonic() + duration if duration is not None else None
        self._spikes[path] = _Override(coerce(path, value), _servers(servers), until)
        self._changed(f"spike {path}={value!r} for {duration}")

    def clear_spike(self, path: str | None = None) -> None:
        if path is None:
            self._spikes.clear()
        else:
            self._spikes.pop(path, None)
        self._changed(f"clear spike {path or 'all'}")

    def bad_quality(self, path: str, quality: QualityFault | str = "bad") -> None:
        """OPC UA reports the tag with a Bad (or Uncertain) status code."""
        if quality == "bad":
            self._quality[path] = "bad"
        elif quality == "uncertain":
            self._quality[path] = "uncertain"
        else:
            raise ValueError(f"quality must be 'bad' or 'uncertain', got {quality!r}")
        self._changed(f"quality {path}={quality}")

    def clear_quality(self, path: str | None = None) -> None:
        if path is None:
            self._quality.clear()
        else:
            self._quality.pop(path, None)
        self._changed(f"clear quality {path or 'all'}")

    def quality(self, path: str) -> QualityFault | None:
        return self._quality.get(path)

    # -- delays and protocol faults ------------------------------------------------------------

    def set_delay(self, seconds: float, servers: Servers = None) -> None:
        """Answer requests ``seconds`` late (0 switches the delay off)."""
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError("delay must be a finite number >= 0")
        for name in _servers(servers):
            if seconds:
                self._delay[name] = float(seconds)
            else:
                self._delay.pop(name, None)
        self._changed(f"delay {seconds}s {sorted(_servers(servers))}")

    def clear_delay(self) -> None:
        self._delay.clear()
        self._changed("clear delay")

    def delay(self, server: ServerName) -> float:
        return self._delay.get(server, 0.0)

    def modbus_exception(self, unit: int, code: int | str = 6) -> None:
        """Every request to Modbus ``unit`` is answered with exception ``code``."""
        self._modbus_exceptions[int(unit)] = modbus_exception_code(code)
        self._changed(f"modbus exception unit {unit} code {code}")

    def clear_modbus_exception(self, unit: int | None = None) -> None:
        if unit is None:
            self._modbus_exceptions.clear()
        else:
            self._modbus_exceptions.pop(int(unit), None)
        self._changed(f"clear modbus exception {unit if unit is not None else 'all'}")

    def modbus_exception_for(self, unit: int) -> int | None:
        return self._modbus_exceptions.get(unit)

    def mqtt_malformed(self, kind: MalformedKind | str) -> None:
        """Publish MES messages malformed in the given way until cleared."""
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"unknown malformed kind {kind!r}; expected one of {MALFORMED_KINDS}")
        self._malformed = kind
        self._changed(f"mqtt malformed {kind}")

    def clear_mqtt_malformed(self) -> None:
        self._malformed = None
        self._changed("clear mqtt malformed")

    @property
    def malformed(self) -> MalformedKind | None:
        return self._malformed

    def clear_all(self) -> None:
        """Switch every fault off."""
        self._frozen.clear()
        self._last.clear()
        self._stuck.clear()
        self._spikes.clear()
        self._quality.clear()
        self._delay.clear()
        self._modbus_exceptions.clear()
        self._malformed = None
        self._changed("clear all")

    # -- applying ------------------------------------------------------------------------------

    def apply(self, server: ServerName, values: Mapping[str, Value]) -> dict[str, Value]:
        """The values ``server`` should report, given the plant's ``values``."""
        if server in self._frozen:
            last = self._last.get(server)
            if last is not None:
                return dict(last)
        out = dict(values)
        now = time.monotonic()
        for path, override in list(self._stuck.items()) + list(self._spikes.items()):
            if override.until is not None and now >= override.until:
                self._spikes.pop(path, None)
                self._changed(f"spike {path} expired")
                continue
            if server in override.servers:
                out[path] = override.value
        self._last[server] = out
        return dict(out)

    def describe(self) -> dict[str, Any]:
        """The active faults as JSON-ready data."""
        return {
            "frozen": sorted(self._frozen),
            "stuck": {p: o.value for p, o in self._stuck.items()},
            "spikes": {p: o.value for p, o in self._spikes.items()},
            "quality": dict(self._quality),
            "delay": dict(self._delay),
            "modbus_exceptions": dict(self._modbus_exceptions),
            "mqtt_malformed": self._malformed,
        }

    # -- commands (CLI flags and the MQTT control topic) ----------------------------------------

    def command(self, cmd: Mapping[str, Any]) -> None:
        """Apply one JSON command, e.g. ``{"cmd": "stuck", "path": "...", "value": 1.0}``.

        Commands: freeze/unfreeze [servers], stuck path value [servers], clear_stuck [path],
        spike path [value] [duration] [servers], clear_spike [path], quality path [quality],
        clear_quality [path], delay seconds [servers], clear_delay, modbus_exception unit [code],
        clear_modbus_exception [unit], mqtt_malformed kind, clear_mqtt_malformed, clear_all.
        """
        name = str(cmd.get("cmd", ""))
        servers = cmd.get("servers")
        path = cmd.get("path")
        if name == "freeze":
            self.freeze(servers)
        elif name == "unfreeze":
            self.unfreeze(servers)
        elif name == "stuck":
            self.stuck_at(str(path), cmd["value"], servers)
        elif name == "clear_stuck":
            self.clear_stuck(path)
        elif name == "spike":
            duration = cmd.get("duration")
            self.spike(
                str(path),
                cmd.get("value"),
                duration=float(duration) if duration is not None else None,
                servers=servers,
            )
        elif name == "clear_spike":
            self.clear_spike(path)
        elif name == "quality":
            self.bad_quality(str(path), cmd.get("quality", "bad"))
        elif name == "clear_quality":
            self.clear_quality(path)
        elif name == "delay":
            self.set_delay(float(cmd.get("seconds", 0.0)), servers)
        elif name == "clear_delay":
            self.clear_delay()
        elif name == "modbus_exception":
            self.modbus_exception(int(cmd["unit"]), cmd.get("code", 6))
        elif name == "clear_modbus_exception":
            unit = cmd.get("unit")
            self.clear_modbus_exception(int(unit) if unit is not None else None)
        elif name == "mqtt_malformed":
            self.mqtt_malformed(str(cmd["kind"]))
        elif name == "clear_mqtt_malformed":
            self.clear_mqtt_malformed()
        elif name == "clear_all":
            self.clear_all()
        else:
            raise ValueError(f"unknown fault command {name!r}")
