"""ConstantsService: the one place the twin reads its constants from (technical manual 10.2).

The directory is ``ConstantsService(config_dir=...)`` when given, else ``CIRCMAN5_CONFIG_DIR``,
else the embedded defaults of technical manual 16.1. Every file is validated at load: an unknown
key, a wrong type, invalid JSON or ``min > max`` raises :class:`circman5.errors.ConfigError`
naming the file, the key and the reason.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from circman5.adapters.base.config_manager import ConfigurationManager
from circman5.adapters.config.adapters import ADAPTERS
from circman5.adapters.config.digital_twin import DigitalTwinConstants
from circman5.adapters.config.thresholds import ThresholdRule
from circman5.errors import ConfigError
from circman5.json_types import JsonValue
from circman5.paths import config_dir as configured_dir
from circman5.singleton import Singleton

logger = logging.getLogger(__name__)


class ConstantsService(Singleton):
    """Singleton access to all constants; ``_reset_instance()`` for tests."""

    def __init__(self, config_dir: str | Path | None = None) -> None:
        with self._init_lock:
            if self._constructed:  # the same arguments again (others raise SingletonConflict)
                return
            directory = Path(config_dir) if config_dir is not None else configured_dir()
            if directory is not None and not directory.is_dir():
                raise ConfigError(
                    str(directory), "(directory)", "configuration directory not found"
                )
            self.config_dir: Path | None = directory
            self.config_manager = ConfigurationManager()
            self._register_adapters()
            self._load_all_configs()
            self._constructed = True

    @classmethod
    def _reset_instance(cls) -> None:
        """Forget the singleton (tests, or after the configuration directory changed)."""
        with cls._init_lock:
            cls._instance = None

    def _register_adapters(self) -> None:
        for name, adapter_cls in ADAPTERS.items():
            path = self.config_dir / adapter_cls.file_name if self.config_dir else None
            self.config_manager.register_adapter(name, adapter_cls(path))

    def _load_all_configs(self) -> None:
        for name in self.config_manager.adapter_names:
            self.config_manager.load_config(name)

    def reload_configs(self) -> None:
        """Re-read every file (a failure keeps nothing half-loaded: it raises)."""
        self._load_all_configs()

    # -- the documented getters ---------------------------------------------------------------
    def get_manufacturing_constants(self) -> dict[str, Any]:
        return self.config_manager.get_config("manufacturing")

    def get_impact_factors(self) -> dict[str, Any]:
        return self.config_manager.get_config("impact_factors")

    def get_optimization_config(self) -> dict[str, Any]:
        return self.config_manager.get_config("optimization")

    def get_monitoring_config(self) -> dict[str, Any]:
        return self.config_manager.get_config("monitoring")

    def get_visualization_config(self) -> dict[str, Any]:
        return self.config_manager.get_config("visualization")

    def get_digital_twin_config(self) -> dict[str, Any]:
        return self.config_manager.get_config("digital_twin")

    def get_constant(self, adapter: str, key: str) -> JsonValue:
        """One top-level key of one adapter's configuration, as JSON data (KeyError when
        unknown)."""
        config = self.config_manager.get_config(adapter)
        if key not in config:
            raise KeyError(f"unknown constant '{key}' in '{adapter}'")
        value: JsonValue = config[key]  # the configuration is dumped in JSON mode
        return value

    # -- typed access for the twin core -------------------------------------------------------
    def get_digital_twin_model(self) -> DigitalTwinConstants:
        model = self.config_manager.get_model("digital_twin")
        assert isinstance(model, DigitalTwinConstants)
        return model

    def get_parameter_thresholds(self) -> dict[str, ThresholdRule]:
        """``PARAMETER_THRESHOLDS`` normalized to rules (range and rule forms alike)."""
        return self.get_digital_twin_model().threshold_rules()
