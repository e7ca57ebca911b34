"""Users scoped to sites: stored in the user file, set from the CLI; no sites = every site."""

from __future__ import annotations

import io
import json

import pytest
from argon2 import PasswordHasher

from circman5.api.roles import site_allowed
from circman5.api.user_cli import run_user_command
from circman5.api.users import UserStore
from circman5.errors import UserStoreError
from tests.api.test_users import _parse
from tests.fixtures.databases import TwinBackend


def test_sites_are_stored_and_read_back(fast_hasher: PasswordHasher) -> None:
    store = UserStore(hasher=fast_hasher)
    store.add("alice", "alice-password", "operator", sites=["plant1", "plant1", "plant2"])
    store.add("bob", "bob-password", "viewer")
    document = json.loads(store.path.read_text())
    assert document["users"]["alice"]["sites"] == ["plant1", "plant2"]
    assert "sites" not in document["users"]["bob"]  # files of older versions look the same
    again = UserStore(store.path, hasher=fast_hasher)
    alice, bob = again.get("alice"), again.get("bob")
    assert alice is not None and alice.sites == ("plant1", "plant2")
    assert bob is not None and bob.sites is None
    assert site_allowed(alice.sites, "plant1") and not site_allowed(alice.sites, "plant3")
    assert site_allowed(bob.sites, "anything")
    # an update of the password keeps the sites; sites=None opens every site
    assert again.update("alice", password="new-password-1").sites == ("plant1", "plant2")
    assert again.update("alice", sites=None).sites is None
    with pytest.raises(UserStoreError, match="site names"):
        again.update("alice", sites=["a/b"])


def test_cli_sets_and_clears_sites(
    fast_hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = UserStore(hasher=fast_hasher)

    def run(argv: list[str], stdin: str = "") -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return run_user_command(_parse(argv), store)

    argv = ["user", "add", "carol", "--role", "viewer", "--site", "plant1", "--password-stdin"]
    assert run(argv, "carol-password\n") == 0
    assert "for sites plant1" in capsys.readouterr().out
    assert run(["user", "list"]) == 0
    assert "plant1" in capsys.readouterr().out
    argv = ["user", "passwd", "carol", "--site", "plant2", "--site", "plant3", "--password-stdin"]
    assert run(argv, "carol-password-2\n") == 0
    carol = store.get("carol")
    assert carol is not None and carol.sites == ("plant2", "plant3")
    argv = ["user", "passwd", "carol", "--all-sites", "--password-stdin"]
    assert run(argv, "carol-password-3\n") == 0
    carol = store.get("carol")
    assert carol is not None and carol.sites is None


def test_sites_survive_a_restart_on_both_backends(
    twin_backend: TwinBackend, fast_hasher: PasswordHasher
) -> None:
    store = twin_backend.users(hasher=fast_hasher)
    store.add("dora", "dora-password", "engineer", sites=["plant1"])
    store.add("emil", "emil-password", "viewer")
    again = twin_backend.users(hasher=fast_hasher)  # what a restarted process reads
    dora, emil = again.get("dora"), again.get("emil")
    assert dora is not None and dora.sites == ("plant1",)
    assert emil is not None and emil.sites is None
    assert again.update("dora", password="dora-password-2").sites == ("plant1",)
    again.update("dora", sites=["plant2", "plant3"])
    reread = twin_backend.users(hasher=fast_hasher).get("dora")
    assert reread is not None and reread.sites == ("plant2", "plant3")
    again.update("dora", sites=None)
    cleared = twin_backend.users(hasher=fast_hasher).get("dora")
    assert cleared is not None and cleared.sites is None
