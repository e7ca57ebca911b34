"""``/api/simulate`` and ``/api/scenarios``: what-if runs, Monte Carlo, scenarios (engineers)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, status

from circman5.api.deps import Context, Engineer, FastJSON, Viewer, jsonable, run_heavy
from circman5.api.schemas import (
    CompareRequest,
    MonteCarloRequest,
    ScenarioCreate,
    ScenarioOut,
    ScenarioRunOut,
    ScenarioRunRequest,
    SimulateRequest,
    SimulateResponse,
)
from circman5.errors import InvalidInputError

router = APIRouter(tags=["simulation"])

ScenarioNameParam = Annotated[str, Path(min_length=1, max_length=200)]


def _unprocessable(err: Exception) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err))


@router.post(
    "/simulate",
    response_class=FastJSON,
    responses={200: {"model": SimulateResponse}, 422: {"description": "bad parameters"}},
    summary="Simulate from the current state (the live state is not changed)",
)
async def simulate(
    body: SimulateRequest, _: Engineer, request: Request, context: Context
) -> FastJSON:
    adapter = context.twin_adapter
    try:
        states = await run_heavy(
            request, adapter.run_simulation, steps=body.steps, parameters=body.parameters or None
        )
    except ValueError as err:
        raise _unprocessable(err) from err
    if not states:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="the digital twin is not running"
        )
    parameter_set = adapter.simulation_engine.parameter_set
    return FastJSON({"steps": len(states) - 1, "parameter_set": parameter_set, "states": states})


@router.post(
    "/simulate/monte-carlo",
    response_class=FastJSON,
    summary="Monte Carlo summary: mean and 5/50/95 % bands per path, breach probabilities",
)
async def monte_carlo(
    body: MonteCarloRequest, _: Engineer, request: Request, context: Context
) -> FastJSON:
    adapter = context.twin_adapter
    try:
        summary = await run_heavy(
            request,
            adapter.run_monte_carlo,
            steps=body.steps,
            iterations=body.iterations,
            uncertainty=body.uncertainty,
            parameters=body.parameters or None,
            seed=body.seed,
        )
    except ValueError as err:
        raise _unprocessable(err) from err
    return FastJSON(jsonable(summary))


# -- stored runs -------------------------------------------------------------------------------
@router.get(
    "/simulations",
    response_class=FastJSON,
    summary="The stored simulation runs (scenario runs, processing jobs), newest first",
)
async def list_simulations(
    _: Viewer,
    request: Request,
    context: Context,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> FastJSON:
    runs = await run_heavy(request, context.scenario_manager.list_simulations, limit)
    return FastJSON(jsonable(runs))


@router.get(
    "/simulations/{simulation_id}",
    response_class=FastJSON,
    responses={404: {"description": "no such run"}},
    summary="One stored simulation run with its results",
)
async def get_simulation(
    simulation_id: Annotated[str, Path(min_length=1, max_length=64)],
    _: Viewer,
    request: Request,
    context: Context,
) -> FastJSON:
    run = await run_heavy(request, context.scenario_manager.get_simulation, simulation_id)
    return FastJSON(jsonable(run))


# -- scenarios ---------------------------------------------------------------------------------
@router.get("/scenarios", response_model=list[ScenarioOut], tags=["scenarios"])
async def list_scenarios(_: Viewer, request: Request, context: Context) -> list[dict[str, Any]]:
    manager = context.scenario_manager
    scenarios = await run_heavy(request, manager.list_scenarios)
    return [s.to_dict() for s in scenarios]


@router.post(
    "/scenarios",
    response_model=ScenarioOut,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "the name is taken"}, 422: {"description": "bad input"}},
    tags=["scenarios"],
)
async def create_scenario(
    body: ScenarioCreate, _: Engineer, request: Request, context: Context
) -> dict[str, Any]:
    manager = context.scenario_manager
    if await run_heavy(request, _exists, manager, body.name):
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"a scenario named '{body.name.strip()}' exists"
        )
    try:
        scenario = await run_heavy(
            request, manager.create_scenario, body.name, body.parameters, body.description
        )
    except InvalidInputError as err:
        raise _unprocessable(err) from err
    return scenario.to_dict()


def _exists(manager: Any, name: str) -> bool:
    from circman5.manufacturing.digital_twin.simulation.scenario_manager import (
        ScenarioNotFoundError,
    )

    try:
        manager.get_scenario(name.strip())
    except ScenarioNotFoundError:
        return False
    return True


@router.get(
    "/scenarios/{name}",
    response_model=ScenarioOut,
    responses={404: {"description": "no such scenario"}},
    tags=["scenarios"],
)
async def get_scenario(
    name: ScenarioNameParam, _: Viewer, request: Request, context: Context
) -> dict[str, Any]:
    scenario = await run_heavy(request, context.scenario_manager.get_scenario, name)
    return scenario.to_dict()


@router.delete(
    "/scenarios/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no such scenario"}},
    tags=["scenarios"],
)
async def delete_scenario(
    name: ScenarioNameParam, _: Engineer, request: Request, context: Context
) -> None:
    await run_heavy(request, context.scenario_manager.delete_scenario, name)


@router.post(
    "/scenarios/{name}/run",
    response_class=FastJSON,
    responses={200: {"model": ScenarioRunOut}, 404: {"description": "no such scenario"}},
    tags=["scenarios"],
)
async def run_scenario(
    name: ScenarioNameParam,
    body: ScenarioRunRequest,
    _: Engineer,
    request: Request,
    context: Context,
) -> FastJSON:
    manager = context.scenario_manager
    run = await run_heavy(request, manager.run_scenario, name, steps=body.steps, seed=body.seed)
    return FastJSON(
        {
            "simulation_id": run.simulation_id,
            "scenario": run.scenario.name,
            "steps": run.steps,
            "seed": run.seed,
            "parameter_set": run.parameter_set,
            "duration_s": run.duration,
            "kpis": jsonable(run.kpis),
            "states": run.states if body.include_states else None,
        }
    )


@router.post(
    "/scenarios/compare",
    response_class=FastJSON,
    responses={404: {"description": "a scenario does not exist"}},
    tags=["scenarios"],
    summary="Run scenarios from the same state with the same seed; KPIs side by side",
)
async def compare_scenarios(
    body: CompareRequest, _: Engineer, request: Request, context: Context
) -> FastJSON:
    manager = context.scenario_manager
    comparison = await run_heavy(
        request,
        manager.compare_scenarios,
        body.scenarios,
        metrics=body.metrics,
        steps=body.steps,
        seed=body.seed,
    )
    result = comparison.to_dict()
    # Per-scenario trajectories of the main line values, for the comparison chart.
    result["series"] = {
        name: {
            key: [s.get("production_line", {}).get(key) for s in run.states]
            for key in ("temperature", "energy_consumption", "production_rate", "efficiency")
        }
        for name, run in comparison.runs.items()
    }
    return FastJSON(jsonable(result))
