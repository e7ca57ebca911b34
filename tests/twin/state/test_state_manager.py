"""StateManager: singleton, validation, deep merge, immutability, history, time lookup."""

from __future__ import annotations

import copy
import enum
import logging
import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from circman5.errors import ConfigError, InvalidInputError, StateValidationError
from circman5.manufacturing.digital_twin.core.state_manager import StateManager, StateUpdate


class Mode(str, enum.Enum):  # noqa: UP042 (str() of this mixin is "Mode.AUTO")
    AUTO = "auto"


class Level(enum.IntEnum):
    HIGH = 2


class FakeConstants:
    def __init__(self, section: dict[str, Any]) -> None:
        self.section = section

    def get_digital_twin_config(self) -> dict[str, Any]:
        return {"STATE_MANAGEMENT": self.section, "EVENT_NOTIFICATION": {}}


def iso(second: int) -> str:
    return datetime(2025, 2, 24, 14, 0, second, tzinfo=UTC).isoformat()


# -- singleton and configuration ---------------------------------------------------------------


def test_singleton_returns_the_same_instance() -> None:
    first = StateManager(history_length=5, validation_level="basic")
    assert StateManager() is first
    StateManager._reset_instance()
    assert StateManager(history_length=5, validation_level="basic") is not first


def test_reset_alias_forgets_the_instance() -> None:
    first = StateManager(history_length=5, validation_level="basic")
    StateManager._reset()
    assert StateManager(history_length=5, validation_level="basic") is not first


def test_concurrent_construction_yields_one_instance() -> None:
    instances: list[StateManager] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        instances.append(StateManager(history_length=7, validation_level="basic"))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(instances) == 8
    assert all(instance is instances[0] for instance in instances)


def test_configuration_comes_from_the_constants_source() -> None:
    manager = StateManager(
        constants=FakeConstants({"default_history_length": 3, "validation_level": "strict"})
    )
    assert manager.history_length == 3
    assert manager.validation_level == "strict"


def test_default_configuration_comes_from_constants_service() -> None:
    manager = StateManager()
    assert manager.history_length == 1000
    assert manager.validation_level == "standard"


def test_explicit_values_win_over_the_configuration() -> None:
    manager = StateManager(
        history_length=4,
        constants=FakeConstants({"default_history_length": 3, "validation_level": "strict"}),
    )
    assert manager.history_length == 4
    assert manager.validation_level == "strict"


def test_unknown_validation_level_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="validation_level"):
        StateManager(history_length=3, validation_level="paranoid")


@pytest.mark.parametrize("length", [-1, 2.5, "10"])
def test_bad_history_length_is_rejected(length: Any) -> None:
    with pytest.raises(InvalidInputError):
        StateManager(history_length=length, validation_level="basic")


def test_constructing_again_with_another_length_resizes_the_history(
    manager: StateManager,
) -> None:
    for second in range(6):
        assert manager.update_state({"timestamp": iso(second), "production_line": {"n": second}})
    assert len(manager.get_history()) == 5
    assert StateManager(history_length=2) is manager
    assert manager.history_length == 2
    assert [s["production_line"]["n"] for s in manager.get_history()] == [3, 4]


# -- set_state and validation ------------------------------------------------------------------


def test_set_state_stores_a_copy(manager: StateManager, sample_state: dict[str, Any]) -> None:
    assert manager.set_state(sample_state) is True
    assert manager.get_current_state() == sample_state
    sample_state["production_line"]["temperature"] = 99.0
    assert manager.get_current_state()["production_line"]["temperature"] == 22.5
    assert manager.get_history() == []


def test_set_state_moves_the_previous_state_to_history(
    manager: StateManager, sample_state: dict[str, Any]
) -> None:
    manager.set_state(sample_state)
    second = {**sample_state, "timestamp": "2025-02-24T14:31:00", "system_status": "idle"}
    assert manager.set_state(second)
    assert manager.get_current_state()["system_status"] == "idle"
    assert manager.get_history() == [sample_state]


def test_set_state_adds_a_missing_timestamp(manager: StateManager) -> None:
    before = datetime.now(UTC)
    assert manager.set_state({"system_status": "running"})
    stamp = datetime.fromisoformat(manager.get_current_state()["timestamp"])
    assert stamp.tzinfo is not None
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC) + timedelta(seconds=1)


def test_datetime_timestamp_is_stored_as_iso_text(manager: StateManager) -> None:
    when = datetime(2025, 2, 24, 14, 30, tzinfo=UTC)
    assert manager.set_state({"timestamp": when})
    assert manager.get_current_state()["timestamp"] == when.isoformat()


BAD_STATES: list[tuple[Any, str]] = [
    ([1, 2], "dictionary"),
    ("state", "dictionary"),
    (None, "dictionary"),
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"timestamp": 12345}, "timestamp"),
    ({"timestamp": "2025-13-45T00:00:00"}, "timestamp"),
    ({"production_line": {"temperature": math.nan}}, "production_line.temperature"),
    ({"production_line": {"temperature": math.inf}}, "finite"),
    ({"materials": {"silicon_wafer": {"inventory": -math.inf}}}, "inventory"),
    ({"environment": {"readings": [1.0, math.nan]}}, "environment.readings[1]"),
    ({"production_line": 5}, "production_line"),
    ({"materials": ["a"]}, "materials"),
    ({"environment": "warm"}, "environment"),
    ({"production_line": {1: "a"}}, "key"),
    ({"production_line": {"sensor": object()}}, "unsupported"),
    ({"production_line": {"raw": b"bytes"}}, "unsupported"),
    ({"production_line": {"temperature": "hot"}}, "must be a number"),
    ({"system_status": 3}, "must be a string"),
    ({"production_line": {"temperature": {"value": 1.0}}}, "must be a single value"),
    ({"materials": {"silicon_wafer": {"quality": [0.9]}}}, "must be a number"),
]


@pytest.mark.parametrize(("state", "reason"), BAD_STATES)
def test_invalid_states_are_rejected_and_keep_the_current_state(
    manager: StateManager, sample_state: dict[str, Any], state: Any, reason: str
) -> None:
    manager.set_state(sample_state)
    ok, message = manager.validate_state(state)
    assert ok is False
    assert reason in message
    assert manager.set_state(state) is False
    assert manager.update_state(state) is False
    assert manager.get_current_state() == sample_state
    assert manager.get_history() == []


def test_validate_state_accepts_the_documented_state(
    manager: StateManager, sample_state: dict[str, Any]
) -> None:
    assert manager.validate_state(sample_state) == (True, "Valid state")


def test_booleans_none_and_lists_are_valid(manager: StateManager) -> None:
    state = {"flags": {"alarm": True, "note": None, "series": [1, 2.5, "x", [True]]}}
    assert manager.set_state(state)
    assert manager.get_current_state()["flags"] == state["flags"]


def test_values_are_normalised_to_plain_json_types(manager: StateManager) -> None:
    assert manager.set_state(
        {
            "production_line": {
                "temperature": np.float64(22.5),
                "count": np.int64(7),
                "running": np.bool_(True),
                "profile": np.array([1.0, 2.0]),
                "pair": (1, 2),
                "mode": Mode.AUTO,
                "level": Level.HIGH,
            }
        }
    )
    line = manager.get_current_state()["production_line"]
    assert line == {
        "temperature": 22.5,
        "count": 7,
        "running": True,
        "profile": [1.0, 2.0],
        "pair": [1, 2],
        "mode": "auto",
        "level": 2,
    }
    assert type(line["mode"]) is str
    assert type(line["level"]) is int
    assert type(line["temperature"]) is float
    assert type(line["count"]) is int
    assert type(line["running"]) is bool
    assert type(line["pair"]) is list


def test_numpy_nan_is_rejected(manager: StateManager) -> None:
    assert manager.set_state({"production_line": {"temperature": np.float32("nan")}}) is False


def test_basic_level_skips_field_types() -> None:
    manager = StateManager(history_length=3, validation_level="basic")
    assert manager.set_state({"production_line": {"temperature": "hot"}})
    assert manager.set_state({"production_line": {"temperature": math.nan}}) is False


@pytest.mark.parametrize(
    "state",
    [
        {"production_line": {"efficiency": 1.5}},
        {"production_line": {"defect_rate": -0.1}},
        {"materials": {"silicon_wafer": {"inventory": -1}}},
        {"materials": {"solar_glass": {"quality": 2}}},
        {"environment": {"humidity": 140.0}},
    ],
)
def test_strict_level_checks_ranges(state: dict[str, Any]) -> None:
    standard = StateManager(history_length=3, validation_level="standard")
    assert standard.validate_state(state)[0] is True
    StateManager._reset_instance()
    strict = StateManager(history_length=3, validation_level="strict")
    ok, message = strict.validate_state(state)
    assert ok is False
    assert "outside" in message


def test_numeric_fields_accept_none(manager: StateManager) -> None:
    assert manager.set_state({"production_line": {"temperature": None}})


def test_invalid_state_warning_is_logged_once_per_reason(
    manager: StateManager, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="circman5.manufacturing.digital_twin.core"):
        for _ in range(3):
            assert manager.update_state({"production_line": {"temperature": math.nan}}) is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "production_line.temperature" in warnings[0].getMessage()


# -- update_state ------------------------------------------------------------------------------


def test_update_state_deep_merges(manager: StateManager, sample_state: dict[str, Any]) -> None:
    manager.set_state(sample_state)
    assert manager.update_state(
        {
            "timestamp": "2025-02-24T14:31:00",
            "production_line": {"temperature": 24.0},
            "materials": {"silicon_wafer": {"inventory": 800}, "ingot": {"inventory": 3}},
        }
    )
    expected = copy.deepcopy(sample_state)
    expected["timestamp"] = "2025-02-24T14:31:00"
    expected["production_line"]["temperature"] = 24.0
    expected["materials"]["silicon_wafer"]["inventory"] = 800
    expected["materials"]["ingot"] = {"inventory": 3}
    assert manager.get_current_state() == expected
    assert manager.get_history() == [sample_state]


def test_update_replaces_a_leaf_with_a_dict_and_back(manager: StateManager) -> None:
    manager.set_state({"production_line": {"mode": "auto"}})
    assert manager.update_state({"production_line": {"mode": {"name": "manual", "level": 2}}})
    assert manager.get_current_state()["production_line"]["mode"] == {"name": "manual", "level": 2}
    assert manager.update_state({"production_line": {"mode": "auto"}})
    assert manager.get_current_state()["production_line"]["mode"] == "auto"


def test_update_without_a_previous_state_creates_one(manager: StateManager) -> None:
    assert manager.update_state({"timestamp": iso(1), "production_line": {"temperature": 21.0}})
    assert manager.get_current_state() == {
        "timestamp": iso(1),
        "production_line": {"temperature": 21.0},
    }
    assert manager.get_history() == []


def test_update_without_a_timestamp_is_stamped_now(
    manager: StateManager, sample_state: dict[str, Any]
) -> None:
    manager.set_state(sample_state)
    assert manager.update_state({"production_line": {"temperature": 23.0}})
    stamp = datetime.fromisoformat(manager.get_current_state()["timestamp"])
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


def test_a_partly_invalid_update_changes_nothing(
    manager: StateManager, sample_state: dict[str, Any]
) -> None:
    manager.set_state(sample_state)
    assert (
        manager.update_state(
            {
                "production_line": {"temperature": 30.0, "efficiency": math.nan},
                "environment": {"humidity": 50.0},
            }
        )
        is False
    )
    assert manager.get_current_state() == sample_state
    assert manager.get_history() == []


def test_apply_update_reports_the_changed_paths(
    manager: StateManager, sample_state: dict[str, Any]
) -> None:
    manager.set_state(sample_state)
    result = manager.apply_update(
        {
            "timestamp": "2025-02-24T14:31:00+00:00",
            "production_line": {"temperature": 23.1},
            "materials": {"new": {"inventory": 1, "quality": 0.5}},
            "system_status": "running",
        }
    )
    assert isinstance(result, StateUpdate)
    assert result.paths == [
        "production_line.temperature",
        "materials.new.inventory",
        "materials.new.quality",
        "system_status",
    ]
    assert result.epoch == datetime(2025, 2, 24, 14, 31, tzinfo=UTC).timestamp()
    assert result.snapshot is manager.snapshot()
    assert result.snapshot["production_line"]["temperature"] == 23.1


def test_apply_update_raises_on_invalid_input(
    manager: StateManager, sample_state: dict[str, Any]
) -> None:
    manager.set_state(sample_state)
    with pytest.raises(StateValidationError, match=r"production_line\.temperature"):
        manager.apply_update({"production_line": {"temperature": math.inf}})
    assert manager.get_current_state() == sample_state


def test_updates_share_unchanged_subtrees_and_keep_old_snapshots(
    manager: StateManager, sample_state: dict[str, Any]
) -> None:
    manager.set_state(sample_state)
    before = manager.snapshot()
    manager.update_state({"production_line": {"temperature": 30.0}})
    after = manager.snapshot()
    assert after is not before
    assert after["materials"] is before["materials"]  # structural sharing
    assert after["production_line"] is not before["production_line"]
    assert before["production_line"]["temperature"] == 22.5  # the old snapshot is intact
    assert manager.history_snapshots() == [before]


def test_returned_states_cannot_change_the_twin(
    manager: StateManager, sample_state: dict[str, Any]
) -> None:
    manager.set_state(sample_state)
    manager.update_state({"production_line": {"series": [1, 2]}})
    current = manager.get_current_state()
    current["production_line"]["temperature"] = -5.0
    current["production_line"]["series"].append(3)
    current["materials"].clear()
    history = manager.get_history()
    history[0]["environment"]["humidity"] = 0.0
    at_time = manager.get_state_at_time(datetime.now(UTC))
    assert at_time is not None
    at_time["production_line"]["series"].append(4)
    state = manager.get_current_state()
    assert state["production_line"]["temperature"] == 22.5
    assert state["production_line"]["series"] == [1, 2]
    assert state["materials"] == sample_state["materials"]
    assert manager.get_history()[0]["environment"]["humidity"] == 45.0


def test_input_containers_are_copied(manager: StateManager) -> None:
    readings = [1.0, 2.0]
    nested = {"a": {"b": 1}}
    manager.update_state({"production_line": {"readings": readings, "nested": nested}})
    readings.append(3.0)
    nested["a"]["b"] = 2
    line = manager.get_current_state()["production_line"]
    assert line["readings"] == [1.0, 2.0]
    assert line["nested"] == {"a": {"b": 1}}


def test_current_state_property_and_empty_manager(manager: StateManager) -> None:
    assert manager.get_current_state() == {}
    assert manager.current_state == {}
    assert manager.snapshot() == {}
    manager.set_state({"system_status": "idle"})
    assert manager.current_state["system_status"] == "idle"


# -- history -----------------------------------------------------------------------------------


def test_history_is_bounded_and_oldest_first() -> None:
    manager = StateManager(history_length=3, validation_level="basic")
    for n in range(6):
        manager.update_state({"timestamp": iso(n), "production_line": {"n": n}})
    assert [s["production_line"]["n"] for s in manager.get_history()] == [2, 3, 4]
    assert manager.get_current_state()["production_line"]["n"] == 5


@pytest.mark.parametrize(
    ("limit", "expected"), [(None, [2, 3, 4]), (2, [3, 4]), (0, []), (9, [2, 3, 4])]
)
def test_get_history_limit(limit: int | None, expected: list[int]) -> None:
    manager = StateManager(history_length=3, validation_level="basic")
    for n in range(6):
        manager.update_state({"timestamp": iso(n), "production_line": {"n": n}})
    assert [s["production_line"]["n"] for s in manager.get_history(limit)] == expected


def test_zero_history_length_keeps_only_the_current_state() -> None:
    manager = StateManager(history_length=0, validation_level="basic")
    manager.update_state({"timestamp": iso(1), "x": {"n": 1}})
    manager.update_state({"timestamp": iso(2), "x": {"n": 2}})
    assert manager.get_history() == []
    assert manager.get_current_state()["x"] == {"n": 2}


def test_clear_history_keeps_the_current_state(
    manager: StateManager, sample_state: dict[str, Any]
) -> None:
    manager.set_state(sample_state)
    manager.update_state({"production_line": {"temperature": 1.0}})
    manager.clear_history()
    assert manager.get_history() == []
    assert manager.get_current_state()["production_line"]["temperature"] == 1.0


# -- get_state_at_time --------------------------------------------------------------------------


def fill(manager: StateManager, seconds: list[int]) -> None:
    for n in seconds:
        assert manager.update_state({"timestamp": iso(n), "production_line": {"n": n}})


def n_at(manager: StateManager, when: Any) -> int | None:
    state = manager.get_state_at_time(when)
    return None if state is None else int(state["production_line"]["n"])


def test_state_at_time_finds_the_latest_state_at_or_before(manager: StateManager) -> None:
    fill(manager, [0, 10, 20, 30])
    assert n_at(manager, iso(10)) == 10
    assert n_at(manager, iso(15)) == 10
    assert n_at(manager, iso(29)) == 20
    assert n_at(manager, iso(30)) == 30  # the current state counts
    assert n_at(manager, iso(59)) == 30
    assert n_at(manager, "2025-02-24T13:59:59+00:00") is None


def test_state_at_time_accepts_datetimes_and_epochs(manager: StateManager) -> None:
    fill(manager, [0, 10, 20])
    assert n_at(manager, datetime(2025, 2, 24, 14, 0, 12, tzinfo=UTC)) == 10
    assert n_at(manager, datetime(2025, 2, 24, 14, 0, 12, tzinfo=UTC).timestamp()) == 10


def test_naive_timestamps_are_local_time(manager: StateManager) -> None:
    local = datetime(2025, 2, 24, 14, 0, 0).astimezone()  # naive -> local, aware
    manager.update_state({"timestamp": "2025-02-24T14:00:00", "production_line": {"n": 1}})
    manager.update_state(
        {"timestamp": (local + timedelta(seconds=10)).isoformat(), "production_line": {"n": 2}}
    )
    assert n_at(manager, local + timedelta(seconds=5)) == 1
    assert n_at(manager, "2025-02-24T14:00:05") == 1
    assert n_at(manager, "2025-02-24T14:00:10") == 2


@pytest.mark.parametrize("bad", ["not a time", "", math.nan, None, [1]])
def test_state_at_time_rejects_bad_timestamps(manager: StateManager, bad: Any) -> None:
    fill(manager, [0])
    with pytest.raises(InvalidInputError):
        manager.get_state_at_time(bad)


def test_state_at_time_with_out_of_order_timestamps(manager: StateManager) -> None:
    fill(manager, [0, 20, 10, 30, 5])
    assert n_at(manager, iso(12)) == 10
    assert n_at(manager, iso(25)) == 20
    assert n_at(manager, iso(7)) == 5
    assert n_at(manager, iso(40)) == 30


def test_state_at_time_once_an_out_of_order_state_has_left_the_history(
    manager: StateManager,
) -> None:
    fill(manager, [0, 20, 10, 30, 31])  # 20 then 10: out of order
    assert n_at(manager, iso(15)) == 10  # found by a scan of the whole history
    assert n_at(manager, iso(25)) == 20
    fill(manager, list(range(40, 51)))  # the eleven states kept are sorted again
    assert n_at(manager, iso(45)) == 45
    assert n_at(manager, iso(35)) is None  # older than every kept state
    manager.resize_history(3)
    fill(manager, [58, 55])  # out of order again, in a shorter history
    assert n_at(manager, iso(57)) == 55
    assert n_at(manager, iso(52)) == 50
    assert n_at(manager, iso(59)) == 58


def test_state_at_time_after_history_is_cleared(manager: StateManager) -> None:
    fill(manager, [0, 10, 20])
    manager.clear_history()
    assert n_at(manager, iso(15)) is None
    assert n_at(manager, iso(25)) == 20


# -- thread safety -----------------------------------------------------------------------------


def test_concurrent_writers_lose_no_update() -> None:
    manager = StateManager(history_length=100, validation_level="standard")
    manager.set_state({"counters": {}})
    threads_n, updates_n = 8, 400
    barrier = threading.Barrier(threads_n)

    def writer(t: int) -> None:
        barrier.wait()
        for i in range(updates_n):
            assert manager.update_state({"counters": {f"t{t}": i, f"t{t}_{i}": True}})

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counters = manager.get_current_state()["counters"]
    assert len(counters) == threads_n * (updates_n + 1)
    assert all(counters[f"t{t}"] == updates_n - 1 for t in range(threads_n))
    assert len(manager.get_history()) == 100


def test_readers_never_see_a_half_applied_update() -> None:
    manager = StateManager(history_length=10, validation_level="basic")
    manager.set_state({"pair": {"a": 0, "b": 0}})
    stop = threading.Event()
    torn: list[dict[str, Any]] = []

    def reader() -> None:
        while not stop.is_set():
            state = manager.get_current_state()
            if state["pair"]["a"] != state["pair"]["b"]:
                torn.append(state)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    for i in range(3000):
        manager.update_state({"pair": {"a": i, "b": i}})
    stop.set()
    for thread in readers:
        thread.join()
    assert torn == []
    assert manager.get_current_state()["pair"] == {"a": 2999, "b": 2999}
