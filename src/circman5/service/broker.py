"""The demo's MQTT broker: mosquitto when it is installed, else an embedded amqtt broker.

amqtt (pure Python, on PyPI) speaks MQTT 3.1.1 only; :attr:`DemoBroker.protocol` says which
protocol version clients should use.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from simulators.external import Mosquitto, free_port

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoBroker:
    kind: Literal["mosquitto", "amqtt"]
    port: int
    protocol: Literal["5", "3.1.1"]


def mosquitto_available() -> bool:
    return shutil.which("mosquitto") is not None or Path("/usr/sbin/mosquitto").exists()


@contextlib.asynccontextmanager
async def demo_broker(workdir: Path, prefer_mosquitto: bool = True) -> AsyncIterator[DemoBroker]:
    """Start a broker on a free loopback port for as long as the context lasts."""
    if prefer_mosquitto and mosquitto_available():
        server = Mosquitto(workdir / "mosquitto")
        server.start()
        try:
            yield DemoBroker("mosquitto", server.port, "5")
        finally:
            server.stop()
        return
    from amqtt.broker import Broker

    port = free_port()
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            # anonymous clients on loopback, no $SYS topics, no packet logging
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    logger.info("mosquitto is not installed: using the embedded amqtt broker (MQTT 3.1.1)")
    try:
        yield DemoBroker("amqtt", port, "3.1.1")
    finally:
        await broker.shutdown()
