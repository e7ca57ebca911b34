"""The active threshold alarms of a line, kept from the events that raise and clear them.

:class:`ActiveAlarms` reads event dicts (``to_dict()`` of the twin's events): a threshold event
raises an alarm for its ``details.parameter``, one with ``details.cleared`` clears it. The MQTT
output publishes the list retained on ``{base}/alarms``. Thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["ActiveAlarms"]


class ActiveAlarms:
    """The alarms raised and not yet cleared, with a version that changes with them."""

    def __init__(self) -> None:
        self._alarms: dict[str, dict[str, object]] = {}
        self._lock = threading.Lock()
        self.version = 0

    def track(self, data: Mapping[str, Any]) -> bool:
        """Apply one threshold event; True when the list changed."""
        details = data.get("details")
        if not isinstance(details, Mapping) or not isinstance(details.get("parameter"), str):
            return False
        parameter = details["parameter"]
        with self._lock:
            if details.get("cleared"):
                if self._alarms.pop(parameter, None) is None:
                    return False
            else:
                self._alarms[parameter] = {
                    "parameter": parameter,
                    "message": str(data.get("message", "")),
                    "severity": str(data.get("severity", "warning")),
                    "since": data.get("timestamp"),
                    "event_id": data.get("event_id"),
                }
            self.version += 1
        return True

    def snapshot(self) -> tuple[int, list[dict[str, object]]]:
        """``(version, alarms sorted by parameter)``."""
        with self._lock:
            alarms = sorted(self._alarms.values(), key=lambda a: str(a["parameter"]))
            return self.version, alarms
