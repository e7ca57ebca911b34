"""Typed boundaries: ``SynchronizationEngine.from_config`` takes the config model and typed
options (``EngineOptions``) that override or add to it."""

from __future__ import annotations

from circman5.adapters.config.digital_twin import SynchronizationConfig
from circman5.manufacturing.digital_twin.core.synchronization import (
    SynchronizationEngine,
    SyncMode,
)
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from tests.ingestion.conftest import RecordingReporter


def test_from_config_options_override_and_add_to_the_config() -> None:
    twin = DigitalTwin()
    assert twin.initialize()
    config = SynchronizationConfig(
        default_sync_mode="batch", tick_rate_hz=50.0, stale_timeout_s=3.0
    )
    reporter = RecordingReporter()
    engine = SynchronizationEngine.from_config(
        twin, [], config, tick_rate_hz=20.0, quality_section="signal_quality", reporter=reporter
    )
    assert (engine.mode, engine.tick_rate_hz, engine.stale_timeout_s) == (SyncMode.BATCH, 20.0, 3.0)
    # the options given are not written back into the config
    assert config.tick_rate_hz == 50.0
