"""The site view: every line of a site from the topics the lines' edge instances publish.

:class:`SiteWatcher` subscribes (paho-mqtt 2.x, QoS 1) to, for each watched site,

* ``{prefix}/{site}/+/status``: ``online`` / ``offline`` (retained; the broker publishes
  ``offline`` as the instance's last will when it dies). An empty retained message (the topic
  cleared by an operator) removes the line from the view.
* ``{prefix}/{site}/+/state``: the retained twin state; its ``timestamp`` and the configured key
  values are kept.
* ``{prefix}/{site}/+/alarms``: the line's active alarms (retained JSON list), so alarms raised
  before the watcher connected show at once; and ``{prefix}/{site}/+/events/threshold``, whose
  threshold events raise an alarm for their parameter and whose ``ThresholdClearedEvent``
  clears it (the alarms topic follows a moment later and replaces the list). A line that comes
  back ``online`` starts without alarms until its alarms topic says otherwise.

paho's network thread (the client and its session from the shared
:class:`~circman5.mqtt_link.BrokerLink`) decodes each message (the state's JSON is parsed there)
and hands the small result to the event loop; :meth:`SiteWatcher.lines` reads the view on the
loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from circman5.json_types import JsonValue
from circman5.mqtt_link import BrokerLink, LinkSettings, TlsOptions
from circman5.sinks.site_config import SiteViewSettings

logger = logging.getLogger(__name__)

__all__ = ["LineRecord", "SiteWatcher"]

_MAX_ALARMS = 200  # per line: a flood of distinct parameters cannot grow the view unbounded


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()


def value_at(state: Mapping[str, Any], path: str) -> JsonValue:
    """The leaf at dotted ``path`` of a decoded JSON state (None when absent or not a leaf)."""
    node: Any = state
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    leaf: JsonValue = None if isinstance(node, Mapping) else node
    return leaf


@dataclass
class LineRecord:
    """What the site view knows of one line."""

    site: str
    line: str
    status: str = "unknown"
    status_received_at: float | None = None
    state_time: str | None = None
    state_received_at: float | None = None
    values: dict[str, Any] = field(default_factory=dict)
    alarms: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self, dashboard: str | None) -> dict[str, Any]:
        return {
            "site": self.site,
            "line": self.line,
            "status": self.status,
            "online": self.status == "online",
            "status_received_at": (
                _iso(self.status_received_at) if self.status_received_at is not None else None
            ),
            "state_time": self.state_time,
            "state_received_at": (
                _iso(self.state_received_at) if self.state_received_at is not None else None
            ),
            "values": dict(self.values),
            "alarms": sorted(self.alarms.values(), key=lambda a: str(a.get("parameter"))),
            "dashboard": dashboard,
        }


class SiteWatcher:
    """The site view (see the module docstring). ``async with SiteWatcher(settings, [site]):``."""

    def __init__(self, settings: SiteViewSettings, default_site: str, instance: str = "") -> None:
        self.settings = settings
        self.sites: tuple[str, ...] = tuple(settings.sites) or (default_site,)
        self._prefix = settings.topic_prefix
        self._client_id = settings.client_id or f"circman5-site-view-{instance or default_site}"
        self._records: dict[tuple[str, str], LineRecord] = {}
        self._states: dict[tuple[str, str], bytes] = {}
        self._link = BrokerLink(
            LinkSettings(
                host=settings.host,
                port=settings.port,
                client_id=self._client_id,
                section="site_view",
                protocol="5" if settings.protocol == "5" else "3.1.1",
                username=settings.username,
                password=settings.password,
                tls=TlsOptions.of(settings.tls) if settings.tls is not None else None,
                clean_start="first",
                reconnect_min_s=1,
                reconnect_max_s=5,
            ),
            what=f"site view (sites {', '.join(self.sites)})",
            log=logger,
        )
        self._link.on_session = self._subscribe
        self.subscribed = asyncio.Event()
        self.messages = 0
        self.malformed = 0
        self._malformed_logged = False

    # -- what the API reads (on the event loop) -------------------------------------------------

    def lines(self) -> list[dict[str, Any]]:
        """Every known line of the watched sites, sorted by site and line."""
        dashboards = self.settings.dashboards
        return [
            record.as_dict(dashboards.get(f"{record.site}/{record.line}"))
            for _, record in sorted(self._records.items())
        ]

    def state_of(self, site: str, line: str) -> bytes | None:
        """The line's last retained state (JSON), for the live view of a line."""
        return self._states.get((site, line))

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def connected(self) -> bool:
        return self._link.connected

    def start(self) -> None:
        self._link.start(self._configure)

    def _configure(self, client: mqtt.Client) -> None:
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message

    async def stop(self) -> None:
        await self._link.stop()

    # -- paho's network thread -------------------------------------------------------------------

    def _subscribe(self, client: mqtt.Client) -> None:
        topics = [
            (f"{self._prefix}/{site}/+/{kind}", 1)
            for site in self.sites
            for kind in ("status", "state", "alarms", "events/threshold")
        ]
        client.subscribe(topics)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._link.call(self.subscribed.set)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        received = time.time()
        parsed = self._decode(message.topic, bytes(message.payload))
        if parsed is None:
            self._link.call(self._count_malformed, message.topic)
            return
        self._link.call(self._apply, parsed, bytes(message.payload), received)

    def _decode(self, topic: str, payload: bytes) -> tuple[str, str, str, Any] | None:
        """``(site, line, kind, data)`` of one message; None when it is not understood."""
        rest = topic[len(self._prefix) + 1 :] if topic.startswith(self._prefix + "/") else ""
        parts = rest.split("/")
        if len(parts) < 3:
            return None
        site, line, kind = parts[0], parts[1], "/".join(parts[2:])
        if kind == "status":
            text = payload.decode("utf-8", "replace").strip()
            return (site, line, kind, text) if text in ("online", "offline", "") else None
        if not payload:  # a cleared retained state or alarm list
            return (site, line, kind, None) if kind in ("state", "alarms") else None
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        if kind == "alarms":
            if not isinstance(data, list) or not all(
                isinstance(a, dict) and isinstance(a.get("parameter"), str) for a in data
            ):
                return None
            return site, line, kind, data[:_MAX_ALARMS]
        if not isinstance(data, dict):
            return None
        if kind == "state":
            timestamp = data.get("timestamp")
            values = {path: value_at(data, path) for path in self.settings.key_values}
            return site, line, kind, (str(timestamp) if timestamp is not None else None, values)
        if kind == "events/threshold":
            details = data.get("details")
            if not isinstance(details, dict) or not isinstance(details.get("parameter"), str):
                return None
            return site, line, kind, data
        return None

    # -- on the event loop -----------------------------------------------------------------------

    def _count_malformed(self, topic: str) -> None:
        self.malformed += 1
        if not self._malformed_logged:
            logger.warning("site view: cannot understand a message on %s (counted)", topic)
            self._malformed_logged = True

    def _record(self, site: str, line: str) -> LineRecord:
        key = (site, line)
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = LineRecord(site, line)
        return record

    def _apply(self, parsed: tuple[str, str, str, Any], raw: bytes, received: float) -> None:
        self.messages += 1
        site, line, kind, data = parsed
        if kind == "status":
            if data == "":
                self._records.pop((site, line), None)
                self._states.pop((site, line), None)
                return
            record = self._record(site, line)
            if data == "online" and record.status != "online":
                record.alarms.clear()  # a restarted twin raises again what is still out of range
            record.status = data
            record.status_received_at = received
        elif kind == "state":
            record = self._record(site, line)
            if data is None:
                self._states.pop((site, line), None)
                return
            record.state_time, record.values = data
            record.state_received_at = received
            self._states[(site, line)] = raw
        elif kind == "alarms":
            record = self._record(site, line)
            record.alarms = {a["parameter"]: dict(a) for a in data or []}
        else:
            record = self._record(site, line)
            details = data["details"]
            parameter = details["parameter"]
            if details.get("cleared"):
                record.alarms.pop(parameter, None)
            elif parameter in record.alarms or len(record.alarms) < _MAX_ALARMS:
                record.alarms[parameter] = {
                    "parameter": parameter,
                    "message": data.get("message", ""),
                    "severity": data.get("severity", "warning"),
                    "since": data.get("timestamp"),
                    "event_id": data.get("event_id"),
                }
