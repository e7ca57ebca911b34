"""The REST/WebSocket API and the web HMI of the twin.

``create_app(ApiContext(...))`` builds the FastAPI app; ``ApiServer`` serves it with uvicorn in
the service's event loop. See ``docs/hmi.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from circman5.api.app import create_app
    from circman5.api.context import ApiContext, status_provider
    from circman5.api.setpoints import SetpointLimit, SetpointService

__all__ = ["ApiContext", "SetpointLimit", "SetpointService", "create_app", "status_provider"]

# Imported when first asked for: the app and its context pull in FastAPI, JWT, numpy and the
# twin's analysis, which an edge without the HMI (and a CLI command) never needs.
_HOMES = {
    "ApiContext": "circman5.api.context",
    "status_provider": "circman5.api.context",
    "SetpointLimit": "circman5.api.setpoints",
    "SetpointService": "circman5.api.setpoints",
    "create_app": "circman5.api.app",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(name)
    return getattr(importlib.import_module(home), name)
