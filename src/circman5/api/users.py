"""The users of the API and HMI: names, roles and argon2 password hashes in one JSON file.

The file is ``<data dir>/api/users.json`` (mode 0600), written atomically (temporary file,
fsync, rename), so a crash never leaves half a file and the ``circman5 user`` command can edit
it while the service runs: the store re-reads the file when it changed (checked at most once per
``reload_interval_s``). Passwords are hashed with argon2id (argon2-cffi); hashes made with older
parameters are upgraded at the next successful login.

With ``records=`` (the service passes PostgreSQL's ``users`` table when ``[database] url`` is
set) the users live in that table instead of the file, each change one row, and every read asks
the database, so all API instances on the database see the same users at once.

Nothing is read or created before first use.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from circman5 import paths
from circman5.api.roles import ROLES, Role, is_role
from circman5.errors import UserFileError, UserStoreError
from circman5.files import atomic_write
from circman5.storage.contracts import UserRecords, UserRow

logger = logging.getLogger(__name__)

__all__ = [
    "KEEP_SITES",
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "USERNAME_PATTERN",
    "User",
    "UserFileError",
    "UserStore",
    "UserStoreError",
    "default_users_path",
]

USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
_USERNAME_RE = re.compile(USERNAME_PATTERN)
_SITE_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
#: ``update(..., sites=KEEP_SITES)`` leaves the user's site scope as it is.
KEEP_SITES: Any = object()
_FILE_VERSION = 1


@dataclass(frozen=True, slots=True)
class User:
    """A user as stored (the hash never leaves the store through the API)."""

    username: str
    role: Role
    password_hash: str
    created_at: str
    updated_at: str
    #: The sites this user sees on the site page (None: every site).
    sites: tuple[str, ...] | None = None

    def public(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "role": self.role,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "sites": list(self.sites) if self.sites is not None else None,
        }


def default_users_path() -> Path:
    return paths.data_path("api", "users.json")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def check_username(username: object) -> str:
    if not isinstance(username, str) or not _USERNAME_RE.fullmatch(username):
        raise UserStoreError("a username is 1 to 64 characters: letters, digits and _ . @ -")
    return username


def check_password(password: object) -> str:
    if not isinstance(password, str):
        raise UserStoreError("the password must be a string")
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise UserStoreError(
            f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
        )
    return password


def check_role(role: object) -> Role:
    if not is_role(role):
        raise UserStoreError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    return role


def check_sites(sites: object) -> tuple[str, ...] | None:
    """A user's site scope: None (every site) or a list of site names."""
    if sites is None:
        return None
    if not isinstance(sites, list | tuple) or not all(
        isinstance(site, str) and _SITE_RE.fullmatch(site) for site in sites
    ):
        raise UserStoreError(
            "sites is a list of site names (letters, digits, _ . -), or null for every site"
        )
    return tuple(dict.fromkeys(sites))


class UserStore:
    """Thread-safe user store on a JSON file (see the module docstring).

    ``path``: the file (default ``<data dir>/api/users.json``, resolved on first use).
    ``hasher``: the argon2 ``PasswordHasher`` (default parameters of argon2-cffi, RFC 9106 low
    memory profile). ``records``: the users table to use instead of the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        hasher: PasswordHasher | None = None,
        reload_interval_s: float = 1.0,
        records: UserRecords | None = None,
    ) -> None:
        self._records = records
        self._path = Path(path) if path is not None else None
        self.hasher = hasher or PasswordHasher()
        self.reload_interval_s = reload_interval_s
        self._lock = threading.RLock()
        self._users: dict[str, User] = {}
        self._stamp: tuple[int, int, int] | None = None  # (mtime_ns, size, inode) when loaded
        self._checked_at = -float("inf")
        self._loaded = False
        self._dummy_hash: str | None = None

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = default_users_path()
        return self._path

    # -- file ---------------------------------------------------------------------------------
    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _refresh(self, force: bool = False) -> None:
        """Re-read the file when it changed (at most every ``reload_interval_s``)."""
        now = time.monotonic()
        if not force and self._loaded and now - self._checked_at < self.reload_interval_s:
            return
        with self._lock:
            self._checked_at = now
            stamp = self._file_stamp()
            if self._loaded and stamp == self._stamp:
                return
            self._users = self._read() if stamp is not None else {}
            self._stamp = stamp
            self._loaded = True

    def _read(self) -> dict[str, User]:
        path = self.path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UserFileError(f"cannot read the user file {path}: {err}") from err
        users: dict[str, User] = {}
        entries = data.get("users") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            raise UserFileError(f"the user file {path} has no 'users' object")
        for name, entry in entries.items():
            try:
                users[name] = User(
                    username=check_username(name),
                    role=check_role(entry["role"]),
                    password_hash=str(entry["password_hash"]),
                    created_at=str(entry.get("created_at", "")),
                    updated_at=str(entry.get("updated_at", "")),
                    sites=check_sites(entry.get("sites")),
                )
            except (KeyError, TypeError, UserStoreError) as err:
                logger.warning("user file %s: skipping invalid entry %r: %s", path, name, err)
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            logger.warning("user file %s is mode %o; setting it to 600", path, mode)
            with contextlib.suppress(OSError):
                path.chmod(0o600)
        return users

    def _write(self, users: dict[str, User]) -> None:
        document: dict[str, Any] = {
            "version": _FILE_VERSION,
            "users": {
                u.username: {
                    "role": u.role,
                    "password_hash": u.password_hash,
                    "created_at": u.created_at,
                    "updated_at": u.updated_at,
                    **({"sites": list(u.sites)} if u.sites is not None else {}),
                }
                for u in sorted(users.values(), key=lambda u: u.username)
            },
        }
        atomic_write(self.path, json.dumps(document, indent=2) + "\n", mode=0o600)
        self._users = users
        self._stamp = self._file_stamp()
        self._checked_at = time.monotonic()
        self._loaded = True

    # -- the users table (records=) ------------------------------------------------------------
    @staticmethod
    def _user(row: UserRow) -> User:
        sites = check_sites(json.loads(row.sites)) if row.sites is not None else None
        return User(
            row.username,
            check_role(row.role),
            row.password_hash,
            row.created_at,
            row.updated_at,
            sites,
        )

    @staticmethod
    def _row(user: User) -> UserRow:
        sites = json.dumps(list(user.sites)) if user.sites is not None else None
        return UserRow(
            user.username, user.role, user.password_hash, user.created_at, user.updated_at, sites
        )

    # -- queries ------------------------------------------------------------------------------
    def get(self, username: str) -> User | None:
        if self._records is not None:
            row = self._records.get(username)
            return self._user(row) if row is not None else None
        self._refresh()
        return self._users.get(username)

    def list_users(self) -> list[User]:
        if self._records is not None:
            return [self._user(row) for row in self._records.list_all()]
        self._refresh()
        return sorted(self._users.values(), key=lambda u: u.username)

    def count(self) -> int:
        if self._records is not None:
            return len(self._records.list_all())
        self._refresh()
        return len(self._users)

    # -- changes ------------------------------------------------------------------------------
    def add(self, username: str, password: str, role: str, sites: list[str] | None = None) -> User:
        """Create a user (``UserStoreError`` when the name is taken or the input is invalid).
        ``sites``: the sites the user sees (None: every site)."""
        name = check_username(username)
        valid_role = check_role(role)
        scope = check_sites(sites)
        password_hash = self.hasher.hash(check_password(password))
        if self._records is not None:
            now = _now()
            user = User(name, valid_role, password_hash, now, now, scope)
            if self._records.insert(self._row(user)) != "ok":
                raise UserStoreError(f"user '{name}' already exists")
            logger.info("user added: %s (%s)", name, valid_role)
            return user
        with self._lock:
            self._refresh(force=True)
            if name in self._users:
                raise UserStoreError(f"user '{name}' already exists")
            now = _now()
            user = User(name, valid_role, password_hash, now, now, scope)
            self._write({**self._users, name: user})
        logger.info("user added: %s (%s)", name, valid_role)
        return user

    def update(
        self,
        username: str,
        password: str | None = None,
        role: str | None = None,
        sites: object = KEEP_SITES,
    ) -> User:
        """Change a user's password, role and/or site scope (``sites=None``: every site)."""
        password_hash = self.hasher.hash(check_password(password)) if password is not None else None
        valid_role = check_role(role) if role is not None else None
        keep_sites = sites is KEEP_SITES
        scope = None if keep_sites else check_sites(sites)
        with self._lock:
            if self._records is None:
                self._refresh(force=True)
            current = self.get(username) if self._records is not None else self._users.get(username)
            if current is None:
                raise UserStoreError(f"no user '{username}'")
            user = User(
                username=current.username,
                role=valid_role or current.role,
                password_hash=password_hash or current.password_hash,
                created_at=current.created_at,
                updated_at=_now(),
                sites=current.sites if keep_sites else scope,
            )
            if self._records is not None:
                if self._records.update(self._row(user)) != "ok":
                    raise UserStoreError(f"no user '{username}'")
            else:
                self._write({**self._users, username: user})
        logger.info("user updated: %s (%s)", username, user.role)
        return user

    def remove(self, username: str) -> None:
        if self._records is not None:
            if not self._records.delete(username):
                raise UserStoreError(f"no user '{username}'")
            logger.info("user removed: %s", username)
            return
        with self._lock:
            self._refresh(force=True)
            if username not in self._users:
                raise UserStoreError(f"no user '{username}'")
            users = dict(self._users)
            del users[username]
            self._write(users)
        logger.info("user removed: %s", username)

    # -- authentication -----------------------------------------------------------------------
    def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password is right, else None. CPU-heavy (argon2): call it from a
        worker thread. An unknown user costs one hash verification too (no user enumeration by
        timing)."""
        user = self.get(username) if isinstance(username, str) else None
        if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
            return None
        if user is None:
            self._verify(self._dummy(), password)
            return None
        if not self._verify(user.password_hash, password):
            return None
        if self.hasher.check_needs_rehash(user.password_hash):
            with contextlib.suppress(UserStoreError, OSError):
                user = self.update(user.username, password=password)
        return user

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(password_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash("not-a-password-of-anyone")
        return self._dummy_hash
