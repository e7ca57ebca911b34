"""Authentication: JWT access tokens (technical manual 12.1), login rate limiting, the secret.

Tokens are HS256 JWTs (PyJWT) with ``sub`` (the username), ``role``, ``iat``, ``exp`` and
``iss``. The secret is ``ApiSettings.jwt_secret`` when configured (at least 32 characters),
otherwise one generated on first start and kept in ``<data dir>/api/jwt_secret`` (mode 0600), so
tokens survive a restart. A token is accepted only while its user still exists with the same role:
removing a user or changing their role ends their sessions at once.

Login attempts are limited per username and per client address with a sliding window; every
attempt counts as a failure until its password checks out (so parallel guesses cannot slip
through while argon2 is busy). When either key is over its limit, login answers 429 with
``Retry-After``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jwt

from circman5 import paths
from circman5.api.roles import Role, is_role
from circman5.errors import AuthError, ConfigError, RateLimited

logger = logging.getLogger(__name__)

__all__ = [
    "ISSUER",
    "MIN_SECRET_LENGTH",
    "LoginAttempt",
    "LoginRateLimiter",
    "Principal",
    "RateLimited",
    "TokenService",
    "load_or_create_secret",
    "resolve_secret",
]

ISSUER = "circman5"
ALGORITHM = "HS256"
MIN_SECRET_LENGTH = 32
SECRET_FILE_PARTS = ("api", "jwt_secret")


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request."""

    username: str
    role: Role
    expires_at: float = float("inf")


# -- the secret ---------------------------------------------------------------------------------
def _read_secret(path: Path) -> str:
    secret = path.read_text(encoding="utf-8").strip()
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        logger.warning("JWT secret file %s is mode %o; setting it to 600", path, mode)
        with contextlib.suppress(OSError):
            path.chmod(0o600)
    return secret


def load_or_create_secret(path: str | os.PathLike[str] | None = None) -> str:
    """The generated JWT secret, created (0600, exclusively) on first use."""
    target = Path(path) if path is not None else paths.data_path(*SECRET_FILE_PARTS)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        secret = _read_secret(target)
        if len(secret) >= MIN_SECRET_LENGTH:
            return secret
        logger.warning("JWT secret file %s is too short; generating a new secret", target)
        target.unlink()
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return _read_secret(target)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    logger.info("generated a JWT secret in %s", target)
    return secret


def resolve_secret(configured: str | None) -> str:
    """``configured`` (from the settings) when given, else the generated one."""
    if configured is None:
        return load_or_create_secret()
    if len(configured) < MIN_SECRET_LENGTH:
        raise ConfigError(
            "settings", "api.jwt_secret", f"must be at least {MIN_SECRET_LENGTH} characters"
        )
    return configured


# -- tokens -------------------------------------------------------------------------------------
class TokenService:
    """Issue and verify access tokens. ``clock`` returns seconds since the epoch."""

    def __init__(
        self,
        secret: str,
        ttl_s: int = 8 * 3600,
        clock: Callable[[], float] = time.time,
        leeway_s: float = 10.0,
    ) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                "settings", "api.jwt_secret", f"must be at least {MIN_SECRET_LENGTH} characters"
            )
        if ttl_s < 1:
            raise ConfigError("settings", "api.token_ttl_s", "must be positive")
        self._secret = secret
        self.ttl_s = int(ttl_s)
        self._clock = clock
        self._leeway = leeway_s

    def issue(self, username: str, role: Role) -> tuple[str, int]:
        """A token for ``username`` and its expiry (seconds since the epoch)."""
        now = int(self._clock())
        expires = now + self.ttl_s
        payload = {"sub": username, "role": role, "iat": now, "exp": expires, "iss": ISSUER}
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM), expires

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; :class:`AuthError` otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                leeway=self._leeway,
                # exp is checked below against the service's clock
                options={
                    "require": ["exp", "iat", "sub", "role", "iss"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as err:
            raise AuthError("invalid token") from err
        exp = claims["exp"]
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise AuthError("invalid token")
        if float(exp) + self._leeway < self._clock():
            raise AuthError("the token has expired; log in again")
        sub, role = claims.get("sub"), claims.get("role")
        if not isinstance(sub, str) or not sub or not is_role(role):
            raise AuthError("invalid token")
        return Principal(sub, role, float(claims["exp"]))


# -- login rate limiting ------------------------------------------------------------------------
@dataclass(slots=True)
class LoginAttempt:
    """A login in progress: its slot in each window, refunded on success."""

    keys: tuple[str, ...]
    at: float
    done: bool = field(default=False)


class LoginRateLimiter:
    """Sliding-window limit on login failures per username and per client address.

    ``max_per_user`` / ``max_per_ip`` failures within ``window_s`` block further attempts on that
    key until the oldest failure leaves the window. At most ``max_keys`` keys are tracked (the
    stalest are forgotten first), so an attacker cannot grow memory without bound.
    """

    def __init__(
        self,
        max_per_user: int = 5,
        max_per_ip: int = 20,
        window_s: float = 60.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_per_user = max_per_user
        self.max_per_ip = max_per_ip
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self.blocked = 0  # attempts refused (a metric)

    def _limit(self, key: str) -> int:
        return self.max_per_user if key.startswith("user:") else self.max_per_ip

    @staticmethod
    def keys(username: str, client: str) -> tuple[str, str]:
        return (f"user:{username.strip().lower()}", f"ip:{client}")

    def _prune(self, key: str, now: float) -> deque[float] | None:
        window = self._failures.get(key)
        if window is None:
            return None
        horizon = now - self.window_s
        while window and window[0] <= horizon:
            window.popleft()
        if not window:
            del self._failures[key]
            return None
        return window

    def begin(self, username: str, client: str) -> LoginAttempt:
        """Reserve an attempt; :class:`RateLimited` when a key is over its limit."""
        now = self._clock()
        keys = self.keys(username, client)
        with self._lock:
            wait = 0.0
            for key in keys:
                window = self._prune(key, now)
                if window is not None and len(window) >= self._limit(key):
                    wait = max(wait, window[0] + self.window_s - now)
            if wait > 0:
                self.blocked += 1
                raise RateLimited(max(1.0, math.ceil(wait)))
            if len(self._failures) + len(keys) > self.max_keys:
                self._evict(now)
            for key in keys:
                self._failures.setdefault(key, deque()).append(now)
        return LoginAttempt(keys, now)

    def succeed(self, attempt: LoginAttempt) -> None:
        """The password was right: refund the attempt and forget the user's failures."""
        if attempt.done:
            return
        attempt.done = True
        with self._lock:
            user_key, ip_key = attempt.keys
            self._failures.pop(user_key, None)
            window = self._failures.get(ip_key)
            if window is not None:
                with contextlib.suppress(ValueError):
                    window.remove(attempt.at)
                if not window:
                    del self._failures[ip_key]

    def fail(self, attempt: LoginAttempt) -> None:
        """The attempt failed: it stays counted."""
        attempt.done = True

    def _evict(self, now: float) -> None:
        for key in list(self._failures):
            self._prune(key, now)
        overflow = len(self._failures) + 2 - self.max_keys
        if overflow > 0:
            stalest = sorted(self._failures, key=lambda k: self._failures[k][-1])[:overflow]
            for key in stalest:
                del self._failures[key]
