"""A small OPC UA server written for the tests (asyncua), independent of the plant simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from asyncua import Server, ua

NS = "urn:circman5:test:recovery"


class SmallOpcUaServer:
    """An asyncua server with one variable ``Temperature``; stops and starts on one port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server: Server | None = None
        self.variable: Any = None

    async def start(self) -> None:
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{self.port}/recovery")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        index = await server.register_namespace(NS)
        line = await server.nodes.objects.add_object(index, "Line")
        self.variable = await line.add_variable(
            ua.NodeId("Temperature", index), "Temperature", 20.0
        )
        await server.start()
        self.server = server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    async def write(self, value: float, source_time: datetime | None = None) -> None:
        """Set the value (with this source timestamp, else the server's clock)."""
        if source_time is None:
            await self.variable.write_value(value)
        else:
            await self.variable.write_value(
                ua.DataValue(ua.Variant(value, ua.VariantType.Double), SourceTimestamp=source_time)
            )


@asynccontextmanager
async def small_opcua_server(port: int) -> AsyncIterator[SmallOpcUaServer]:
    server = SmallOpcUaServer(port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
