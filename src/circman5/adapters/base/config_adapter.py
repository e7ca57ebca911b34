"""The configuration adapter pattern of the spec (technical manual 10.1), validated by pydantic."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from circman5.errors import ConfigError
from circman5.paths import config_dir

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


def describe_validation_error(file: str, err: ValidationError) -> ConfigError:
    """A ConfigError naming the file, the first offending key and every reason."""
    problems = [_located(problem) for problem in err.errors()]
    key = problems[0][0]
    reasons = [message if where == key else f"{where}: {message}" for where, message in problems]
    return ConfigError(file, key, "; ".join(reasons))


def _located(problem: Any) -> tuple[str, str]:
    """(dotted key, reason) of one pydantic error; a validator's own ``key: reason`` wins."""
    where = ".".join(str(part) for part in problem["loc"]) or "(root)"
    message = str(problem["msg"])
    if problem["type"] == "extra_forbidden":
        return where, "unknown key"
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
        inner, sep, reason = message.partition(": ")
        if sep and " " not in inner and (inner.startswith(where) or where == "(root)"):
            return inner, reason
    return where, message


class ConfigAdapterBase(Generic[M]):
    """Loads one JSON constants file, validates it and fills in the documented defaults.

    ``config_path`` is the JSON file; when None, ``<CIRCMAN5_CONFIG_DIR>/<file_name>`` is used if
    that directory is configured, else the embedded defaults. A missing file means defaults;
    a file that exists but is invalid raises :class:`ConfigError` naming file, key and reason.
    """

    model: ClassVar[type[BaseModel]]
    file_name: ClassVar[str]

    def __init__(self, config_path: str | Path | None = None) -> None:
        if config_path is None:
            directory = config_dir()
            config_path = directory / self.file_name if directory is not None else None
        self.config_path = Path(config_path) if config_path is not None else None
        self.logger = logger

    def load_config(self) -> dict[str, Any]:
        """The validated configuration as a plain dict (defaults for what the file omits)."""
        return self.load_model().model_dump(mode="json")

    def load_model(self) -> M:
        if self.config_path is None or not self.config_path.exists():
            return self.model()  # type: ignore[return-value]
        raw = self._load_json_config(self.config_path)
        try:
            return self.model.model_validate(raw)  # type: ignore[return-value]
        except ValidationError as err:
            raise describe_validation_error(str(self.config_path), err) from err

    def validate_config(self, config: dict[str, Any]) -> bool:
        """True when ``config`` is a valid configuration for this adapter."""
        try:
            self.model.model_validate(config)
        except ValidationError as err:
            self.logger.warning("%s", describe_validation_error(self.file_name, err))
            return False
        return True

    def get_defaults(self) -> dict[str, Any]:
        return self.model().model_dump(mode="json")

    def _load_json_config(self, file_path: str | Path) -> dict[str, Any]:
        path = Path(file_path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as err:
            raise ConfigError(str(path), "(file)", "file not found") from err
        except OSError as err:
            raise ConfigError(str(path), "(file)", f"cannot read: {err.strerror}") from err
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(
                str(path), f"line {err.lineno} column {err.colno}", f"invalid JSON: {err.msg}"
            ) from err
        if not isinstance(data, dict):
            raise ConfigError(str(path), "(root)", "the file must hold a JSON object")
        return data
