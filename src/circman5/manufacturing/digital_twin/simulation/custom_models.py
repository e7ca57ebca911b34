"""Custom process models (implementation guide 10.1): any object with
``simulate_step(current_state)`` or ``simulate_step(current_state, rng)`` returning a *new* state
dict, adapted to one step function by :func:`as_step_function`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["ProcessModel", "SimpleProcessModel", "StepFunction", "as_step_function"]


@runtime_checkable
class ProcessModel(Protocol):
    """A model stepping with an explicit random generator (the built-in model's signature)."""

    def simulate_step(
        self, current_state: Mapping[str, Any], rng: np.random.Generator
    ) -> dict[str, Any]: ...


@runtime_checkable
class SimpleProcessModel(Protocol):
    """A custom model as in implementation guide 10.1: ``simulate_step(current_state)``."""

    def simulate_step(self, current_state: dict[str, Any]) -> dict[str, Any]: ...


StepFunction = Callable[[dict[str, Any], np.random.Generator], dict[str, Any]]


def _accepts_rng(method: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):
        return False
    positional = 0
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if param.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            positional += 1
        elif param.kind is inspect.Parameter.KEYWORD_ONLY and param.name == "rng":
            return True
    return positional >= 2


def as_step_function(model: object) -> StepFunction:
    """A uniform ``step(state, rng) -> new_state`` for either custom-model signature.

    Raises ``TypeError`` when ``model`` has no callable ``simulate_step``. The returned function
    raises ``TypeError`` when the model returns something other than a new dict (a model must
    not return, or mutate, the state it was given).
    """
    method = getattr(model, "simulate_step", None)
    if not callable(method):
        raise TypeError(f"{type(model).__name__} has no simulate_step(current_state) method")
    with_rng = _accepts_rng(method)
    name = type(model).__name__

    def step(state: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        result = method(state, rng) if with_rng else method(state)
        if not isinstance(result, dict):
            raise TypeError(f"{name}.simulate_step returned {type(result).__name__}, not a dict")
        if result is state:
            raise TypeError(f"{name}.simulate_step returned its input; return a new state")
        return result

    return step
