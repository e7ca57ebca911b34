"""InterfaceManager: the central coordinator of the HMI (technical manual 9.2, 9.4).

A singleton (``InterfaceManager()`` is ``interface_manager``; ``_reset_instance()`` for tests).
Components (the digital twin adapter, the alert panel, the scenario control, ...) are
registered by id; a command goes to :meth:`handle_command`, which handles the standard ones
(``change_view``) and otherwise asks each component in turn until one reports it handled it.

Components may declare ``command_roles`` (command name to the minimum role of technical manual
12.2); the API uses :meth:`required_role` to check a caller before a command runs. Commands no
component declares are unknown to the API.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

from circman5.manufacturing.human_interface.core.interface_state import InterfaceState
from circman5.singleton import Singleton

logger = logging.getLogger(__name__)

__all__ = ["CommandComponent", "InterfaceManager", "interface_manager"]

EventHandler = Callable[[dict[str, Any]], None]


@runtime_checkable
class CommandComponent(Protocol):
    def handle_command(self, command: str, params: dict[str, Any]) -> dict[str, Any]: ...


class InterfaceManager(Singleton):
    """Central manager of the Human-Machine Interface system."""

    #: Commands the manager handles itself, with their minimum role.
    STANDARD_COMMANDS: ClassVar[dict[str, str]] = {"change_view": "viewer"}

    def __init__(self) -> None:
        with self._init_lock:
            if self._constructed:
                return
            self._setup()

    def _setup(self) -> None:
        with self._init_lock:
            self.logger = logger
            self.state = InterfaceState()
            self.components: dict[str, object] = {}
            self.event_handlers: dict[str, list[EventHandler]] = {}
            self.event_adapter: object | None = None
            self._lock = threading.RLock()
            self._constructed = True

    @classmethod
    def _reset_instance(cls) -> None:
        """Tests: forget every component and handler; the module's ``interface_manager`` is
        reset in place, so it stays the singleton."""
        with cls._init_lock:
            instance = cls._instance
            if instance is not None:
                instance._setup()

    # -- components ---------------------------------------------------------------------------
    def register_component(self, component_id: str, component: object) -> None:
        """Register (or replace) a component under ``component_id``."""
        if not isinstance(component_id, str) or not component_id:
            raise ValueError("a component id is a non-empty string")
        with self._lock:
            if component_id in self.components and self.components[component_id] is not component:
                self.logger.info("replacing interface component %s", component_id)
            self.components = {**self.components, component_id: component}
        self.logger.debug("registered interface component %s", component_id)

    def unregister_component(self, component_id: str) -> None:
        with self._lock:
            if component_id in self.components:
                components = dict(self.components)
                del components[component_id]
                self.components = components

    def get_component(self, component_id: str) -> object:
        """The component registered as ``component_id`` (``KeyError`` when unknown)."""
        try:
            return self.components[component_id]
        except KeyError:
            raise KeyError(f"no interface component {component_id!r}") from None

    # -- interface events ---------------------------------------------------------------------
    def register_event_handler(self, event_type: str, handler: EventHandler) -> None:
        with self._lock:
            handlers = self.event_handlers.get(event_type, [])
            if handler not in handlers:
                self.event_handlers = {**self.event_handlers, event_type: [*handlers, handler]}

    def unregister_event_handler(self, event_type: str, handler: EventHandler) -> None:
        with self._lock:
            handlers = [h for h in self.event_handlers.get(event_type, []) if h != handler]
            self.event_handlers = {**self.event_handlers, event_type: handlers}

    def trigger_event(self, event_type: str, data: Mapping[str, Any]) -> None:
        """Call every handler of ``event_type``; a failing handler is logged, not raised."""
        for handler in self.event_handlers.get(event_type, ()):
            try:
                handler(dict(data))
            except Exception as err:  # one broken panel must not break the others
                self.logger.error("interface event handler for %s failed: %s", event_type, err)

    # -- views and commands -------------------------------------------------------------------
    def change_view(self, view_name: str) -> None:
        previous = self.state.active_view
        self.state.set_active_view(view_name)
        self.trigger_event("view_changed", {"previous": previous, "view": view_name})

    @property
    def command_roles(self) -> dict[str, str]:
        """Every command the manager and its components accept, with its minimum role."""
        roles = dict(self.STANDARD_COMMANDS)
        for component in self.components.values():
            declared = getattr(component, "command_roles", None)
            if isinstance(declared, Mapping):
                for command, role in declared.items():
                    roles.setdefault(str(command), str(role))
        return roles

    def required_role(self, command: str) -> str | None:
        """The minimum role for ``command``; None when no component accepts it."""
        return self.command_roles.get(command)

    def handle_command(self, command: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Handle a command from the interface (technical manual 9.4).

        Returns the handling component's result (``{"success": ..., ...}``), or
        ``{"success": False, "error": "Unknown command"}``. Bad parameters raise
        ``ValueError`` so that callers can tell them from failures.
        """
        arguments = dict(params or {})
        self.logger.debug("Handling command: %s, params: %s", command, arguments)
        self.trigger_event("command_executed", {"command": command, "params": arguments})
        if command == "change_view":
            view = arguments.get("view_name", "main")
            if not isinstance(view, str):
                raise ValueError("view_name must be a string")
            self.change_view(view)
            return {"success": True, "view": view}
        for component_id, component in list(self.components.items()):
            if not isinstance(component, CommandComponent):
                continue
            declared = getattr(component, "command_roles", None)
            if isinstance(declared, Mapping) and command not in declared:
                continue
            try:
                result = component.handle_command(command, arguments)
            except ValueError:
                raise
            except Exception as err:  # a broken component reports, the interface goes on
                self.logger.error("Error in component %s: %s", component_id, err)
                return {"success": False, "handled": True, "error": str(err)}
            if isinstance(result, Mapping) and result.get("handled", False):
                return dict(result)
        return {"success": False, "error": "Unknown command"}


#: The interface manager singleton of the implementation guide (5.1).
interface_manager = InterfaceManager()
