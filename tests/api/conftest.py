"""Fixtures of the API tests: a running twin, users of every role, the app and its client.

Everything is real: the DigitalTwin singleton on its embedded defaults, the event manager (its
SQLite store in the test's data directory), argon2 hashing (with small cost parameters, so that
creating a user takes milliseconds), JWTs, the scenario store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from circman5.api.app import create_app
from circman5.api.context import ApiContext
from circman5.api.roles import ROLES
from circman5.api.users import UserStore
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import (
    EventManager,
    event_manager,
)
from circman5.manufacturing.human_interface.adapters.digital_twin_adapter import (
    DigitalTwinAdapter,
)
from circman5.manufacturing.human_interface.core.interface_manager import InterfaceManager

JWT_SECRET = "test-secret-of-at-least-thirty-two-characters"


def password_of(role: str) -> str:
    return f"{role}-password"


@pytest.fixture(autouse=True)
def fresh_hmi_singletons() -> Iterator[None]:
    DigitalTwinAdapter._reset_instance()
    InterfaceManager._reset_instance()
    yield
    DigitalTwinAdapter._reset_instance()
    InterfaceManager._reset_instance()


@pytest.fixture
def fast_hasher() -> PasswordHasher:
    """Real argon2id with small cost parameters (the defaults take ~50 ms per hash)."""
    return PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


@pytest.fixture
def twin() -> DigitalTwin:
    twin = DigitalTwin()
    assert twin.initialize()
    return twin


@pytest.fixture
def events() -> EventManager:
    return event_manager


@pytest.fixture
def users(fast_hasher: PasswordHasher) -> UserStore:
    """A store with one user per role, named after the role."""
    store = UserStore(hasher=fast_hasher)
    for role in ROLES:
        store.add(role, password_of(role), role)
    return store


@pytest.fixture
def make_context(
    twin: DigitalTwin, users: UserStore, events: EventManager
) -> Callable[..., ApiContext]:
    def make(**overrides: Any) -> ApiContext:
        fields: dict[str, Any] = {
            "twin": twin,
            "users": users,
            "events": events,
            "jwt_secret": JWT_SECRET,
        }
        fields.update(overrides)
        return ApiContext(**fields)

    return make


@pytest.fixture
def context(make_context: Callable[..., ApiContext]) -> ApiContext:
    return make_context()


@pytest.fixture
def app(context: ApiContext) -> FastAPI:
    return create_app(context)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def token_of(context: ApiContext) -> Callable[[str], str]:
    def issue(role: str) -> str:
        token, _ = context.tokens.issue(role, role)  # type: ignore[arg-type]
        return token

    return issue


@pytest.fixture
def auth(token_of: Callable[[str], str]) -> Callable[[str], dict[str, str]]:
    """``auth("engineer")``: the Authorization header of the engineer user."""

    def headers(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token_of(role)}"}

    return headers
