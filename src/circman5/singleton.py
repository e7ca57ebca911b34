"""The spec's singleton pattern (implementation guide 7.1), written once.

``class DigitalTwin(Singleton)``: every subclass has its own ``_instance`` and ``_init_lock``;
``Cls()`` always returns the same object, created under the lock; ``_constructed`` is False on
the fresh instance until the subclass's ``__init__`` has run once (it sets it True);
``Cls._reset_instance()`` forgets the instance (tests), and subclasses may extend it.

A later ``Cls(...)`` with arguments other than the first construction's raises
:class:`~circman5.errors.SingletonConflict` instead of silently ignoring them; ``Cls()`` without
arguments always returns the instance.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Self

from circman5.errors import SingletonConflict


class Singleton:
    _instance: ClassVar[Any] = None
    _init_lock: ClassVar[threading.RLock] = threading.RLock()
    _constructed: bool
    _arguments: tuple[tuple[Any, ...], dict[str, Any]]
    #: True where ``__init__`` applies the arguments of a later call (EventManager: configure)
    _reconfigurable: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._instance = None
        cls._init_lock = threading.RLock()

    def __new__(cls, *args: object, **kwargs: object) -> Self:
        instance = cls._instance
        if instance is None:
            with cls._init_lock:
                instance = cls._instance
                if instance is None:
                    instance = super().__new__(cls)
                    instance._constructed = False
                    instance._arguments = (args, kwargs)
                    cls._instance = instance
                    return instance
        if not cls._reconfigurable and (
            args or any(value is not None for value in kwargs.values())
        ):
            _check_same_arguments(cls, instance._arguments, (args, kwargs))
        return instance  # type: ignore[no-any-return]

    @classmethod
    def _reset_instance(cls) -> None:
        """Forget the instance (tests only)."""
        with cls._init_lock:
            cls._instance = None


def _same(first: Any, again: Any) -> bool:
    if first is again:
        return True
    try:
        return bool(first == again)
    except Exception:  # objects whose == is not a plain bool (arrays, ...)
        return False


def _check_same_arguments(
    cls: type,
    first: tuple[tuple[Any, ...], dict[str, Any]],
    again: tuple[tuple[Any, ...], dict[str, Any]],
) -> None:
    first_args, first_kwargs = first
    args, kwargs = again
    given = {k: v for k, v in kwargs.items() if v is not None}
    before = {k: v for k, v in first_kwargs.items() if v is not None}
    same = len(args) == len(first_args) and all(map(_same, first_args, args))
    same = same and given.keys() == before.keys()
    same = same and all(_same(before[k], v) for k, v in given.items())
    if not same:
        raise SingletonConflict(
            f"{cls.__name__} exists already (it is a singleton) and was created with other "
            f"arguments; {cls.__name__}() returns it, {cls.__name__}._reset_instance() forgets it"
        )
