"""One exception hierarchy: every exception class of ``src/`` is defined in ``circman5.errors``.

Nothing is allowed elsewhere (the list of exceptions not yet moved is empty and stays so).
"""

from __future__ import annotations

import ast
from pathlib import Path

from circman5 import errors
from circman5.connectors.opcua.client import SessionLost as OpcUaSessionLost
from circman5.connectors.opcua.refusals import OpcUaRefused
from circman5.manufacturing.digital_twin.simulation.scenario_manager import (
    ScenarioLimitError,
    ScenarioNotFoundError,
    ScenarioStoreError,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "circman5"

NOT_YET_MOVED: set[tuple[str, str]] = set()

_EXCEPTION_NAMES = {name for name, value in vars(errors).items() if isinstance(value, type)} | {
    "Exception",
    "BaseException",
    "ValueError",
    "RuntimeError",
    "LookupError",
    "KeyError",
}


def _exception_classes() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC).as_posix()
        if relative == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = {
                base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
                for base in node.bases
            }
            if bases & _EXCEPTION_NAMES or node.name.endswith(("Error", "Exception")):
                found.add((relative, node.name))
    return found


def test_exceptions_live_in_errors_py() -> None:
    assert _exception_classes() - NOT_YET_MOVED == set()


def test_old_names_still_import_and_sit_under_the_right_base() -> None:
    assert OpcUaRefused is errors.SessionRefused
    assert OpcUaSessionLost is errors.SessionLost
    assert ScenarioLimitError is errors.ScenarioLimitError
    assert ScenarioNotFoundError is errors.ScenarioNotFoundError
    assert ScenarioStoreError is errors.ScenarioStoreError
    assert issubclass(errors.ScenarioNotFoundError, LookupError)
    assert issubclass(errors.ScenarioStoreError, errors.StorageError)
    for moved in (errors.MalformedPayload, errors.MetricRejected, errors.ScenarioLimitError):
        assert issubclass(moved, errors.Circman5Error)
    assert issubclass(errors.SessionRefused, errors.DeviceUnavailable)
    assert issubclass(errors.SessionLost, errors.ConnectorError)
    refused = OpcUaRefused("ServerUntrusted", "server certificate untrusted")
    assert (refused.kind, refused.reason, str(refused)) == (
        "ServerUntrusted",
        "server certificate untrusted",
        "server certificate untrusted",
    )
