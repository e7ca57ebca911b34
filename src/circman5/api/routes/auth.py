"""``/api/auth``: log in (rate-limited) and who am I."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, Request, status

from circman5.api.deps import Context, CurrentUser
from circman5.api.roles import ROLE_HIERARCHY, ROLES
from circman5.api.schemas import LoginRequest, Me, TokenResponse
from circman5.errors import RateLimited

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/auth", tags=["auth"])


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


@router.post(
    "/login",
    response_model=TokenResponse,
    summary="Log in: an access token for username and password",
    responses={
        401: {"description": "wrong username or password"},
        429: {"description": "too many failed attempts; see Retry-After"},
    },
)
async def login(body: LoginRequest, request: Request, context: Context) -> TokenResponse:
    address = client_address(request)
    limiter = context.login_limiter
    try:
        attempt = limiter.begin(body.username, address)
    except RateLimited as err:
        logger.warning("login rate limit hit for %r from %s", body.username, address)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=str(err),
            headers={"Retry-After": str(int(err.retry_after))},
        ) from err
    user = await asyncio.to_thread(context.users.authenticate, body.username, body.password)
    if user is None:
        limiter.fail(attempt)
        logger.info("failed login for %r from %s", body.username, address)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    limiter.succeed(attempt)
    token, expires_at = context.tokens.issue(user.username, user.role)
    logger.info("login: %s (%s) from %s", user.username, user.role, address)
    return TokenResponse(
        access_token=token,
        expires_at=expires_at,
        expires_in=context.tokens.ttl_s,
        username=user.username,
        role=user.role,
    )


@router.get("/me", response_model=Me, summary="The caller's username and role")
async def me(principal: CurrentUser) -> Me:
    level = ROLE_HIERARCHY[principal.role]
    return Me(
        username=principal.username,
        role=principal.role,
        level=level,
        roles=[r for r in ROLES if ROLE_HIERARCHY[r] <= level],
    )
