"""What the API needs from the rest of the service, in one object: :class:`ApiContext`.

The composition root builds it from the running parts and hands it to
:func:`circman5.api.app.create_app`::

    context = ApiContext(
        twin=twin,                                  # the initialized DigitalTwin
        settings=settings.api,                      # host, port, jwt_secret, token_ttl_s, TLS
        setpoints=SetpointService(limits, connectors, twin.get_current_state,
                                  event_manager.publish),
        connector_status=status_provider(connectors),
    )
    app = create_app(context)

Everything else has a default (the service passes each one explicitly; the defaults serve
tests and scripts that build an app by hand): the event manager singleton, the user store in
the data directory, a scenario manager on the twin's simulation engine, the AI and LCA
integrations (created on first use), the interface manager and the digital twin adapter
singletons.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from circman5.api.auth import LoginRateLimiter, TokenService, resolve_secret
from circman5.api.job_source import JobQueueSource
from circman5.api.setpoints import SetpointService
from circman5.api.site_source import SiteSource
from circman5.api.users import UserStore
from circman5.errors import FeatureUnavailable
from circman5.settings import ApiSettings

if TYPE_CHECKING:
    from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
    from circman5.manufacturing.digital_twin.event_notification.event_manager import (
        EventManager,
    )
    from circman5.manufacturing.digital_twin.simulation.scenario_manager import ScenarioManager
    from circman5.manufacturing.human_interface.adapters.digital_twin_adapter import (
        DigitalTwinAdapter,
    )
    from circman5.manufacturing.human_interface.core.interface_manager import InterfaceManager
    from circman5.manufacturing.lifecycle.lca_core import LifeCycleImpact

logger = logging.getLogger(__name__)

__all__ = [
    "AIIntegrationLike",
    "ApiContext",
    "ConnectorStatusProvider",
    "FeatureUnavailable",
    "LCAIntegrationLike",
    "status_provider",
]

ConnectorStatusProvider = Callable[[], list[dict[str, Any]]]
#: ``reader(source, start_s, end_s, paths) -> {path: (times_s, values)}``: recorded history
#: (``embedded`` or ``influxdb``) for calibration and model training.
FloatArray = NDArray[np.float64]
HistoryArraysReader = Callable[
    [str, float | None, float | None, Sequence[str]], Mapping[str, tuple[FloatArray, FloatArray]]
]


class AIIntegrationLike(Protocol):
    """The part of ``AIIntegration`` (technical manual 16.2.2) the API uses.

    Parameters are ``{name: value}``; constraints ``{name: value or (low, high)}``; results
    and reports are JSON-ready mappings.
    """

    def optimize_parameters(
        self,
        current_params: Mapping[str, float] | None = None,
        constraints: Mapping[str, float | tuple[float, float]] | None = None,
    ) -> Mapping[str, float] | None: ...

    def apply_optimized_parameters(
        self, optimized_params: Mapping[str, float], simulation_steps: int = 10
    ) -> bool: ...

    def predict_outcomes(
        self, parameters: Mapping[str, float] | None = None
    ) -> Mapping[str, object]: ...

    def generate_optimization_report(self) -> Mapping[str, object]: ...

    def model_info(self) -> Mapping[str, object]: ...

    def train_model_from_line_history(
        self, arrays: Mapping[str, tuple[FloatArray, FloatArray]], source: str = "history"
    ) -> Mapping[str, object]: ...


class LCAIntegrationLike(Protocol):
    """The part of ``LCAIntegration`` (technical manual 16.2.3) the API uses."""

    def perform_lca_analysis(
        self,
        state: Mapping[str, object] | None = None,
        batch_id: str | None = None,
        save_results: bool = True,
        output_dir: str | os.PathLike[str] | None = None,
        *,
        energy_kwh: float | None = None,
        lifetime_years: float | None = None,
        transport_distance: float | None = None,
        grid_region: str | None = None,
    ) -> LifeCycleImpact | None: ...

    def generate_lca_report(self, num_results: int = 5) -> Mapping[str, object]: ...


class _StatusSnapshot(Protocol):
    def snapshot(self) -> Mapping[str, object]: ...


class _StatusSource(Protocol):
    @property
    def status(self) -> _StatusSnapshot | Mapping[str, object]: ...


def status_provider(connectors: Iterable[_StatusSource]) -> ConnectorStatusProvider:
    """A connector-status provider over connectors with a ``status`` (``ConnectorStatus``)."""
    items = list(connectors)

    def provide() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for connector in items:
            status = connector.status
            snapshot = dict(status) if isinstance(status, Mapping) else status.snapshot()
            out.append(dict(snapshot))
        return out

    return provide


def _create_ai_integration(twin: DigitalTwin) -> AIIntegrationLike:
    """The spec's ``AIIntegration`` on ``twin`` (imported here: it loads scikit-learn)."""
    try:
        from circman5.manufacturing.digital_twin.integration.ai_integration import (
            AIIntegration,
        )
    except ImportError as err:
        raise FeatureUnavailable(f"AIIntegration is not available: {err}") from err
    return AIIntegration(twin)


def _create_lca_integration(twin: DigitalTwin) -> LCAIntegrationLike:
    """The spec's ``LCAIntegration`` on ``twin`` (imported here: it loads pandas)."""
    try:
        from circman5.manufacturing.digital_twin.integration.lca_integration import (
            LCAIntegration,
        )
    except ImportError as err:
        raise FeatureUnavailable(f"LCAIntegration is not available: {err}") from err
    return LCAIntegration(twin)


@dataclass
class ApiContext:
    """Everything :func:`~circman5.api.app.create_app` needs (see the module docstring).

    ``twin``: the DigitalTwin (None: the adapter's, i.e. the singleton). ``settings``: the API
    settings. ``users``: the user store. ``events``: the event manager. ``scenarios``: the
    scenario manager (None: created on first use by the adapter). ``setpoints``: the write-back
    service (None: no writable setpoints). ``connector_status``: returns each connector's status.
    ``jwt_secret``: overrides the settings' secret (tests). ``ai_factory`` / ``lca_factory``:
    build the integrations from the twin on first use. ``login_limiter``: the login rate
    limiter. ``broadcast_hz``: the live push's maximum state rate per client.
    """

    twin: DigitalTwin | None = None
    settings: ApiSettings = field(default_factory=ApiSettings)
    users: UserStore = field(default_factory=UserStore)
    events: EventManager | None = None
    scenarios: ScenarioManager | None = None
    setpoints: SetpointService | None = None
    connector_status: ConnectorStatusProvider = field(default=lambda: [])
    jwt_secret: str | None = None
    ai_factory: Callable[[DigitalTwin], AIIntegrationLike] = _create_ai_integration
    lca_factory: Callable[[DigitalTwin], LCAIntegrationLike] = _create_lca_integration
    login_limiter: LoginRateLimiter = field(default_factory=LoginRateLimiter)
    broadcast_hz: float = 10.0
    max_ws_clients: int = 500
    adapter: DigitalTwinAdapter | None = None
    interface: InterfaceManager | None = None
    extra_diagnostics: Mapping[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)
    #: Reads recorded history for calibration and model training (None: the twin's own
    #: state history only).
    history_reader: HistoryArraysReader | None = None
    #: Every line of the site from the lines' MQTT topics (None: no site page).
    site_view: SiteSource | None = None
    #: Where calibrations are saved (None: :func:`circman5.paths.data_dir` when needed).
    data_dir: Path | None = None
    #: The processing workers' job queue in PostgreSQL (None: no ``[database] url``, the
    #: jobs routes answer 503).
    jobs: JobQueueSource | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ai: AIIntegrationLike | None = None
        self._lca: LCAIntegrationLike | None = None
        self._tokens: TokenService | None = None
        if self.adapter is None:
            from circman5.manufacturing.human_interface.adapters.digital_twin_adapter import (
                digital_twin_adapter,
            )

            self.adapter = digital_twin_adapter
        if self.twin is not None or self.scenarios is not None:
            self.adapter.attach(self.twin, self.scenarios)
        if self.interface is None:
            from circman5.manufacturing.human_interface.core.interface_manager import (
                interface_manager,
            )

            self.interface = interface_manager

    # -- resolved parts -----------------------------------------------------------------------
    @property
    def twin_adapter(self) -> DigitalTwinAdapter:
        assert self.adapter is not None
        return self.adapter

    @property
    def interface_manager(self) -> InterfaceManager:
        assert self.interface is not None
        return self.interface

    @property
    def the_twin(self) -> DigitalTwin:
        return self.twin if self.twin is not None else self.twin_adapter.digital_twin

    @property
    def event_manager(self) -> EventManager:
        if self.events is None:
            from circman5.manufacturing.digital_twin.event_notification.event_manager import (
                event_manager,
            )

            self.events = event_manager
        return self.events

    @property
    def scenario_manager(self) -> ScenarioManager:
        return self.twin_adapter.scenario_manager

    @property
    def tokens(self) -> TokenService:
        if self._tokens is None:
            with self._lock:
                if self._tokens is None:
                    configured = self.jwt_secret
                    if configured is None and self.settings.jwt_secret is not None:
                        configured = self.settings.jwt_secret.get_secret_value()
                    self._tokens = TokenService(
                        resolve_secret(configured), ttl_s=self.settings.token_ttl_s
                    )
        return self._tokens

    def ai(self) -> AIIntegrationLike:
        """The AI integration (created on first use; :class:`FeatureUnavailable`)."""
        if self._ai is None:
            with self._lock:
                if self._ai is None:
                    self._ai = self.ai_factory(self.the_twin)
        return self._ai

    def lca(self) -> LCAIntegrationLike:
        """The LCA integration (created on first use; :class:`FeatureUnavailable`)."""
        if self._lca is None:
            with self._lock:
                if self._lca is None:
                    self._lca = self.lca_factory(self.the_twin)
        return self._lca
