"""``/api/calibration`` and ``/api/model``: the twin learning the connected line.

* ``POST /api/calibration`` (engineers): fit the process model to recorded history (in a worker
  thread) and, unless ``save`` is false, save it as the next active calibration; answers the
  per-path report.
* ``GET /api/calibration`` (viewers): the active calibration (``{"active": null}`` without one).
* ``POST /api/model/train`` (engineers): train the manufacturing model on the line's recorded
  batches (synthetic data when there are too few; the answer says so).
* ``GET /api/model/info`` (viewers): the model's features, targets and provenance.

History sources: ``twin`` (the twin's state history in memory, always there), ``embedded`` and
``influxdb`` (the service's time-series store, when the service provides a reader).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from circman5.api.context import ApiContext
from circman5.api.deps import Context, Engineer, FastJSON, Viewer, jsonable, run_heavy
from circman5.errors import InvalidInputError

router = APIRouter(tags=["learning"])

Source = Literal["twin", "embedded", "influxdb"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HistoryWindow(_In):
    source: Source = "twin"
    #: The last N seconds (default: everything the source holds).
    last_s: Annotated[float, Field(gt=0, le=10 * 365 * 86400, allow_inf_nan=False)] | None = None
    start: Annotated[str, Field(max_length=64)] | None = None
    end: Annotated[str, Field(max_length=64)] | None = None


class CalibrateRequest(HistoryWindow):
    min_r2: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.8
    step_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] | None = None
    save: bool = True


def _unprocessable(err: Exception) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err))


def _read(context: ApiContext, body: HistoryWindow, paths: list[str]) -> dict[str, Any]:
    """The recorded history of ``paths`` as ``{path: (times_s, values)}`` (blocking)."""
    from circman5.manufacturing.digital_twin.simulation.calibration_run import Window

    window = Window.of(body.start, body.end, body.last_s)
    if body.source == "twin":
        from circman5.manufacturing.optimization.line_history import arrays_from_states

        twin = context.the_twin
        states = [*twin.get_state_history(), twin.get_current_state()]
        arrays = arrays_from_states(states, paths)
        if window.start_s is None and window.end_s is None:
            return dict(arrays)
        low = window.start_s if window.start_s is not None else float("-inf")
        high = window.end_s if window.end_s is not None else float("inf")
        clipped: dict[str, Any] = {}
        for path, (t, v) in arrays.items():
            keep = (t >= low) & (t <= high)
            clipped[path] = (t[keep], v[keep])
        return clipped
    reader = context.history_reader
    if reader is None:
        raise InvalidInputError(f"the service has no '{body.source}' history to read")
    return dict(reader(body.source, window.start_s, window.end_s, paths))


def _calibrate(context: ApiContext, body: CalibrateRequest) -> dict[str, Any]:
    from circman5 import paths
    from circman5.manufacturing.digital_twin.simulation.calibration import (
        CalibrationOptions,
        format_report,
    )
    from circman5.manufacturing.digital_twin.simulation.calibration_run import (
        WANTED_PATHS,
        Window,
        histories,
        run_calibration,
    )

    window = Window.of(body.start, body.end, body.last_s)
    wanted = [*WANTED_PATHS, "production_line.status"]
    arrays = _read(context, body, wanted)
    options = CalibrationOptions(
        min_r2=body.min_r2, step_s=body.step_s, start_s=window.start_s, end_s=window.end_s
    )
    data_dir = context.data_dir if context.data_dir is not None else paths.data_dir()
    calibration = run_calibration(histories(arrays), body.source, options, data_dir, save=body.save)
    result = calibration.to_dict()
    result["saved"] = body.save
    result["report"] = format_report(calibration)
    return result


@router.post(
    "/calibration",
    response_class=FastJSON,
    responses={422: {"description": "bad window or source"}},
    summary="Calibrate the process model on recorded history (and make it active)",
)
async def calibrate(
    body: CalibrateRequest, _: Engineer, request: Request, context: Context
) -> FastJSON:
    try:
        result = await run_heavy(request, _calibrate, context, body)
    except InvalidInputError as err:
        raise _unprocessable(err) from err
    return FastJSON(jsonable(result))


@router.get("/calibration", response_class=FastJSON, summary="The active calibration")
async def active_calibration(_: Viewer, request: Request) -> FastJSON:
    from circman5.manufacturing.digital_twin.simulation.calibration import (
        load_active_calibration,
    )

    calibration = await run_heavy(request, load_active_calibration)
    if calibration is None:
        return FastJSON({"active": None, "parameter_set": "built-in defaults"})
    return FastJSON(jsonable({"active": calibration.to_dict(), "parameter_set": calibration.label}))


def _train(context: ApiContext, body: HistoryWindow) -> dict[str, Any]:
    from circman5.manufacturing.optimization.line_history import BATCH_END_PATH, HISTORY_PATHS

    arrays = _read(context, body, [BATCH_END_PATH, *HISTORY_PATHS.values()])
    ai = context.ai()
    provenance = ai.train_model_from_line_history(arrays, body.source)
    return {"provenance": provenance, **ai.model_info()}


@router.post(
    "/model/train",
    response_class=FastJSON,
    summary="Train the manufacturing model on the line's recorded batches",
)
async def train_model(
    body: HistoryWindow, _: Engineer, request: Request, context: Context
) -> FastJSON:
    try:
        result = await run_heavy(request, _train, context, body)
    except InvalidInputError as err:
        raise _unprocessable(err) from err
    return FastJSON(jsonable(result))


@router.get(
    "/model/info",
    response_class=FastJSON,
    summary="The manufacturing model: features, targets, where its training data came from",
)
async def model_info(_: Viewer, request: Request, context: Context) -> FastJSON:
    ai = await run_heavy(request, context.ai)
    info = await run_heavy(request, ai.model_info)
    return FastJSON(jsonable(info))
