"""``/api/events``: query stored events; acknowledge one (operators and up)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, status

from circman5.api.deps import Context, FastJSON, Operator, Viewer, run_heavy
from circman5.api.schemas import (
    MAX_EVENTS,
    AcknowledgeResponse,
    EventCategoryName,
    EventOut,
    EventSeverityName,
)
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    EventCategory,
    EventSeverity,
)
from circman5.manufacturing.human_interface.components.alert_panel import AlertPanel

router = APIRouter(prefix="/events", tags=["events"])


@router.get(
    "",
    response_class=FastJSON,
    responses={200: {"model": list[EventOut]}},
    summary="Stored events, newest first",
)
async def list_events(
    _: Viewer,
    request: Request,
    context: Context,
    category: EventCategoryName | None = None,
    severity: EventSeverityName | None = None,
    acknowledged: bool | None = Query(
        default=None, description="only acknowledged (true) or unacknowledged (false) events"
    ),
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 100,
) -> FastJSON:
    cat = EventCategory(category) if category is not None else None
    sev = EventSeverity(severity) if severity is not None else None
    fetch = MAX_EVENTS if acknowledged is not None else limit
    events = await run_heavy(
        request, context.event_manager.get_events, category=cat, severity=sev, limit=fetch
    )
    if acknowledged is not None:
        events = [e for e in events if e.acknowledged == acknowledged][:limit]
    return FastJSON([e.to_dict() for e in events])


@router.get(
    "/alerts",
    response_class=FastJSON,
    responses={200: {"model": list[EventOut]}},
    summary="Alerts (warning, error and critical events), newest first",
)
async def list_alerts(
    _: Viewer,
    request: Request,
    context: Context,
    acknowledged: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 100,
) -> FastJSON:
    panel = AlertPanel(context.event_manager)
    alerts = await run_heavy(request, panel.get_alerts, limit=limit, acknowledged=acknowledged)
    return FastJSON(alerts)


@router.post(
    "/{event_id}/acknowledge",
    response_model=AcknowledgeResponse,
    responses={404: {"description": "no such event"}},
    summary="Acknowledge an event (recorded as a user action)",
)
async def acknowledge(
    principal: Operator,
    request: Request,
    context: Context,
    event_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
) -> AcknowledgeResponse:
    panel = AlertPanel(context.event_manager)
    found = await run_heavy(request, panel.acknowledge_alert, event_id, principal.username)
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no event {event_id}")
    return AcknowledgeResponse(event_id=event_id, acknowledged=True)
