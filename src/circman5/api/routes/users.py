"""``/api/users``: user management (admins only)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from circman5.api.deps import Admin, Context
from circman5.api.schemas import UserCreate, UserOut, UserUpdate
from circman5.api.users import KEEP_SITES, USERNAME_PATTERN, User
from circman5.errors import UserStoreError

router = APIRouter(prefix="/users", tags=["users"])

UsernameParam = Annotated[str, Path(pattern=USERNAME_PATTERN)]


def _out(user: User) -> UserOut:
    return UserOut(**user.public())


@router.get("", response_model=list[UserOut])
async def list_users(_: Admin, context: Context) -> list[UserOut]:
    users = await asyncio.to_thread(context.users.list_users)
    return [_out(u) for u in users]


@router.post(
    "",
    response_model=UserOut,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "the username is taken"}},
)
async def create_user(body: UserCreate, _: Admin, context: Context) -> UserOut:
    if context.users.get(body.username) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"user '{body.username}' exists")
    try:
        user = await asyncio.to_thread(
            context.users.add, body.username, body.password, body.role, body.sites
        )
    except UserStoreError as err:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(err)) from err
    return _out(user)


@router.patch(
    "/{username}",
    response_model=UserOut,
    responses={404: {"description": "no such user"}, 409: {"description": "last admin"}},
)
async def update_user(
    username: UsernameParam, body: UserUpdate, principal: Admin, context: Context
) -> UserOut:
    store = context.users
    current = store.get(username)
    if current is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no user '{username}'")
    if body.role is not None and body.role != "admin" and current.role == "admin":
        _keep_an_admin(context, username)
    try:
        sites = body.sites if "sites" in body.model_fields_set else KEEP_SITES
        user = await asyncio.to_thread(store.update, username, body.password, body.role, sites)
    except UserStoreError as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(err)) from err
    return _out(user)


@router.delete(
    "/{username}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no such user"}, 409: {"description": "last admin"}},
)
async def delete_user(username: UsernameParam, principal: Admin, context: Context) -> None:
    store = context.users
    current = store.get(username)
    if current is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no user '{username}'")
    if current.role == "admin":
        _keep_an_admin(context, username)
    try:
        await asyncio.to_thread(store.remove, username)
    except UserStoreError as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(err)) from err


def _keep_an_admin(context: Context, username: str) -> None:
    admins = [u for u in context.users.list_users() if u.role == "admin"]
    if len(admins) <= 1 and admins and admins[0].username == username:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail="cannot remove or demote the last admin; create another admin first",
        )
