"""One line's MQTT outputs as a child process: ``line_process.py PORT SITE LINE TEMPERATURE``.

Publishes (through the service's own :class:`MqttEventPublisher`) the retained status and a twin
state with ``production_line.temperature`` = TEMPERATURE; above 27 it also publishes a threshold
event, like the twin would. Prints ``connected`` and runs until killed.
"""

from __future__ import annotations

import asyncio
import sys

from circman5.manufacturing.digital_twin.event_notification.event_types import ThresholdEvent
from circman5.sinks.config import MqttOutputSettings
from circman5.sinks.mqtt_events import MqttEventPublisher


async def main(port: int, site: str, line: str, temperature: float) -> None:
    settings = MqttOutputSettings(port=port, site=site, line=line, state_interval_s=0.05)
    publisher = MqttEventPublisher(settings)
    connected = asyncio.Event()
    publisher.link.add_connect_listener(connected.set)
    async with publisher:
        publisher.set_state(
            {
                "timestamp": "2026-01-01T00:00:00+00:00",
                "production_line": {"temperature": temperature, "status": "running"},
            }
        )
        await connected.wait()
        if temperature > 27.0:
            publisher.on_event(ThresholdEvent("production_line.temperature", 27.0, temperature))
            await publisher.outbox.drain()
        print("connected", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])))
