"""Library tracebacks become one WARNING line unless the log level is DEBUG."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from circman5.logging_setup import configure_logging


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _fail_in(logger_name: str) -> None:
    try:
        raise ConnectionResetError("peer closed the connection")
    except ConnectionResetError:
        logging.getLogger(logger_name).exception("Error in watchdog loop")


@pytest.mark.usefixtures("restore_root_logger")
def test_a_library_traceback_is_one_warning_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    _fail_in("pymodbus.logging")
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "WARNING" in lines[0] and "pymodbus.logging" in lines[0]
    assert "ConnectionResetError: peer closed the connection" in lines[0]


@pytest.mark.usefixtures("restore_root_logger")
def test_our_own_errors_and_debug_runs_keep_their_tracebacks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO")
    _fail_in("circman5.service.app")
    assert "Traceback" in capsys.readouterr().err
    configure_logging("DEBUG")
    _fail_in("pymodbus.logging")
    assert "Traceback" in capsys.readouterr().err
