"""A small OPC UA server written for the tests (asyncua), independent of the plant simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager

NS = "urn:circman5:test:recovery"


class _OnlyThese(UserManager):
    """Accepts only the given user names and passwords (no anonymous sessions)."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


class SmallOpcUaServer:
    """An asyncua server with one variable ``Temperature``; stops and starts on one port.

    ``users``: accept only these logins (user name -> password) instead of anonymous sessions.
    """

    def __init__(self, port: int, users: dict[str, str] | None = None) -> None:
        self.port = port
        self.users = users
        self.server: Server | None = None
        self.variable: Any = None

    async def start(self) -> None:
        server = Server(user_manager=_OnlyThese(self.users)) if self.users else Server()
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
async def small_opcua_server(
    port: int, users: dict[str, str] | None = None
) -> AsyncIterator[SmallOpcUaServer]:
    server = SmallOpcUaServer(port, users)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
