"""Request plumbing shared by the routes: the context, authentication, roles, fast JSON."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import math
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import orjson
from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from circman5.api.auth import Principal
from circman5.api.context import ApiContext
from circman5.api.roles import Role, check_permission
from circman5.errors import AuthError
from circman5.json_types import JsonValue

__all__ = [
    "CurrentUser",
    "FastJSON",
    "authenticate",
    "get_context",
    "jsonable",
    "require",
    "run_heavy",
]

T = TypeVar("T")
P = ParamSpec("P")

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="The access token from POST /api/auth/login: 'Authorization: Bearer <token>'.",
)


async def get_context(request: Request) -> ApiContext:
    # async: FastAPI would run a plain function in the thread pool, on every request
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(get_context)]


def unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"}
    )


def authenticate(context: ApiContext, token: str) -> Principal:
    """The principal of ``token``; :class:`AuthError` when it is invalid or the user's account
    no longer matches (removed, or its role changed)."""
    principal = context.tokens.verify(token)
    user = context.users.get(principal.username)
    if user is None or user.role != principal.role:
        raise AuthError("the token is no longer valid; log in again")
    return principal


async def current_principal(
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None:
        raise unauthorized("not authenticated: send 'Authorization: Bearer <token>'")
    try:
        return authenticate(context, credentials.credentials)
    except AuthError as err:
        raise unauthorized(str(err)) from err


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting ``role`` and the roles above it (technical manual 12.2)."""

    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        if not check_permission(principal.role, role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"insufficient permissions: requires role '{role}' or higher, "
                f"you are '{principal.role}'",
            )
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


CurrentUser = Annotated[Principal, Depends(current_principal)]
Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Engineer = Annotated[Principal, Depends(require("engineer"))]
Manager = Annotated[Principal, Depends(require("manager"))]
Admin = Annotated[Principal, Depends(require("admin"))]


# -- JSON -----------------------------------------------------------------------------------------
def jsonable(value: object, depth: int = 0) -> JsonValue:
    """Plain JSON data from what the integrations return (dataclasses, numpy, pandas, enums,
    paths, objects with ``to_dict``); non-finite floats become None."""
    if depth > 50:
        return str(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth + 1)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        if type(value).__name__ == "DataFrame":
            return jsonable(to_dict(orient="records"), depth + 1)
        return jsonable(to_dict(), depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value), depth + 1)
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return jsonable(tolist(), depth + 1)
    return str(value)


class FastJSON(Response):
    """A JSON response encoded with orjson (no per-item encoder pass)."""

    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


# -- CPU-heavy work -------------------------------------------------------------------------------
async def run_heavy(request: Request, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run CPU-heavy ``func`` in a worker thread, at most ``heavy_slots`` at a time, so that
    simulations never starve the event loop or each other."""
    semaphore: asyncio.Semaphore = request.app.state.heavy.semaphore()
    async with semaphore:
        return await asyncio.to_thread(func, *args, **kwargs)
