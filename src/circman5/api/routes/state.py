"""``/api/state``, ``/api/thresholds``, ``/api/alarms``: the twin's state, history and alarms."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status

from circman5.api.deps import Context, FastJSON, Viewer, run_heavy
from circman5.api.schemas import MAX_HISTORY, AlarmOut, ThresholdOut
from circman5.errors import InvalidInputError
from circman5.state_paths import value_at

router = APIRouter(tags=["state"])

STATE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "the twin state", "content": {"application/json": {}}}
}


@router.get(
    "/state",
    response_class=FastJSON,
    responses=STATE_DOC,
    summary="The current twin state",
)
async def current_state(_: Viewer, context: Context) -> FastJSON:
    # The snapshot is immutable: encode it without copying.
    return FastJSON(context.twin_adapter.get_state_snapshot())


@router.get(
    "/state/history",
    response_class=FastJSON,
    summary="Previous states, oldest first (the current state is not part of the history)",
)
async def state_history(
    _: Viewer,
    request: Request,
    context: Context,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = 100,
) -> FastJSON:
    manager = context.twin_adapter.state_manager
    history = await run_heavy(request, manager.history_snapshots, limit)
    return FastJSON({"count": len(history), "states": history})


@router.get(
    "/state/at",
    response_class=FastJSON,
    responses={**STATE_DOC, 404: {"description": "no state at or before that time"}},
    summary="The latest state at or before a time",
)
async def state_at(
    _: Viewer,
    context: Context,
    timestamp: Annotated[
        str,
        Query(
            min_length=1,
            max_length=64,
            description="ISO 8601 time (no offset: local time) or seconds since the epoch",
        ),
    ],
) -> FastJSON:
    when: str | float = timestamp
    with contextlib.suppress(ValueError):
        when = float(timestamp)
    try:
        state = context.twin_adapter.get_state_at_time(when)
    except (InvalidInputError, ValueError, OverflowError) as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from err
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no state at or before {timestamp}")
    return FastJSON(state)


@router.get(
    "/thresholds", response_model=list[ThresholdOut], summary="The configured threshold rules"
)
async def thresholds(_: Viewer, context: Context) -> list[ThresholdOut]:
    rules = context.twin_adapter.get_thresholds()
    return [
        ThresholdOut(path=r.path, low=r.low, high=r.high, severity=r.severity, deadband=r.deadband)
        for r in sorted(rules.values(), key=lambda r: r.path)
    ]


@router.get("/alarms", response_model=list[AlarmOut], summary="The active alarms")
async def alarms(_: Viewer, context: Context) -> list[AlarmOut]:
    adapter = context.twin_adapter
    rules = adapter.get_thresholds()
    state: Any = adapter.get_state_snapshot()
    out: list[AlarmOut] = []
    for path, side in sorted(adapter.get_active_alarms().items()):
        rule = rules.get(path)
        threshold = None
        if rule is not None:
            threshold = rule.high if side == "high" else rule.low
        out.append(
            AlarmOut(
                path=path,
                limit="high" if side == "high" else "low",
                value=value_at(state, path),
                threshold=threshold,
                severity=rule.severity if rule is not None else "warning",
            )
        )
    return out
