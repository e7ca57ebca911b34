"""Modbus addresses and request merging (125 registers, 2000 bits, gaps, units, tables)."""

from __future__ import annotations

import pytest

from circman5.connectors.modbus.plan import ReadItem, parse_address, plan_reads


def items(unit: int, table: str, spans: list[tuple[int, int]]) -> list[ReadItem]:
    return [ReadItem(i, unit, table, offset, count) for i, (offset, count) in enumerate(spans)]  # type: ignore[arg-type]


def shape(requests: list) -> list[tuple[int, str, int, int]]:  # type: ignore[type-arg]
    return [(r.unit_id, r.table, r.address, r.count) for r in requests]


def test_contiguous_tags_become_one_request() -> None:
    plan = plan_reads(items(1, "input_register", [(0, 2), (2, 2), (4, 1), (5, 4)]))
    assert shape(plan) == [(1, "input_register", 0, 9)]
    assert [(item.key, pos) for item, pos in plan[0].items] == [(0, 0), (1, 2), (2, 4), (3, 5)]


def test_unsorted_input_and_gaps() -> None:
    plan = plan_reads(items(1, "holding_register", [(10, 2), (0, 2), (3, 1)]))
    assert shape(plan) == [
        (1, "holding_register", 0, 2),
        (1, "holding_register", 3, 1),
        (1, "holding_register", 10, 2),
    ]
    merged = plan_reads(items(1, "holding_register", [(10, 2), (0, 2), (3, 1)]), max_gap=1)
    assert shape(merged) == [(1, "holding_register", 0, 4), (1, "holding_register", 10, 2)]
    wide = plan_reads(items(1, "holding_register", [(10, 2), (0, 2), (3, 1)]), max_gap=6)
    assert shape(wide) == [(1, "holding_register", 0, 12)]


def test_register_limit_125() -> None:
    spans = [(i * 2, 2) for i in range(100)]  # 200 contiguous registers of float32 tags
    plan = plan_reads(items(1, "input_register", spans))
    assert shape(plan) == [(1, "input_register", 0, 124), (1, "input_register", 124, 76)]
    assert all(r.count <= 125 for r in plan)
    assert sum(len(r.items) for r in plan) == 100
    # a 32-bit tag never straddles two requests
    for request in plan:
        for item, position in request.items:
            assert position + item.count <= request.count


def test_bit_limit_2000() -> None:
    plan = plan_reads(items(3, "coil", [(i, 1) for i in range(4500)]))
    assert shape(plan) == [(3, "coil", 0, 2000), (3, "coil", 2000, 2000), (3, "coil", 4000, 500)]


def test_custom_limits() -> None:
    plan = plan_reads(items(1, "input_register", [(i, 1) for i in range(10)]), max_registers=4)
    assert [r.count for r in plan] == [4, 4, 2]


def test_units_and_tables_never_mix() -> None:
    mixed = [
        ReadItem(0, 1, "input_register", 0, 2),
        ReadItem(1, 2, "input_register", 2, 2),
        ReadItem(2, 1, "holding_register", 2, 2),
        ReadItem(3, 1, "input_register", 2, 2),
        ReadItem(4, 1, "coil", 0, 1),
        ReadItem(5, 1, "discrete_input", 1, 1),
    ]
    assert shape(plan_reads(mixed)) == [
        (1, "coil", 0, 1),
        (1, "discrete_input", 1, 1),
        (1, "holding_register", 2, 2),
        (1, "input_register", 0, 4),
        (2, "input_register", 2, 2),
    ]


def test_overlapping_tags_share_registers() -> None:
    # bit tags on the same register and a uint16 on it
    plan = plan_reads(items(1, "holding_register", [(5, 1), (5, 1), (5, 1), (6, 2)]))
    assert shape(plan) == [(1, "holding_register", 5, 3)]
    assert [pos for _, pos in plan[0].items] == [0, 0, 0, 1]


def test_oversized_item_is_refused() -> None:
    with pytest.raises(ValueError, match="spans 126"):
        plan_reads(items(1, "holding_register", [(0, 126)]))


@pytest.mark.parametrize(
    ("text", "table", "offset"),
    [
        ("hr:100", "holding_register", 100),
        ("holding_register:0", "holding_register", 0),
        ("ir:65535", "input_register", 65535),
        ("coil:7", "coil", 7),
        ("DI: 3", "discrete_input", 3),
    ],
)
def test_addresses(text: str, table: str, offset: int) -> None:
    address = parse_address(text)
    assert (address.table, address.offset) == (table, offset)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("40001", "not a Modbus address"),
        ("xx:1", "unknown Modbus table"),
        ("hr:-1", "not a non-negative integer"),
        ("hr:65536", "above 65535"),
    ],
)
def test_bad_addresses(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_address(text)
