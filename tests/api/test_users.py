"""The user store, the /api/users routes and the ``circman5 user`` command functions."""

from __future__ import annotations

import argparse
import io
import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from circman5.api.roles import ROLES
from circman5.api.user_cli import add_user_commands, run_user_command
from circman5.api.users import UserStore
from circman5.errors import UserStoreError
from simulators.external import PostgreSQL
from tests.api.conftest import password_of
from tests.fixtures.databases import TwinBackend

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def users(fast_hasher: PasswordHasher, twin_backend: TwinBackend) -> UserStore:
    """One user per role, in the users file or the PostgreSQL table: these tests run twice."""
    store = twin_backend.users(hasher=fast_hasher)
    for role in ROLES:
        store.add(role, password_of(role), role)
    return store


# -- the store ------------------------------------------------------------------------------------
def test_store_hashes_with_argon2_and_writes_a_0600_file(
    fast_hasher: PasswordHasher, isolated_data_dir: Path
) -> None:
    store = UserStore(hasher=fast_hasher)
    store.add("alice", "correct horse", "engineer")
    path = isolated_data_dir / "api" / "users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    entry = document["users"]["alice"]
    assert entry["role"] == "engineer"
    assert entry["password_hash"].startswith("$argon2id$")
    assert "correct horse" not in path.read_text()
    assert store.authenticate("alice", "correct horse") is not None
    assert store.authenticate("alice", "wrong horse") is None
    assert store.authenticate("nobody", "correct horse") is None


def test_store_validates_input(fast_hasher: PasswordHasher, twin_backend: TwinBackend) -> None:
    store = twin_backend.users(hasher=fast_hasher)
    with pytest.raises(UserStoreError, match="username"):
        store.add("bad name!", "long enough", "viewer")
    with pytest.raises(UserStoreError, match="password"):
        store.add("bob", "short", "viewer")
    with pytest.raises(UserStoreError, match="role"):
        store.add("bob", "long enough", "superuser")
    store.add("bob", "long enough", "viewer")
    with pytest.raises(UserStoreError, match="exists"):
        store.add("bob", "long enough", "viewer")
    with pytest.raises(UserStoreError, match="no user"):
        store.remove("carol")


def test_store_sees_changes_made_by_another_process(
    fast_hasher: PasswordHasher, twin_backend: TwinBackend
) -> None:
    service_view = twin_backend.users(hasher=fast_hasher, reload_interval_s=0.0)
    assert service_view.get("dave") is None
    twin_backend.users(hasher=fast_hasher).add("dave", "long enough", "operator")  # the CLI
    user = service_view.get("dave")
    assert user is not None and user.role == "operator"


def test_outdated_hashes_are_upgraded_at_login(
    fast_hasher: PasswordHasher, twin_backend: TwinBackend
) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    twin_backend.users(hasher=weak).add("erin", "long enough", "viewer")
    store = twin_backend.users(hasher=fast_hasher)
    old_hash = store.get("erin").password_hash  # type: ignore[union-attr]
    assert store.authenticate("erin", "long enough") is not None
    new_hash = store.get("erin").password_hash  # type: ignore[union-attr]
    assert new_hash != old_hash
    assert not fast_hasher.check_needs_rehash(new_hash)


# -- routes ---------------------------------------------------------------------------------------
def test_admin_manages_users(client: TestClient, auth: Auth) -> None:
    admin = auth("admin")
    created = client.post(
        "/api/users",
        json={"username": "frank", "password": "frank-password", "role": "operator"},
        headers=admin,
    )
    assert created.status_code == 201
    assert created.json()["role"] == "operator"
    assert "password_hash" not in created.json()
    again = client.post(
        "/api/users",
        json={"username": "frank", "password": "frank-password", "role": "operator"},
        headers=admin,
    )
    assert again.status_code == 409
    listed = {u["username"]: u["role"] for u in client.get("/api/users", headers=admin).json()}
    assert listed["frank"] == "operator"
    promoted = client.patch("/api/users/frank", json={"role": "engineer"}, headers=admin)
    assert promoted.json()["role"] == "engineer"
    login = client.post("/api/auth/login", json={"username": "frank", "password": "frank-password"})
    assert login.json()["role"] == "engineer"
    assert client.delete("/api/users/frank", headers=admin).status_code == 204
    assert client.delete("/api/users/frank", headers=admin).status_code == 404
    assert (
        client.patch("/api/users/frank", json={"role": "viewer"}, headers=admin).status_code == 404
    )


def test_user_input_is_validated(client: TestClient, auth: Auth) -> None:
    admin = auth("admin")
    for body in (
        {"username": "ok", "password": "short", "role": "viewer"},
        {"username": "bad name", "password": "long enough", "role": "viewer"},
        {"username": "ok", "password": "long enough", "role": "root"},
        {"username": "ok", "password": "long enough", "role": "viewer", "extra": 1},
    ):
        response = client.post("/api/users", json=body, headers=admin)
        assert response.status_code == 422, body


def test_the_last_admin_cannot_be_removed_or_demoted(client: TestClient, auth: Auth) -> None:
    admin = auth("admin")
    assert client.delete("/api/users/admin", headers=admin).status_code == 409
    demote = client.patch("/api/users/admin", json={"role": "viewer"}, headers=admin)
    assert demote.status_code == 409
    assert "last admin" in demote.json()["detail"]
    client.post(
        "/api/users",
        json={"username": "admin2", "password": "admin2-password", "role": "admin"},
        headers=admin,
    )
    assert client.delete("/api/users/admin", headers=admin).status_code == 204


# -- the CLI functions ----------------------------------------------------------------------------
def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="circman5")
    commands = parser.add_subparsers(dest="command")
    add_user_commands(commands)
    return parser.parse_args(argv)


def _run(
    argv: list[str], store: UserStore, monkeypatch: pytest.MonkeyPatch, stdin: str = ""
) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return run_user_command(_parse(argv), store)


def test_cli_add_list_passwd_remove(
    fast_hasher: PasswordHasher,
    twin_backend: TwinBackend,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = twin_backend.users(hasher=fast_hasher)
    assert _run(["user", "list"], store, monkeypatch) == 0
    assert "no users yet" in capsys.readouterr().out
    argv = ["user", "add", "root", "--role", "admin", "--password-stdin"]
    assert _run(argv, store, monkeypatch, "first-password\n") == 0
    assert "added with role admin" in capsys.readouterr().out
    assert store.authenticate("root", "first-password") is not None
    assert _run(["user", "list"], store, monkeypatch) == 0
    listing = capsys.readouterr().out
    assert "root" in listing and "admin" in listing
    argv = ["user", "passwd", "root", "--password-stdin"]
    assert _run(argv, store, monkeypatch, "second-password\n") == 0
    assert store.authenticate("root", "second-password") is not None
    assert store.authenticate("root", "first-password") is None
    assert _run(["user", "remove", "root"], store, monkeypatch) == 1
    assert "last admin" in capsys.readouterr().err
    assert _run(["user", "remove", "root", "--force"], store, monkeypatch) == 0
    assert store.get("root") is None


def test_cli_refuses_bad_input(
    fast_hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = UserStore(hasher=fast_hasher)
    argv = ["user", "add", "x", "--role", "viewer", "--password-stdin"]
    assert _run(argv, store, monkeypatch, "short\n") == 1
    assert "password" in capsys.readouterr().err
    assert _run(["user", "remove", "nobody"], store, monkeypatch) == 1
    with pytest.raises(SystemExit):
        _parse(["user", "add", "x", "--role", "wizard"])


def test_cli_prompts_twice_without_stdin_flag(
    fast_hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter(["prompted-pass", "prompted-pass", "one-password", "another-one"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    store = UserStore(hasher=fast_hasher)
    assert _run(["user", "add", "gina", "--role", "viewer"], store, monkeypatch) == 0
    assert store.authenticate("gina", "prompted-pass") is not None
    assert _run(["user", "add", "hank", "--role", "viewer"], store, monkeypatch) == 1
    assert store.get("hank") is None


def test_cli_users_can_log_in(
    client: TestClient, users: UserStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["user", "add", "ivan", "--role", "manager", "--password-stdin"]
    assert _run(argv, users, monkeypatch, "ivan-password\n") == 0
    response = client.post(
        "/api/auth/login", json={"username": "ivan", "password": "ivan-password"}
    )
    assert response.status_code == 200
    assert response.json()["role"] == "manager"


@pytest.mark.parametrize("twin_backend", ["sqlite"], indirect=True)  # the file's own failure
def test_a_damaged_user_file_is_503_not_a_crash(
    client: TestClient, auth: Auth, users: UserStore, isolated_data_dir: Path
) -> None:
    headers = auth("viewer")
    (isolated_data_dir / "api" / "users.json").write_text("{ not json")
    users.reload_interval_s = 0.0
    response = client.get("/api/state", headers=headers)
    assert response.status_code == 503
    assert "user file" in response.json()["detail"]
    login = client.post("/api/auth/login", json={"username": "viewer", "password": "x" * 9})
    assert login.status_code == 503


def test_cli_with_a_database_setting_edits_the_users_table(
    postgresql_server: PostgreSQL,
    postgres_dsn: str,
    tmp_path: Path,
    isolated_data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from circman5.cli import main

    settings_file = tmp_path / "edge.toml"
    settings_file.write_text(f'[database]\nurl = "{postgres_dsn}"\n')
    monkeypatch.setattr("sys.stdin", io.StringIO("table-password\n"))
    argv = ["--config", str(settings_file), "user", "add", "root", "--role", "admin"]
    assert main([*argv, "--password-stdin"]) == 0
    database = postgres_dsn.rsplit("/", 1)[1]
    # psql, not our driver, finds the row
    assert postgresql_server.psql("SELECT role FROM users WHERE username = 'root'", database) == (
        "admin"
    )
    assert not (isolated_data_dir / "api" / "users.json").exists()
