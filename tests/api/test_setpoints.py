"""Write-back: setpoint commands through the OPC UA connector to the simulated PLC.

The chain is real: SetpointService -> OpcUaConnector -> the simulator's OPC UA server -> plant
model -> OPC UA subscription -> SynchronizationEngine -> DigitalTwin (the confirmation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asyncua import ua

from circman5.api.app import create_app
from circman5.api.context import ApiContext
from circman5.api.setpoints import (
    SetpointConfirmTimeout,
    SetpointLimit,
    SetpointRejected,
    SetpointService,
    SetpointUnavailable,
)
from circman5.connectors.opcua.client import OpcUaConnector
from circman5.errors import InvalidInputError
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import EventManager
from circman5.manufacturing.digital_twin.event_notification.event_types import EventCategory
from tests.api.plant_stack import CONNECTOR, SETPOINT_LIMITS, PlantStack, plant_stack

TARGET = "production_line.target_temperature"


def service_for(
    stack: PlantStack, twin: DigitalTwin, events: EventManager, **kwargs: Any
) -> SetpointService:
    return SetpointService(
        SETPOINT_LIMITS,
        {CONNECTOR: stack.connector},
        twin.get_current_state,
        events.publish,
        **kwargs,
    )


def test_limits_check_kind_and_range() -> None:
    limit = SetpointLimit("a.b", 0.0, 10.0, "dev", unit="bar")
    assert limit.check(5) == 5.0
    for bad, reason in ((11, "above the maximum 10.0 bar"), (-1, "below"), (True, "number")):
        with pytest.raises(SetpointRejected, match=reason):
            limit.check(bad)
    assert SetpointLimit("a.n", 0, 5, "dev", kind="int").check(3.0) == 3
    with pytest.raises(SetpointRejected, match="integer"):
        SetpointLimit("a.n", 0, 5, "dev", kind="int").check(2.5)
    flag = SetpointLimit("a.f", None, None, "dev", kind="bool")
    assert flag.check(True) is True
    with pytest.raises(SetpointRejected):
        flag.check(1)
    with pytest.raises(InvalidInputError):
        SetpointLimit("a.b", 5.0, 1.0, "dev")


async def test_setpoint_reaches_the_plc_and_is_confirmed_and_audited(
    tmp_path: Path,
    twin: DigitalTwin,
    events: EventManager,
    make_context: Callable[..., ApiContext],
    token_of: Callable[[str], str],
) -> None:
    async with plant_stack(tmp_path / "sim", twin) as stack:
        service = service_for(stack, twin, events)
        old = service.current_values()[TARGET]
        result = await service.write(TARGET, 26.5, "engineer")
        assert result.confirmed and result.confirmed_by == "twin"
        assert result.old_value == old
        assert stack.bench.plant.setpoints.target_temperature == 26.5
        assert twin.get_current_state()["production_line"]["target_temperature"] == 26.5
        audit = events.get_events(category=EventCategory.USER)[0]
        assert audit.event_id == result.event_id
        assert audit.details["user_id"] == "engineer"
        assert audit.details["action"] == "write_setpoint"
        details = audit.details["action_details"]
        assert (details["path"], details["old_value"], details["new_value"]) == (TARGET, old, 26.5)

        # out of limits: refused with the reason, nothing written
        with pytest.raises(SetpointRejected, match=r"above the maximum 32\.0"):
            await service.write(TARGET, 33.0, "engineer")
        assert stack.bench.plant.setpoints.target_temperature == 26.5
        rejected = events.get_events(category=EventCategory.USER)[0]
        assert rejected.details["action"] == "setpoint_rejected"
        with pytest.raises(SetpointRejected) as unknown:
            await service.write("production_line.temperature", 20.0, "engineer")
        assert unknown.value.status == 404

        # a limit wider than the PLC's: the device refuses, the API says so
        wide = SetpointService(
            [SetpointLimit(TARGET, 0.0, 100.0, CONNECTOR)],
            {CONNECTOR: stack.connector},
            twin.get_current_state,
        )
        with pytest.raises(SetpointUnavailable, match="BadOutOfRange") as refused:
            await wide.write(TARGET, 40.0, "engineer")
        assert refused.value.status == 502
        missing = SetpointService(SETPOINT_LIMITS, {}, twin.get_current_state)
        with pytest.raises(SetpointUnavailable) as down:
            await missing.write(TARGET, 25.0, "engineer")
        assert down.value.status == 503

        # the same through the API
        app = create_app(make_context(setpoints=service))
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token_of('engineer')}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://hmi") as client:
            listed = (await client.get("/api/setpoints", headers=headers)).json()
            assert {s["path"]: s["value"] for s in listed}[TARGET] == 26.5
            ok = await client.post(
                "/api/setpoints", json={"path": TARGET, "value": 24.0}, headers=headers
            )
            assert ok.status_code == 200, ok.text
            assert ok.json()["confirmed"] is True
            assert ok.json()["old_value"] == 26.5
            assert stack.bench.plant.setpoints.target_temperature == 24.0
            too_hot = await client.post(
                "/api/setpoints", json={"path": TARGET, "value": 90.0}, headers=headers
            )
            assert too_hot.status_code == 422
            assert "above the maximum" in too_hot.json()["detail"]
            assert stack.bench.plant.setpoints.target_temperature == 24.0
            nope = await client.post(
                "/api/setpoints",
                json={"path": "production_line.speed", "value": 1.0},
                headers=headers,
            )
            assert nope.status_code == 404

            # a manager applies an optimization: validated by the AI integration, then
            # written through to the PLC by the same service
            await service.write(TARGET, 30.0, "engineer")
            manager = {"Authorization": f"Bearer {token_of('manager')}"}
            applied = await client.post(
                "/api/optimize/apply",
                json={"optimized_params": {"temperature": 23.0}},
                headers=manager,
            )
            assert applied.status_code == 200, applied.text
            written = applied.json()["setpoints_written"]
            assert [(w["path"], w["value"], w["confirmed"]) for w in written] == [
                (TARGET, 23.0, True)
            ]
            assert stack.bench.plant.setpoints.target_temperature == 23.0


class ReadBackOpcUaConnector(OpcUaConnector):
    """The real OPC UA connector plus a ``read`` of a tag's current value from the server."""

    async def read(self, path: str) -> Any:
        tag = self._by_target[path]
        assert self._client is not None and tag.nodeid is not None
        value = await self._client.get_node(tag.nodeid).read_value()
        return value.Value if isinstance(value, ua.Variant) else value


async def test_confirmation_by_read_back_and_timeout_without_the_twin(
    tmp_path: Path, twin: DigitalTwin, events: EventManager
) -> None:
    async with plant_stack(tmp_path / "sim", twin, synchronize=False) as stack:
        # Without the sync engine the twin never sees the write: unconfirmed after the timeout.
        blind = service_for(stack, twin, events, confirm_timeout_s=0.3)
        with pytest.raises(SetpointConfirmTimeout) as timeout:
            await blind.write(TARGET, 27.0, "engineer")
        assert timeout.value.status == 504
        assert timeout.value.result.confirmed is False
        assert stack.bench.plant.setpoints.target_temperature == 27.0  # it was written
        audit = events.get_events(category=EventCategory.USER)[0]
        assert audit.details["action_details"]["confirmed"] is False

        async with ReadBackOpcUaConnector(stack.connector.settings) as reader:
            async with asyncio.timeout(20.0):
                await reader.wait_connected()
            service = SetpointService(SETPOINT_LIMITS, {CONNECTOR: reader}, twin.get_current_state)
            result = await service.write(TARGET, 23.5, "engineer")
            assert result.confirmed and result.confirmed_by == "read"
            assert result.readback == pytest.approx(23.5)
            assert stack.bench.plant.setpoints.target_temperature == 23.5
