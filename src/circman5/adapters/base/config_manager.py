"""Holds the registered configuration adapters and their loaded configurations."""

from __future__ import annotations

import copy
import threading
from typing import Any

from pydantic import BaseModel

from circman5.adapters.base.config_adapter import ConfigAdapterBase


class ConfigurationManager:
    """Registry of adapters by name; loads each once and hands out copies."""

    def __init__(self) -> None:
        self._adapters: dict[str, ConfigAdapterBase[Any]] = {}
        self._models: dict[str, BaseModel] = {}
        self._dicts: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()

    def register_adapter(self, name: str, adapter: ConfigAdapterBase[Any]) -> None:
        with self._lock:
            self._adapters[name] = adapter
            self._models.pop(name, None)
            self._dicts.pop(name, None)

    def load_config(self, name: str) -> dict[str, Any]:
        with self._lock:
            if name not in self._adapters:
                raise KeyError(f"no configuration adapter named '{name}'")
            model = self._adapters[name].load_model()
            self._models[name] = model
            self._dicts[name] = model.model_dump(mode="json")
            return copy.deepcopy(self._dicts[name])

    def get_config(self, name: str) -> dict[str, Any]:
        with self._lock:
            if name not in self._dicts:
                return self.load_config(name)
            return copy.deepcopy(self._dicts[name])

    def get_model(self, name: str) -> BaseModel:
        with self._lock:
            if name not in self._models:
                self.load_config(name)
            return self._models[name]

    @property
    def adapter_names(self) -> list[str]:
        return list(self._adapters)
