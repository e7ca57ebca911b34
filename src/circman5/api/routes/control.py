"""``/api/setpoints``, ``/api/commands``, ``/api/connectors``, ``/api/diagnostics``."""

from __future__ import annotations

import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status

from circman5.api.deps import Context, CurrentUser, Engineer, FastJSON, Viewer, jsonable, run_heavy
from circman5.api.roles import check_permission
from circman5.api.schemas import (
    CommandRequest,
    DiagnosticsOut,
    SetpointOut,
    SetpointResultOut,
    SetpointWrite,
)
from circman5.api.setpoints import SetpointService
from circman5.manufacturing.human_interface.diagnostics import (
    overall_status,
    run_system_diagnostics,
)

router = APIRouter(tags=["control"])


def _service(context: Any) -> SetpointService:
    service: SetpointService | None = context.setpoints
    if service is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="no writable setpoints are configured"
        )
    return service


@router.get("/setpoints", response_model=list[SetpointOut], summary="Writable setpoints")
async def list_setpoints(_: Viewer, context: Context) -> list[SetpointOut]:
    service = context.setpoints
    if service is None:
        return []
    values = service.current_values()
    return [
        SetpointOut(**limit.to_dict(), value=values.get(path))
        for path, limit in sorted(service.limits.items())
    ]


@router.post(
    "/setpoints",
    response_model=SetpointResultOut,
    responses={
        404: {"description": "not a writable setpoint"},
        422: {"description": "out of limits or wrong type: nothing written"},
        502: {"description": "the device refused the write"},
        503: {"description": "the connector is not available"},
        504: {"description": "written but not confirmed in time"},
    },
    summary="Write a setpoint: checked against its limits, written, read back, audited",
)
async def write_setpoint(
    body: SetpointWrite, principal: Engineer, context: Context
) -> dict[str, Any]:
    result = await _service(context).write(body.path, body.value, principal.username)
    return result.to_dict()


@router.post(
    "/commands",
    response_class=FastJSON,
    responses={
        400: {"description": "unknown command"},
        403: {"description": "the command needs a higher role"},
    },
    summary="Run an HMI command through the interface manager (technical manual 9.4)",
)
async def command(
    body: CommandRequest, principal: CurrentUser, request: Request, context: Context
) -> FastJSON:
    manager = context.interface_manager
    required = manager.required_role(body.command)
    if required is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"unknown command '{body.command}'; commands: "
            + ", ".join(sorted(manager.command_roles)),
        )
    if not check_permission(principal.role, required):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"insufficient permissions: '{body.command}' requires role '{required}'",
        )
    params = {**body.params, "user": principal.username}
    try:
        result = await run_heavy(request, manager.handle_command, body.command, params)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from err
    if not result.get("success", False):
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=str(result.get("error", "the command failed"))
        )
    return FastJSON(jsonable(result))


@router.get("/commands", summary="The HMI commands and the role each needs")
async def list_commands(_: Viewer, context: Context) -> dict[str, str]:
    return dict(sorted(context.interface_manager.command_roles.items()))


@router.get("/connectors", response_class=FastJSON, summary="Status of every connector")
async def connectors(_: Viewer, context: Context) -> FastJSON:
    return FastJSON(jsonable(context.connector_status()))


@router.get(
    "/diagnostics",
    response_model=DiagnosticsOut,
    summary="System diagnostics (technical manual 14.1)",
)
async def diagnostics(_: Engineer, request: Request, context: Context) -> DiagnosticsOut:
    broadcaster = request.app.state.broadcaster

    def connectors_check() -> dict[str, Any]:
        statuses = context.connector_status()
        down = [s.get("name") for s in statuses if not s.get("connected", False)]
        return {
            "status": "warning" if down else "ok",
            "details": {"connectors": len(statuses), "disconnected": down},
        }

    def users_check() -> dict[str, Any]:
        users = context.users.list_users()
        admins = sum(1 for u in users if u.role == "admin")
        return {
            "status": "ok" if admins else "warning",
            "details": {"users": len(users), "admins": admins},
        }

    def live_push_check() -> dict[str, Any]:
        return {
            "status": "ok",
            "details": {
                "clients": broadcaster.client_count,
                "states_sent": broadcaster.states_sent,
                "events_sent": broadcaster.events_sent,
                "events_dropped": broadcaster.events_dropped,
            },
        }

    extra = {
        "connectors": connectors_check,
        "users": users_check,
        "live_push": live_push_check,
        **context.extra_diagnostics,
    }
    results = await run_heavy(
        request,
        run_system_diagnostics,
        twin=context.the_twin,
        events=context.event_manager,
        interface=context.interface_manager,
        extra_checks=extra,
    )
    return DiagnosticsOut(
        status=overall_status(results),
        checked_at=datetime.datetime.now(datetime.UTC).isoformat(),
        components=jsonable(results),
    )
