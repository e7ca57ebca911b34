"""The spec's singleton pattern (implementation guide 7.1), written once.

``class DigitalTwin(Singleton)``: every subclass has its own ``_instance`` and ``_init_lock``;
``Cls()`` always returns the same object, created under the lock; ``_constructed`` is False on
the fresh instance until the subclass's ``__init__`` has run once (it sets it True);
``Cls._reset_instance()`` forgets the instance (tests), and subclasses may extend it.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Self


class Singleton:
    _instance: ClassVar[Any] = None
    _init_lock: ClassVar[threading.RLock] = threading.RLock()
    _constructed: bool

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._instance = None
        cls._init_lock = threading.RLock()

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        instance = cls._instance
        if instance is None:
            with cls._init_lock:
                instance = cls._instance
                if instance is None:
                    instance = super().__new__(cls)
                    instance._constructed = False
                    cls._instance = instance
        return instance  # type: ignore[no-any-return]

    @classmethod
    def _reset_instance(cls) -> None:
        """Forget the instance (tests only)."""
        with cls._init_lock:
            cls._instance = None
