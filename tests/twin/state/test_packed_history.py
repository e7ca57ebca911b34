"""The state history packs big all-float sections; readers still see plain, exact states."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime
from typing import Any

from circman5.manufacturing.digital_twin.core.packed_history import (
    MIN_PACKED_ENTRIES,
    KeyCache,
    PackedNumbers,
    PackedState,
    pack,
    unpack,
)
from circman5.manufacturing.digital_twin.core.state_manager import StateManager

TAGS = 200


def tags(tick: int, count: int = TAGS) -> dict[str, float]:
    # awkward floats on purpose: exact round-trip is the point
    return {f"tag{i:04d}": (tick * 1000 + i) / 7.0 - 0.1 for i in range(count)}


def test_history_reads_back_every_value_exactly() -> None:
    manager = StateManager(history_length=50)
    sent = []
    for tick in range(20):
        stamp = datetime.fromtimestamp(1_700_000_000 + tick, UTC).isoformat()
        update = {"timestamp": stamp, "synthetic": {"plc": tags(tick)}}
        sent.append(update["synthetic"])
        manager.update_state(update)
    history = manager.get_history()
    assert [state["synthetic"] for state in history] == sent[:-1]
    assert manager.get_current_state()["synthetic"] == sent[-1]
    assert all(type(state["synthetic"]["plc"]) is dict for state in history)
    at = manager.get_state_at_time(1_700_000_000.0 + 3.5)
    assert at is not None and at["synthetic"]["plc"] == tags(3)


def test_big_float_sections_are_packed_and_the_rest_stays_shared() -> None:
    manager = StateManager(history_length=10)
    status = {f"line{i}": "running" for i in range(MIN_PACKED_ENTRIES + 5)}
    manager.update_state({"synthetic": {"plc": tags(0)}, "status": status})
    manager.update_state({"synthetic": {"plc": tags(1)}})
    manager.update_state({"system_status": "running"})  # a small update replaces nothing big
    first, second = manager._history
    assert type(first) is PackedState
    assert type(first.tree["synthetic"]["plc"]) is PackedNumbers
    # the string section was not replaced: one dict shared by both states and the current one
    assert first.tree["status"] is manager.snapshot()["status"]
    assert type(second) is dict  # the last update replaced no big section
    assert second["synthetic"] is manager.snapshot()["synthetic"]


def test_all_int_sections_are_packed_and_stay_ints() -> None:
    manager = StateManager(history_length=10)
    registers = {f"hr{i}": i * 1000 - 7 for i in range(MIN_PACKED_ENTRIES)}
    registers["hr1"] = 2**63 - 1
    manager.update_state({"modbus": registers})
    manager.update_state({"modbus": {key: 0 for key in registers}})
    (entry,) = manager._history
    assert type(entry) is PackedState and type(entry.tree["modbus"]) is PackedNumbers
    (back,) = manager.get_history()
    assert back["modbus"] == registers
    assert all(type(value) is int for value in back["modbus"].values())


def test_sections_that_are_not_all_float_or_small_stay_dicts() -> None:
    manager = StateManager(history_length=10)
    mixed = {**tags(0), "count": 3}
    small = tags(0, MIN_PACKED_ENTRIES - 1)
    flags = {f"f{i}": bool(i % 2) for i in range(MIN_PACKED_ENTRIES)}
    huge = {f"h{i}": 2**70 + i for i in range(MIN_PACKED_ENTRIES)}
    manager.update_state({"a": mixed, "b": small, "c": flags, "d": huge})
    manager.update_state(
        {
            "a": {**tags(1), "count": 4},
            "b": tags(1, MIN_PACKED_ENTRIES - 1),
            "c": {key: True for key in flags},
            "d": {key: 1 for key in huge},
        }
    )
    (entry,) = manager._history
    assert type(entry) is dict
    assert entry["a"]["count"] == 3 and type(entry["a"]["count"]) is int
    assert entry["b"] == small
    assert entry["c"] == flags and all(type(v) is bool for v in entry["c"].values())
    assert entry["d"] == huge


def test_a_snapshot_handed_out_is_never_changed_by_packing() -> None:
    manager = StateManager(history_length=10)
    held = manager.apply_update({"synthetic": {"plc": tags(0)}}).snapshot
    manager.update_state({"synthetic": {"plc": tags(1)}})
    assert type(held["synthetic"]["plc"]) is dict
    assert held["synthetic"]["plc"] == tags(0)


def test_negative_zero_and_extremes_round_trip() -> None:
    section = {f"v{i}": 0.0 for i in range(MIN_PACKED_ENTRIES)}
    section |= {"v0": -0.0, "v1": 1e308, "v2": -5e-324, "v3": 0.1}
    packed = pack({"s": section}, {"s": {}}, KeyCache())
    assert type(packed) is PackedState
    back = unpack(packed)["s"]
    assert back == section
    assert str(back["v0"]) == "-0.0"


def test_equal_key_sets_share_one_key_tuple() -> None:
    cache = KeyCache()
    first = pack({"s": tags(0)}, {}, cache)
    second = pack({"s": tags(1)}, {}, cache)
    assert isinstance(first, PackedState) and isinstance(second, PackedState)
    assert first.tree["s"].keys is second.tree["s"].keys


def _history_bytes(min_entries: int, monkeypatch: Any) -> int:
    import circman5.manufacturing.digital_twin.core.state_merge as module

    monkeypatch.setattr(module, "MIN_PACKED_ENTRIES", min_entries)
    StateManager._reset_instance()
    manager = StateManager(history_length=100)
    tracemalloc.start()
    try:
        for tick in range(101):
            manager.update_state({"synthetic": {"plc": tags(tick, 500)}})
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def test_packed_history_takes_a_fraction_of_the_memory(monkeypatch: Any) -> None:
    unpacked = _history_bytes(10**9, monkeypatch)
    packed = _history_bytes(MIN_PACKED_ENTRIES, monkeypatch)
    assert packed < unpacked / 3, (packed, unpacked)
