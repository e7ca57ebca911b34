"""``/api/forecast``: per monitored path, the forecast over the horizon with its band."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from circman5.api.deps import Context, FastJSON, Viewer, run_heavy

router = APIRouter(tags=["forecast"])


@router.get(
    "/forecast",
    response_class=FastJSON,
    summary="Per monitored path: predicted values over the horizon with the 90% band, the "
    "limits, the breach probability and the forecaster that decides",
)
async def forecast(_: Viewer, request: Request, context: Context) -> FastJSON:
    checker = context.twin_adapter.digital_twin.forecast_checker
    if checker is None:
        return FastJSON({"enabled": False, "paths": []})

    def rows() -> list[dict[str, Any]]:
        return checker.path_forecasts()

    paths = await run_heavy(request, rows)
    return FastJSON(
        {
            "enabled": True,
            "horizon_s": checker.config.statistical.horizon_s,
            "band": "90%",
            "model_paths": sorted(checker.model_paths),
            "paths": paths,
        }
    )
