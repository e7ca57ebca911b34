"""A publisher process for the last-will test: ``mqtt_publisher_process.py PORT PREFIX``.

Connects, publishes its state, prints ``connected`` and runs until it is killed.
"""

from __future__ import annotations

import asyncio
import sys

from circman5.sinks.config import MqttOutputSettings
from circman5.sinks.mqtt_events import MqttEventPublisher


async def main(port: int, prefix: str) -> None:
    settings = MqttOutputSettings(
        port=port, topic_prefix=prefix, site="s1", line="l1", state_interval_s=0.05
    )
    publisher = MqttEventPublisher(settings)
    connected = asyncio.Event()
    publisher.link.add_connect_listener(connected.set)
    async with publisher:
        publisher.set_state({"production_line": {"temperature": 21.0}})
        await connected.wait()
        print("connected", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
