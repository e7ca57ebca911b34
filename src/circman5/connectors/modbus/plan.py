"""Modbus addresses and read planning (pure Python).

An address is ``<table>:<offset>`` with a 0-based protocol offset (what goes on the wire; a
device manual's "40001" is ``hr:0``)::

    coil:12     co:12             coils (read 0x01, write 0x05/0x0F)
    di:3        discrete_input:3  discrete inputs (read 0x02)
    ir:100      input_register:100   input registers (read 0x04)
    hr:100      holding_register:100 holding registers (read 0x03, write 0x06/0x10)

:func:`plan_reads` merges the tags of one unit and table into as few requests as possible:
contiguous (or, with ``max_gap``, nearly contiguous) ranges become one request of at most 125
registers or 2000 bits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Table = Literal["coil", "discrete_input", "input_register", "holding_register"]

TABLE_ALIASES: dict[str, Table] = {
    "coil": "coil",
    "coils": "coil",
    "co": "coil",
    "di": "discrete_input",
    "discrete_input": "discrete_input",
    "discrete_inputs": "discrete_input",
    "ir": "input_register",
    "input_register": "input_register",
    "input_registers": "input_register",
    "hr": "holding_register",
    "holding_register": "holding_register",
    "holding_registers": "holding_register",
}

BIT_TABLES: frozenset[str] = frozenset({"coil", "discrete_input"})
WRITABLE_TABLES: frozenset[str] = frozenset({"coil", "holding_register"})
MAX_REGISTERS = 125
MAX_BITS = 2000


@dataclass(frozen=True, slots=True)
class ModbusAddress:
    table: Table
    offset: int

    def __str__(self) -> str:
        short = {"coil": "coil", "discrete_input": "di", "input_register": "ir"}
        return f"{short.get(self.table, 'hr')}:{self.offset}"

    @property
    def is_bit(self) -> bool:
        return self.table in BIT_TABLES


def parse_address(text: str) -> ModbusAddress:
    """Parse ``table:offset``; ``ValueError`` with the reason."""
    table_text, sep, offset_text = text.strip().partition(":")
    if not sep:
        raise ValueError(
            f"'{text}' is not a Modbus address; write '<table>:<offset>' with table one of "
            "coil, di, ir, hr (e.g. 'hr:100')"
        )
    table = TABLE_ALIASES.get(table_text.strip().lower())
    if table is None:
        raise ValueError(f"unknown Modbus table '{table_text}' in '{text}' (coil, di, ir or hr)")
    offset_text = offset_text.strip()
    if not offset_text.isdigit():
        raise ValueError(f"offset '{offset_text}' in '{text}' is not a non-negative integer")
    offset = int(offset_text)
    if offset > 0xFFFF:
        raise ValueError(f"offset {offset} in '{text}' is above 65535")
    return ModbusAddress(table, offset)


@dataclass(frozen=True, slots=True)
class ReadItem:
    """One tag to read: ``key`` identifies it to the caller."""

    key: int
    unit_id: int
    table: Table
    offset: int
    count: int  # registers (or 1 bit)


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One merged read: ``items`` with their position (registers or bits) in the response."""

    unit_id: int
    table: Table
    address: int
    count: int
    items: tuple[tuple[ReadItem, int], ...]


def plan_reads(
    items: Iterable[ReadItem],
    max_registers: int = MAX_REGISTERS,
    max_bits: int = MAX_BITS,
    max_gap: int = 0,
) -> list[ReadRequest]:
    """Merge ``items`` into requests per (unit, table), in address order.

    Two items share a request when the second starts at most ``max_gap`` registers (or bits)
    after the first ends and the request stays within ``max_registers`` / ``max_bits``.
    Overlapping items (several bits of one register) share the registers they overlap.
    """
    groups: dict[tuple[int, str], list[ReadItem]] = defaultdict(list)
    for item in items:
        groups[(item.unit_id, item.table)].append(item)
    requests: list[ReadRequest] = []
    for (unit_id, table), group in sorted(groups.items()):
        limit = max_bits if table in BIT_TABLES else max_registers
        group.sort(key=lambda i: (i.offset, i.count))
        runs: list[list[ReadItem]] = []
        end = -1
        for item in group:
            if item.count > limit:
                raise ValueError(
                    f"{table} item at {item.offset} spans {item.count} > {limit} per request"
                )
            item_end = item.offset + item.count
            if (
                runs
                and item.offset <= end + max_gap
                and max(end, item_end) - runs[-1][0].offset <= limit
            ):
                runs[-1].append(item)
                end = max(end, item_end)
            else:
                runs.append([item])
                end = item_end
        for run in runs:
            first = run[0].offset
            last = max(m.offset + m.count for m in run)
            requests.append(
                ReadRequest(
                    unit_id,
                    run[0].table,
                    first,
                    last - first,
                    tuple((m, m.offset - first) for m in run),
                )
            )
    return requests
