"""House rule: typed boundaries. No public function or method of ``src/circman5`` has a parameter
or a return annotated exactly ``Any`` where a real type says it.

Read with ``ast`` (nothing is imported). A function counts when its own name does not start with
``_`` (dunder methods such as ``__init__`` count), at any depth: methods, nested functions and
protocol members alike. ``dict[str, Any]`` and the like are not flagged: twin states are
JSON-like on purpose. What is left is listed in :data:`ALLOWED`, each entry with its reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "circman5"

#: (module under src/circman5, qualified name, parameter or "return") -> why it stays ``Any``.
ALLOWED: dict[tuple[str, str, str], str] = {
    # keyword options handed on to a library that takes them untyped
    ("api/server.py", "uvicorn_config", "**overrides"): "forwarded to uvicorn.Config(**kwargs)",
    ("api/server.py", "ApiServer.__init__", "**overrides"): "forwarded to uvicorn.Config",
    ("settings.py", "load_settings", "**overrides"): "values of any Settings field; pydantic "
    "validates them",
    # leaves of a twin state: the state is dict[str, Any] on purpose (JSON-like, see the brief of
    # issue 15); typing the leaf would push an isinstance onto every caller
    ("state_paths.py", "lookup", "return"): "a leaf of a dict[str, Any] twin state",
    ("state_paths.py", "value_at", "return"): "a leaf of a dict[str, Any] twin state, or default",
    ("state_paths.py", "value_at", "default"): "returned as given when the path is absent",
    ("twin_update.py", "TwinUpdate.__getitem__", "return"): "a section of the nested twin state",
    # settings merged from unvalidated mappings (EventManager.standalone/configure(config=...))
    (
        "manufacturing/digital_twin/event_notification/event_manager.py",
        "EventManager.setting",
        "return",
    ): "an EVENT_NOTIFICATION value whose type only the key names; configure() does not validate",
    # to type in their own branches (edited by other engineers while this rule was added):
    (
        "manufacturing/digital_twin/core/state_manager.py",
        "StateManager.validate_state",
        "state",
    ): "validates untrusted input: should become object",
    (
        "manufacturing/digital_twin/simulation/statistical_forecast.py",
        "StatisticalForecaster.observe",
        "value",
    ): "ignores what is not a finite number: should become object",
    (
        "manufacturing/digital_twin/simulation/statistical_forecast.py",
        "StatisticalForecaster.warm_start",
        "epoch_of",
    ): "should become Callable[[Mapping[str, Any]], float | None]",
    ("service/app.py", "EdgeService._history_reader.read", "paths"): "should become "
    "Sequence[str] (the reader is circman5.api.context.HistoryArraysReader)",
}


def _is_any(annotation: ast.expr | None) -> bool:
    if isinstance(annotation, ast.Name):
        return annotation.id == "Any"
    if isinstance(annotation, ast.Attribute):
        return annotation.attr == "Any"
    if isinstance(annotation, ast.Constant):
        return annotation.value == "Any"
    return False


def _is_public(name: str) -> bool:
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))


def _functions(
    node: ast.AST, prefix: str = ""
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield f"{prefix}{child.name}", child
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


def _any_annotations(function: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[str]:
    arguments = function.args
    for argument in arguments.posonlyargs + arguments.args + arguments.kwonlyargs:
        if _is_any(argument.annotation):
            yield argument.arg
    if arguments.vararg is not None and _is_any(arguments.vararg.annotation):
        yield f"*{arguments.vararg.arg}"
    if arguments.kwarg is not None and _is_any(arguments.kwarg.annotation):
        yield f"**{arguments.kwarg.arg}"
    if _is_any(function.returns):
        yield "return"


def public_any_signatures(source: str, module: str) -> set[tuple[str, str, str]]:
    """``(module, qualified name, parameter or "return")`` of each ``Any`` in ``source``."""
    found: set[tuple[str, str, str]] = set()
    for qualified, function in _functions(ast.parse(source)):
        if _is_public(function.name):
            found.update((module, qualified, where) for where in _any_annotations(function))
    return found


def _all_public_any_signatures() -> set[tuple[str, str, str]]:
    found: set[tuple[str, str, str]] = set()
    for path in sorted(SRC.rglob("*.py")):
        module = path.relative_to(SRC).as_posix()
        if "proto" in path.relative_to(SRC).parts:  # generated by protoc
            continue
        found |= public_any_signatures(path.read_text(encoding="utf-8"), module)
    return found


def test_no_public_signature_is_any_outside_the_allow_list() -> None:
    unexpected = sorted(_all_public_any_signatures() - ALLOWED.keys())
    assert not unexpected, (
        "public signatures annotated Any (use the real type, object for what is checked at run "
        f"time, or add an entry with its reason to ALLOWED): {unexpected}"
    )


def test_every_allow_list_entry_is_still_needed() -> None:
    stale = sorted(ALLOWED.keys() - _all_public_any_signatures())
    assert not stale, f"typed since: remove from ALLOWED: {stale}"


def test_the_walk_finds_what_the_rule_is_about() -> None:
    source = """
from typing import Any
import typing

def loose(value: Any, *args: Any, **kwargs: Any) -> Any: ...
def precise(value: int, state: dict[str, Any]) -> list[Any]: ...
def _private(value: Any) -> Any: ...
class Widget:
    def __init__(self, size: typing.Any) -> None: ...
    def _hidden(self) -> Any: ...
    async def fetch(self) -> "Any": ...
    class Inner:
        def method(self, x: Any) -> None: ...
def outer() -> None:
    def inner(y: Any) -> None: ...
"""
    assert public_any_signatures(source, "m.py") == {
        ("m.py", "loose", "value"),
        ("m.py", "loose", "*args"),
        ("m.py", "loose", "**kwargs"),
        ("m.py", "loose", "return"),
        ("m.py", "Widget.__init__", "size"),
        ("m.py", "Widget.fetch", "return"),
        ("m.py", "Widget.Inner.method", "x"),
        ("m.py", "outer.inner", "y"),
    }
