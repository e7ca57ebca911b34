"""Modbus codecs: every data type, byte order and word order, strings, bits, range checks."""

from __future__ import annotations

import math
import struct

import pytest

from circman5.connectors.modbus.codec import DATA_TYPES, TagCodec, block_buffers, register_count

# 32-bit value with bytes A B C D = 0x11 0x22 0x33 0x44, in the four classic layouts.
LAYOUTS_32 = {
    ("big", "big"): [0x1122, 0x3344],  # ABCD
    ("big", "little"): [0x3344, 0x1122],  # CDAB
    ("little", "big"): [0x2211, 0x4433],  # BADC
    ("little", "little"): [0x4433, 0x2211],  # DCBA
}


@pytest.mark.parametrize(("byte_order", "word_order"), list(LAYOUTS_32))
def test_uint32_layouts(byte_order: str, word_order: str) -> None:
    codec = TagCodec("uint32", byte_order, word_order)
    registers = LAYOUTS_32[(byte_order, word_order)]
    assert codec.decode(registers) == 0x11223344
    assert codec.encode(0x11223344) == registers


@pytest.mark.parametrize(("byte_order", "word_order"), list(LAYOUTS_32))
def test_float32_layouts(byte_order: str, word_order: str) -> None:
    raw = struct.pack(">f", 123.456)  # A B C D
    a, b, c, d = raw
    expected = {
        ("big", "big"): [(a << 8) | b, (c << 8) | d],
        ("big", "little"): [(c << 8) | d, (a << 8) | b],
        ("little", "big"): [(b << 8) | a, (d << 8) | c],
        ("little", "little"): [(d << 8) | c, (b << 8) | a],
    }[(byte_order, word_order)]
    codec = TagCodec("float32", byte_order, word_order)
    assert codec.encode(123.456) == expected
    assert codec.decode(expected) == pytest.approx(123.456, rel=1e-6)


@pytest.mark.parametrize("data_type", ["int64", "uint64", "float64"])
@pytest.mark.parametrize(("byte_order", "word_order"), list(LAYOUTS_32))
def test_64_bit_word_order(data_type: str, byte_order: str, word_order: str) -> None:
    value = -1234567890123 if data_type == "int64" else 1234567890123
    if data_type == "float64":
        value = -9876.54321  # type: ignore[assignment]
    codec = TagCodec(data_type, byte_order, word_order)
    words = codec.encode(value)
    assert len(words) == 4
    assert codec.decode(words) == value
    # Word order "big" puts the most significant word first; "little" reverses the words.
    big = TagCodec(data_type, byte_order, "big").encode(value)
    assert (words == big) == (word_order == "big")
    if word_order == "little":
        assert words == list(reversed(big))


@pytest.mark.parametrize(
    ("data_type", "words", "value"),
    [
        ("int16", [0xFFFE], -2),
        ("int16", [0x7FFF], 32767),
        ("uint16", [0xFFFE], 65534),
        ("int32", [0xFFFF, 0xFFFE], -2),
        ("uint32", [0x0001, 0x0000], 65536),
        ("float32", [0x41BC, 0x0000], 23.5),
        ("float64", [0x4037, 0x8000, 0x0000, 0x0000], 23.5),
        ("int64", [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF], -1),
        ("uint64", [0x0000, 0x0000, 0x0001, 0x0000], 65536),
    ],
)
def test_known_values_big_endian(data_type: str, words: list[int], value: float) -> None:
    codec = TagCodec(data_type)
    assert codec.decode(words) == value
    assert codec.encode(value) == words


def test_int16_byte_swap() -> None:
    assert TagCodec("int16", "little").decode([0xFEFF]) == -2
    assert TagCodec("uint16", "little").encode(0x1234) == [0x3412]


def test_string_both_byte_orders() -> None:
    big = TagCodec("string", length=4)
    words = big.encode("PV-42")
    assert words == [0x5056, 0x2D34, 0x3200, 0x0000]
    assert big.decode(words) == "PV-42"
    little = TagCodec("string", "little", length=4)
    swapped = little.encode("PV-42")
    assert swapped == [0x5650, 0x342D, 0x0032, 0x0000]
    assert little.decode(swapped) == "PV-42"
    with pytest.raises(ValueError, match="does not fit"):
        big.encode("much too long for eight bytes")


def test_bits_of_a_register() -> None:
    word = [0b1000_0000_0000_0101]
    assert TagCodec("bit", bit=0).decode(word) is True
    assert TagCodec("bit", bit=1).decode(word) is False
    assert TagCodec("bit", bit=2).decode(word) is True
    assert TagCodec("bit", bit=15).decode(word) is True
    # Byte order little: bit numbers refer to the register value after the byte swap.
    assert TagCodec("bit", "little", bit=8).decode([0x0001]) is True
    with pytest.raises(ValueError):
        TagCodec("bit", bit=3).encode(True)


def test_decode_at_offsets_in_a_block() -> None:
    registers = [0x41BC, 0x0000, 0xFFFE, 0x5056, 0x0000]
    buffers = block_buffers(registers)
    assert TagCodec("float32").decode_at(buffers, 0) == 23.5
    assert TagCodec("int16").decode_at(buffers, 2) == -2
    assert TagCodec("string", length=2).decode_at(buffers, 3) == "PV"


@pytest.mark.parametrize(
    ("data_type", "value"),
    [("int16", 40000), ("uint16", -1), ("int32", 2**31), ("uint32", -5), ("uint64", 2**64)],
)
def test_out_of_range_writes_are_refused(data_type: str, value: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        TagCodec(data_type).encode(value)


def test_non_finite_float_writes_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        TagCodec("float32").encode(math.nan)


def test_float_to_int_rounds() -> None:
    assert TagCodec("int16").encode(12.6) == [13]
    assert TagCodec("uint16").encode(12.0) == [12]


def test_register_counts() -> None:
    counts = {dt: register_count(dt, 3) for dt in DATA_TYPES}
    assert counts == {
        "int16": 1,
        "uint16": 1,
        "int32": 2,
        "uint32": 2,
        "int64": 4,
        "uint64": 4,
        "float32": 2,
        "float64": 4,
        "string": 3,
        "bit": 1,
    }
    with pytest.raises(ValueError):
        register_count("string")
