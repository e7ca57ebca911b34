"""Modbus register codecs (pure Python): every data type, byte order and word order.

Registers are 16-bit words. ``byte_order`` is the order of the two bytes inside each register
(``big``: high byte first, the Modbus standard); ``word_order`` is the order of the registers of a
multi-register value (``big``: most significant register first). For a 32-bit value with bytes
``A B C D`` (``A`` most significant) the four layouts are::

    byte_order  word_order  registers        often called
    big         big         [AB] [CD]        ABCD (big endian)
    big         little      [CD] [AB]        CDAB (word swap)
    little      big         [BA] [DC]        BADC (byte swap)
    little      little      [DC] [BA]        DCBA (little endian)

Strings fill ``length`` registers, two characters per register in ``byte_order`` (word order does
not apply); trailing NULs and spaces are stripped. ``bit`` reads one bit (0 = least significant)
of a register. Coils and discrete inputs are bits too.

Decoding a block goes through :func:`block_buffers` (two byte strings built once per response) and
one precompiled :class:`TagCodec` per tag, so a 125-register response costs one ``struct.pack``
plus one ``unpack_from`` per tag.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

DataType = Literal[
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
    "string",
    "bit",
]
Order = Literal["big", "little"]

DATA_TYPES: tuple[str, ...] = get_args(DataType)

_FORMAT: dict[str, tuple[str, int]] = {
    # struct code, registers
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "int64": ("q", 4),
    "uint64": ("Q", 4),
    "float32": ("f", 2),
    "float64": ("d", 4),
}

_INT_RANGES: dict[str, tuple[int, int]] = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}


def register_count(data_type: str, length: int | None = None) -> int:
    """How many registers a value of ``data_type`` occupies (``length`` for strings)."""
    if data_type == "string":
        if not length or length < 1:
            raise ValueError("a string tag needs length >= 1 (registers)")
        return length
    if data_type == "bit":
        return 1
    return _FORMAT[data_type][1]


def block_buffers(registers: Sequence[int]) -> tuple[bytes, bytes]:
    """The registers as bytes, high byte first (``big``) and low byte first (``little``)."""
    count = len(registers)
    return struct.pack(f">{count}H", *registers), struct.pack(f"<{count}H", *registers)


def _layout(byte_order: str, word_order: str) -> tuple[int, str]:
    # Which buffer to read (0 big, 1 little) and the struct endianness; see the module doc.
    return (0 if byte_order == word_order else 1), (">" if word_order == "big" else "<")


@dataclass(frozen=True, slots=True)
class TagCodec:
    """Decodes one tag from a block's buffers at register ``offset``, and encodes writes."""

    data_type: str
    byte_order: str = "big"
    word_order: str = "big"
    length: int | None = None
    bit: int | None = None

    @property
    def registers(self) -> int:
        return register_count(self.data_type, self.length)

    def decode_at(self, buffers: tuple[bytes, bytes], offset: int) -> float | int | bool | str:
        """The value at register ``offset`` of a block (``buffers`` from :func:`block_buffers`)."""
        dt = self.data_type
        if dt == "string":
            # Characters in register order; byte order picks the buffer, word order is unused.
            buffer = buffers[0 if self.byte_order == "big" else 1]
            raw = buffer[2 * offset : 2 * (offset + self.registers)]
            return raw.decode("latin-1").rstrip("\x00 ")
        if dt == "bit":
            which = 0 if self.byte_order == "big" else 1
            word: int = struct.unpack_from(">H", buffers[which], 2 * offset)[0]
            return bool((word >> (self.bit or 0)) & 1)
        which, endian = _layout(self.byte_order, self.word_order)
        code, _ = _FORMAT[dt]
        value: float | int = struct.unpack_from(endian + code, buffers[which], 2 * offset)[0]
        return value

    def decode(self, registers: Sequence[int]) -> float | int | bool | str:
        """The value of exactly this tag's registers."""
        if len(registers) < self.registers:
            raise ValueError(f"{self.data_type} needs {self.registers} registers")
        return self.decode_at(block_buffers(registers[: self.registers]), 0)

    def encode(self, value: float | int | bool | str) -> list[int]:
        """The registers to write for ``value`` (``ValueError`` if it does not fit)."""
        dt = self.data_type
        if dt == "string":
            text = str(value).encode("latin-1", errors="strict")
            size = 2 * self.registers
            if len(text) > size:
                raise ValueError(f"string of {len(text)} bytes does not fit in {size} bytes")
            raw = text.ljust(size, b"\x00")
            count = self.registers
            endian = ">" if self.byte_order == "big" else "<"
            return list(struct.unpack(f"{endian}{count}H", raw))
        if dt == "bit":
            raise ValueError("a bit inside a register cannot be written on its own")
        code, count = _FORMAT[dt]
        if code in "fd":
            number: float | int = float(value)
            if not math.isfinite(number):
                raise ValueError(f"{value!r} is not a finite number")
        else:
            if isinstance(value, float) and not value.is_integer():
                value = round(value)
            number = int(value)
            low, high = _INT_RANGES[dt]
            if not low <= number <= high:
                raise ValueError(f"{number} is outside the {dt} range [{low}, {high}]")
        which, endian = _layout(self.byte_order, self.word_order)
        try:
            raw = struct.pack(endian + code, number)
        except (struct.error, OverflowError) as err:
            raise ValueError(f"{value!r} does not fit in {dt}: {err}") from err
        return list(struct.unpack(f"{'>' if which == 0 else '<'}{count}H", raw))


class BlockDecoder:
    """Decodes every tag of one read response with as few ``struct`` calls as possible.

    ``entries`` are ``(register offset in the response, codec)``. Numeric tags that share a
    byte/word layout and do not overlap are read with one precompiled ``struct.Struct`` (pad
    bytes over the gaps); strings, bits and overlapping tags are decoded one by one.
    :meth:`decode` returns the values in the order of ``entries``.
    """

    def __init__(self, entries: Sequence[tuple[int, TagCodec]]) -> None:
        self._size = len(entries)
        groups: dict[tuple[int, str], list[tuple[int, TagCodec, int]]] = {}
        slow: list[tuple[int, int, TagCodec]] = []
        for index, (offset, codec) in enumerate(entries):
            if codec.data_type in _FORMAT:
                which, endian = _layout(codec.byte_order, codec.word_order)
                groups.setdefault((which, endian), []).append((offset, codec, index))
            else:
                slow.append((index, offset, codec))
        self._groups: list[tuple[int, struct.Struct, list[int]]] = []
        for (which, endian), members in groups.items():
            members.sort(key=lambda m: m[0])
            parts: list[str] = [endian]
            cursor = 0
            order: list[int] = []
            for offset, codec, index in members:
                if offset < cursor:
                    slow.append((index, offset, codec))
                    continue
                if offset > cursor:
                    parts.append(f"{2 * (offset - cursor)}x")
                code, count = _FORMAT[codec.data_type]
                parts.append(code)
                cursor = offset + count
                order.append(index)
            self._groups.append((which, struct.Struct("".join(parts)), order))
        self._slow = slow
        self._identity = (
            len(self._groups) == 1 and not slow and self._groups[0][2] == list(range(self._size))
        )
        self._needs_little = any(which == 1 for which, _, _ in self._groups) or any(
            codec.byte_order != "big" for _, _, codec in slow
        )

    def decode(self, registers: Sequence[int]) -> list[float | int | bool | str]:
        count = len(registers)
        big = struct.pack(f">{count}H", *registers)
        little = struct.pack(f"<{count}H", *registers) if self._needs_little else big
        buffers = (big, little)
        if self._identity:
            which, layout, _ = self._groups[0]
            return list(layout.unpack_from(buffers[which], 0))
        values: list[float | int | bool | str] = [0] * self._size
        for which, layout, order in self._groups:
            for index, value in zip(order, layout.unpack_from(buffers[which], 0), strict=True):
                values[index] = value
        for index, offset, codec in self._slow:
            values[index] = codec.decode_at(buffers, offset)
        return values
