"""``/api/optimize``, ``/api/predict``, ``/api/lca``: the AI and LCA integrations.

Engineers compute (optimize, predict, LCA analysis); applying optimized parameters takes a
manager. The integrations are created on first use; when one is not installed the routes answer
503.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status

from circman5.api.deps import Context, Engineer, FastJSON, Manager, Viewer, jsonable, run_heavy
from circman5.api.schemas import ApplyRequest, LcaRequest, OptimizeRequest, PredictRequest
from circman5.errors import CommandRejected
from circman5.manufacturing.digital_twin.event_notification.event_types import UserActionEvent

logger = logging.getLogger(__name__)

router = APIRouter(tags=["analysis"])


def _unprocessable(err: Exception) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err))


def _constraints(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, list):
            low, high = value
            if low > high:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    detail=f"constraint {key}: min {low} > max {high}",
                )
            out[key] = (low, high)
        else:
            out[key] = value
    return out


@router.post(
    "/optimize",
    response_class=FastJSON,
    responses={503: {"description": "the AI integration is not available"}},
    summary="Optimize process parameters (not applied)",
)
async def optimize(
    body: OptimizeRequest, _: Engineer, request: Request, context: Context
) -> FastJSON:
    constraints = _constraints(body.constraints)
    ai = await run_heavy(request, context.ai)
    try:
        result = await run_heavy(
            request,
            ai.optimize_parameters,
            current_params=body.current_params,
            constraints=constraints,
        )
    except ValueError as err:
        raise _unprocessable(err) from err
    if result is None:
        raise _unprocessable(ValueError("the optimization found no solution"))
    provenance = getattr(getattr(ai, "model", None), "provenance", None)
    return FastJSON({"optimized_params": jsonable(result), "model": jsonable(provenance)})


@router.post(
    "/optimize/apply",
    response_class=FastJSON,
    summary="Apply optimized parameters (managers)",
)
async def apply_optimization(
    body: ApplyRequest, principal: Manager, request: Request, context: Context
) -> FastJSON:
    ai = await run_heavy(request, context.ai)
    try:
        result = await run_heavy(
            request,
            ai.apply_optimized_parameters,
            body.optimized_params,
            simulation_steps=body.simulation_steps,
        )
    except ValueError as err:
        raise _unprocessable(err) from err
    applied = bool(result) if not isinstance(result, dict) else bool(result.get("success", True))
    reason = _last_reason(ai) if not applied else None
    context.event_manager.publish(
        UserActionEvent(
            user_id=principal.username,
            action="apply_optimization",
            action_details={
                "optimized_params": dict(body.optimized_params),
                "simulation_steps": body.simulation_steps,
                "applied": applied,
                "reason": reason,
            },
            source="api",
        )
    )
    if not applied:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"not applied: {reason or 'the optimized parameters were refused'}",
        )
    written, errors = await _write_through(context, ai, body.optimized_params, principal.username)
    if errors:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY,
            detail="applied to the twin, but writing to the devices failed: " + "; ".join(errors),
        )
    return FastJSON({"applied": True, "setpoints_written": written})


def _last_reason(ai: Any) -> str | None:
    history = getattr(ai, "optimization_history", None)
    if history:
        reason = history[-1].get("reason")
        return str(reason) if reason else None
    return None


async def _write_through(
    context: Any, ai: Any, params: dict[str, float], user: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """Write the applied setpoints to the devices that own them (through the setpoint
    service, with its limits, read-back and audit); setpoints without a device are twin-only."""
    service = context.setpoints
    mapping = getattr(getattr(ai, "settings", None), "SETPOINT_MAPPING", None) or {}
    if service is None:
        return [], []
    limits = service.limits
    written: list[dict[str, Any]] = []
    errors: list[str] = []
    for name, field in mapping.items():
        path = f"production_line.{field}"
        if name not in params or path not in limits:
            continue
        try:
            result = await service.write(path, params[name], user)
        except CommandRejected as err:
            errors.append(str(err))
        else:
            written.append(result.to_dict())
    return written, errors


@router.post("/predict", response_class=FastJSON, summary="Predict outcomes for parameters")
async def predict(
    body: PredictRequest, _: Engineer, request: Request, context: Context
) -> FastJSON:
    ai = await run_heavy(request, context.ai)
    try:
        result = await run_heavy(request, ai.predict_outcomes, body.parameters)
    except ValueError as err:
        raise _unprocessable(err) from err
    return FastJSON(jsonable(result))


@router.get("/optimize/report", response_class=FastJSON, summary="The optimization report")
async def optimization_report(_: Viewer, request: Request, context: Context) -> FastJSON:
    ai = await run_heavy(request, context.ai)
    report = await run_heavy(request, ai.generate_optimization_report)
    return FastJSON(jsonable(report))


@router.post(
    "/lca/analysis",
    response_class=FastJSON,
    responses={503: {"description": "the LCA integration is not available"}},
    summary="Life-cycle assessment of the current state",
)
async def lca_analysis(
    body: LcaRequest, _: Engineer, request: Request, context: Context
) -> FastJSON:
    lca = await run_heavy(request, context.lca)
    try:
        impact = await run_heavy(
            request,
            lca.perform_lca_analysis,
            batch_id=body.batch_id,
            save_results=body.save_results,
            energy_kwh=body.energy_kwh,
            lifetime_years=body.lifetime_years,
            transport_distance=body.transport_distance,
            grid_region=body.grid_region,
        )
    except ValueError as err:
        raise _unprocessable(err) from err
    if impact is None:
        raise _unprocessable(ValueError("the LCA analysis produced no result"))
    return FastJSON(jsonable(impact))


@router.get("/lca/report", response_class=FastJSON, summary="The LCA report of recent analyses")
async def lca_report(
    _: Viewer,
    request: Request,
    context: Context,
    num_results: Annotated[int, Query(ge=1, le=50)] = 5,
) -> FastJSON:
    lca = await run_heavy(request, context.lca)
    report = await run_heavy(request, lca.generate_lca_report, num_results)
    return FastJSON(jsonable(report))
