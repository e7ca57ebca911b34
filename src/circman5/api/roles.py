"""Roles and the role hierarchy of technical manual 12.2.

``admin`` 100 > ``manager`` 80 > ``engineer`` 60 > ``operator`` 40 > ``viewer`` 20. A user may do
everything the roles below theirs may: viewers read; operators acknowledge alarms; engineers run
simulations, scenarios and analyses and write setpoints within their limits; managers apply
optimizations; admins manage users.

Roles apply per site: a user may be limited to some sites (``sites`` in the user file, None for
every site, the default); :func:`site_allowed` says whether a user sees a site on the site page.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final, Literal, TypeGuard, get_args

Role = Literal["admin", "manager", "engineer", "operator", "viewer"]

ROLES: Final[tuple[Role, ...]] = get_args(Role)

ROLE_HIERARCHY: Final[dict[str, int]] = {
    "admin": 100,
    "manager": 80,
    "engineer": 60,
    "operator": 40,
    "viewer": 20,
}


def check_permission(user_role: str, required_role: str) -> bool:
    """Whether ``user_role`` is at least ``required_role`` (unknown roles have level 0).

    An unknown *required* role is treated as unreachable (level above admin) so that a typo
    in a route's requirement can never open it to everybody.
    """
    user_level = ROLE_HIERARCHY.get(user_role, 0)
    required_level = ROLE_HIERARCHY.get(required_role, 1_000)
    return user_level >= required_level


def roles_below(required_role: Role) -> tuple[Role, ...]:
    """The roles that lack ``required_role``'s permissions (for tests and docs)."""
    level = ROLE_HIERARCHY[required_role]
    return tuple(r for r in ROLES if ROLE_HIERARCHY[r] < level)


def is_role(value: object) -> TypeGuard[Role]:
    return isinstance(value, str) and value in ROLE_HIERARCHY


def site_allowed(user_sites: Collection[str] | None, site: str) -> bool:
    """Whether a user scoped to ``user_sites`` (None: every site) may see ``site``."""
    return user_sites is None or site in user_sites
