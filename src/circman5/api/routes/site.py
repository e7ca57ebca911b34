"""``/api/site``: every line of the site(s), from the lines' retained MQTT topics.

A user limited to some sites (``sites`` in the user file) sees only those; asking for another
site answers 403. Without ``[site_view] enabled = true`` the routes answer 503.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, status

from circman5.api.context import ApiContext
from circman5.api.deps import Context, FastJSON, Viewer
from circman5.api.roles import site_allowed
from circman5.api.site_source import SiteSource
from circman5.errors import FeatureUnavailable

router = APIRouter(tags=["site"])

Segment = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]


def _source(context: ApiContext) -> SiteSource:
    if context.site_view is None:
        raise FeatureUnavailable("the site view is not configured (set [site_view] enabled = true)")
    return context.site_view


def _user_sites(context: ApiContext, username: str) -> tuple[str, ...] | None:
    user = context.users.get(username)
    return user.sites if user is not None else ()


def _check_site(context: ApiContext, username: str, site: str) -> None:
    if not site_allowed(_user_sites(context, username), site):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"you are not allowed to see site '{site}'"
        )


@router.get(
    "/site",
    response_class=FastJSON,
    summary="Every line of the sites you may see: online/offline, last state time, active "
    "alarms, key values and a link to its dashboard",
)
async def site_overview(
    principal: Viewer,
    context: Context,
    site: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")] = None,
) -> FastJSON:
    source = _source(context)
    scope = _user_sites(context, principal.username)
    if site is not None:
        _check_site(context, principal.username, site)
        if site not in source.sites:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"site '{site}' is not watched")
        wanted = [site]
    else:
        wanted = [s for s in source.sites if site_allowed(scope, s)]
        if not wanted:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"you are not allowed to see any of the sites {', '.join(source.sites)}",
            )
    by_site: dict[str, list[dict[str, Any]]] = {s: [] for s in wanted}
    for line in source.lines():
        if line["site"] in by_site:
            by_site[line["site"]].append(line)
    return FastJSON(
        {
            "connected": source.connected,
            "sites": [
                {
                    "site": name,
                    "online": sum(1 for line in lines if line["online"]),
                    "offline": sum(1 for line in lines if not line["online"]),
                    "alarms": sum(len(line["alarms"]) for line in lines),
                    "lines": lines,
                }
                for name, lines in by_site.items()
            ],
        }
    )


@router.get(
    "/site/{site}/{line}/state",
    response_class=FastJSON,
    summary="A line's last twin state from its retained state topic (the live view of a line)",
)
async def line_state(site: Segment, line: Segment, principal: Viewer, context: Context) -> FastJSON:
    source = _source(context)
    _check_site(context, principal.username, site)
    raw = source.state_of(site, line) if site in source.sites else None
    if raw is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no state of line {site}/{line}")
    return FastJSON({"site": site, "line": line, "state": orjson.loads(raw)})
