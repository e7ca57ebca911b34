"""``/api/jobs``: simulations handed to the processing workers through the PostgreSQL queue.

``POST /api/jobs`` ``{"kind": "scenario.run", "payload": {"scenario": "warm", "steps": 500,
"site": "plant", "line": "line2"}}`` answers ``202 {"job_id": ...}`` (engineers); a processing
worker (``circman5 run --role processing``) takes the job, and ``GET /api/jobs/{id}`` shows its
status (``queued``, ``running``, ``done``, ``failed``), result or error; a scenario run is then
also under ``/api/simulations``. With ``site`` and ``line`` the run starts from that line's last
state (its retained MQTT state topic, through the site view); the user must be allowed to see
the site. Without ``[database] url`` there is no queue: the routes answer 503.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request, status

from circman5.api.context import ApiContext
from circman5.api.deps import Context, Engineer, FastJSON, Viewer, run_heavy
from circman5.api.job_source import JobQueueSource, JobRecord
from circman5.api.roles import site_allowed
from circman5.api.schemas import JOB_KINDS, JobAccepted, JobOut, JobSubmit
from circman5.errors import FeatureUnavailable

router = APIRouter(tags=["jobs"])

#: Kept in the job (the worker starts from it), left out of the API's answers (large).
INITIAL_STATE = "initial_state"


def _queue(context: ApiContext) -> JobQueueSource:
    if context.jobs is None:
        raise FeatureUnavailable(
            "the job queue needs PostgreSQL: set [database] url (and run a processing worker, "
            "circman5 run --role processing)"
        )
    return context.jobs


def _user_sites(context: ApiContext, username: str) -> tuple[str, ...] | None:
    user = context.users.get(username)
    return user.sites if user is not None else ()


def _visible(job: JobRecord, sites: tuple[str, ...] | None) -> bool:
    site = job.payload.get("site")
    return not isinstance(site, str) or site_allowed(sites, site)


def _out(job: JobRecord) -> dict[str, Any]:
    data = job.to_dict()
    data["payload"] = {k: v for k, v in job.payload.items() if k != INITIAL_STATE}
    return data


def _line_state(context: ApiContext, username: str, site: str, line: str) -> dict[str, Any]:
    if not site_allowed(_user_sites(context, username), site):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"you are not allowed to see site '{site}'"
        )
    if context.site_view is None:
        raise FeatureUnavailable(
            "starting from a line's state needs the site view (set [site_view] enabled = true)"
        )
    raw = context.site_view.state_of(site, line)
    if raw is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"no state known for line {site}/{line} (is it publishing on MQTT?)",
        )
    state = orjson.loads(raw)
    if not isinstance(state, dict):
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"the state of {site}/{line} is not a JSON object"
        )
    return state


@router.post(
    "/jobs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    responses={
        403: {"description": "the site is not yours"},
        404: {"description": "no such scenario"},
        409: {"description": "no state known for the line"},
        503: {"description": "no job queue ([database] url)"},
    },
    summary="Queue a simulation for the processing workers",
)
async def submit_job(
    body: JobSubmit, principal: Engineer, request: Request, context: Context
) -> dict[str, Any]:
    queue = _queue(context)
    payload = body.payload.model_dump(exclude_none=True)
    if body.kind == "scenario.run":
        # refused at the door, not by a worker later: the scenario must exist
        await run_heavy(request, context.scenario_manager.get_scenario, payload["scenario"])
    if "site" in payload:
        payload[INITIAL_STATE] = _line_state(
            context, principal.username, payload["site"], payload["line"]
        )
    job_id = await asyncio.to_thread(queue.submit, body.kind, payload)
    return {"job_id": job_id, "kind": body.kind, "status": "queued"}


@router.get("/jobs", response_model=list[JobOut], summary="The newest jobs, newest first")
async def list_jobs(
    principal: Viewer,
    context: Context,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    kind: Annotated[str | None, Query(max_length=64)] = None,
) -> list[dict[str, Any]]:
    queue = _queue(context)
    if kind is not None and kind not in JOB_KINDS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"unknown job kind '{kind}'; known: {', '.join(JOB_KINDS)}",
        )
    jobs = await asyncio.to_thread(queue.recent, limit, kind)
    sites = _user_sites(context, principal.username)
    return [_out(job) for job in jobs if _visible(job, sites)]


@router.get(
    "/jobs/{job_id}",
    response_class=FastJSON,
    responses={200: {"model": JobOut}, 404: {"description": "no such job"}},
    summary="One job: status, attempts, result or error",
)
async def get_job(
    job_id: Annotated[int, Path(ge=1, le=2**62)], principal: Viewer, context: Context
) -> FastJSON:
    queue = _queue(context)
    job = await asyncio.to_thread(queue.get, job_id)
    if job is None or not _visible(job, _user_sites(context, principal.username)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job {job_id}")
    return FastJSON(_out(job))
