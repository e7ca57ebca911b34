"""``[database]``: SQLite by default, a PostgreSQL DSN validated at load, password from the env."""

from __future__ import annotations

from pathlib import Path

import pytest

from circman5.errors import ConfigError, StorageError
from circman5.settings import load_settings, masked
from circman5.storage.database import open_database
from simulators.external import free_port


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def test_sqlite_is_the_default() -> None:
    settings = load_settings()
    assert settings.database.url is None
    assert settings.database.backend == "sqlite"
    assert open_database(settings.database) is None  # the twin opens its own files


def test_postgres_url_and_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIRCMAN5_DATABASE__PASSWORD", "pg-secret-value")
    path = write(tmp_path, '[database]\nurl = "postgresql://circman5@db.plant:5432/circman5"\n')
    settings = load_settings(path)
    assert settings.database.backend == "postgresql"
    assert settings.database.password is not None
    assert settings.database.password.get_secret_value() == "pg-secret-value"
    assert "pg-secret-value" not in str(masked(settings))


@pytest.mark.parametrize(
    ("line", "key", "reason"),
    [
        (
            'url = "postgresql://u:hunter2@db/circman5"',
            "database.url",
            "CIRCMAN5_DATABASE__PASSWORD",
        ),
        ('url = "mysql://u@db/circman5"', "database.url", "not a PostgreSQL URL"),
        ('url = "postgresql://u@db:5432/"', "database.url", "names no database"),
        ('url = "postgresql://u@db:99999/x"', "database.url", "bad port"),
        ("min_connections = 5\nmax_connections = 2", "database", "min_connections 5"),
        ("pool = 3", "database.pool", "unknown key"),
    ],
)
def test_bad_database_settings_name_file_key_reason(
    tmp_path: Path, line: str, key: str, reason: str
) -> None:
    path = write(tmp_path, f"[database]\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    err = caught.value
    assert err.file == str(path)
    assert err.key.startswith(key), err
    assert reason in err.reason, err
    assert "hunter2" not in str(err)


def test_an_unreachable_server_is_a_storage_error_without_the_password(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    path = write(
        tmp_path,
        f'[database]\nurl = "postgresql://circman5@127.0.0.1:{port}/circman5"\n'
        'password = "never-shown"\nconnect_timeout_s = 2\n',
    )
    settings = load_settings(path)
    with pytest.raises(StorageError) as caught:
        open_database(settings.database)
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "never-shown" not in str(caught.value)


def test_the_command_line_reports_an_unreachable_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from circman5.cli import main

    port = free_port()
    path = write(
        tmp_path,
        f'[database]\nurl = "postgresql://circman5@127.0.0.1:{port}/circman5"\n'
        "connect_timeout_s = 2\n",
    )
    assert main(["--config", str(path), "user", "list"]) == 1
    assert f"database error: database postgresql://circman5@127.0.0.1:{port}" in (
        capsys.readouterr().err
    )
