"""The REST/WebSocket API and the web HMI of the twin.

``create_app(ApiContext(...))`` builds the FastAPI app; ``ApiServer`` serves it with uvicorn in
the service's event loop. See ``docs/hmi.md``.
"""

from circman5.api.context import ApiContext, status_provider
from circman5.api.setpoints import SetpointLimit, SetpointService

__all__ = ["ApiContext", "SetpointLimit", "SetpointService", "create_app", "status_provider"]


def __getattr__(name: str) -> object:
    # The app pulls in FastAPI and the twin: import it only when asked for.
    if name == "create_app":
        from circman5.api.app import create_app

        return create_app
    raise AttributeError(name)
