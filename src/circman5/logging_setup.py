"""Structured logging: plain text or one JSON object per line.

Protocol and client libraries (asyncua, pymodbus, paho, amqtt, ...) log a full traceback at
ERROR for things that are routine on a plant network (a peer's server going away). Below DEBUG
such a record becomes one WARNING line naming the exception; the traceback is shown with
``--log-level DEBUG``.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Literal


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


LIBRARY_LOGGERS = (
    "asyncua",
    "pymodbus",
    "paho",
    "amqtt",
    "transitions",
    "influxdb_client",
    "urllib3",
    "uvicorn.error",
)


class LibraryTracebackFilter(logging.Filter):
    """Turns a library's ERROR-with-traceback into one WARNING line (tracebacks at DEBUG only)."""

    def __init__(self, show_tracebacks: bool) -> None:
        super().__init__()
        self._show_tracebacks = show_tracebacks

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            self._show_tracebacks
            or not record.exc_info
            or record.levelno < logging.WARNING
            or not record.name.startswith(LIBRARY_LOGGERS)
        ):
            return True
        error = record.exc_info[1]
        summary = f"{type(error).__name__}: {error}" if error is not None else "error"
        record.msg = f"{record.getMessage()} ({summary}; traceback with --log-level DEBUG)"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        if record.levelno > logging.WARNING:
            record.levelno = logging.WARNING
            record.levelname = "WARNING"
        return True


def configure_logging(level: str = "INFO", fmt: Literal["plain", "json"] = "plain") -> None:
    """Configure the root logger once for the process (CLI entry points only)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    handler.addFilter(LibraryTracebackFilter(show_tracebacks=root.level <= logging.DEBUG))
    # protocol libraries log every session step at INFO: keep their warnings and errors only
    for noisy in ("asyncua", "pymodbus", "uvicorn.access", "amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
