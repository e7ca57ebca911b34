"""Line protocol: escaping, field types, KPI flattening, and agreement with influxdb-client."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from influxdb_client.client.write.point import Point

from circman5.samples import Quality, Sample
from circman5.sinks.base import parse_retry_after
from circman5.sinks.line_protocol import (
    FieldValue,
    LineEncoder,
    escape_key,
    escape_measurement,
    escape_string,
    format_line,
    format_value,
)
from circman5.state_paths import numeric_leaves

TS = 1_700_000_000_123_456_789


def sample(value: object, path: str = "production_line.temperature", **kw: object) -> Sample:
    return Sample(
        source=str(kw.get("source", "plc")),
        address=str(kw.get("address", "ns=2;s=Temp")),
        path=path,
        value=value,  # type: ignore[arg-type]
        timestamp_ns=TS,
        quality=kw.get("quality", Quality.GOOD),  # type: ignore[arg-type]
    )


def test_float_sample_is_one_line_with_sorted_tags_and_ns_timestamp() -> None:
    enc = LineEncoder("plant-a", "line-2")
    assert enc.encode_sample(sample(23.5)) == (
        "sample,line=line-2,path=production_line.temperature,quality=good,site=plant-a,"
        f"source=plc value=23.5 {TS}\n"
    )


def test_field_per_value_type_keeps_one_type_per_field() -> None:
    enc = LineEncoder()
    prefix = "sample,line=line1,path=production_line.temperature,quality=good,site=site1,source=plc"
    lines = [enc.encode_sample(sample(v)) for v in (1.25, 42, True, False, 'say "hi"\\')]
    assert lines == [
        f"{prefix} value=1.25 {TS}\n",
        f"{prefix} value=42 {TS}\n",  # an int is a float by default: no conflict with 42.5
        f"{prefix} value_bool=true {TS}\n",
        f"{prefix} value_bool=false {TS}\n",
        f'{prefix} value_str="say \\"hi\\"\\\\" {TS}\n',
    ]


def test_integer_fields_option_writes_int64_with_i_suffix() -> None:
    enc = LineEncoder(integer_fields=True)
    assert f" value=-7i {TS}" in (enc.encode_sample(sample(-7)) or "")
    # beyond int64 an int can only be a float
    assert f" value=1e+19 {TS}" in (enc.encode_sample(sample(10**19)) or "")


def test_non_finite_and_unsupported_values_are_skipped_and_counted() -> None:
    enc = LineEncoder()
    payload, count = enc.encode_samples(
        [sample(math.nan), sample(math.inf), sample(-math.inf), sample(1.0), sample(None)]
    )
    assert count == 1
    assert payload.count(b"\n") == 1
    assert enc.skipped == 4


def test_escaping_of_measurement_tags_and_strings() -> None:
    enc = LineEncoder("site 1", "line,2", sample_measurement="my sample,x")
    line = enc.encode_sample(
        sample("a\nb", path="a=b c,d", source="src\\x", quality=Quality.UNCERTAIN)
    )
    assert line == (
        r"my\ sample\,x,line=line\,2,path=a\=b\ c\,d,quality=uncertain,site=site\ 1,"
        rf'source=src\x value_str="a\nb" {TS}' + "\n"
    )
    assert escape_measurement("m=1") == "m=1"  # '=' needs no escape in a measurement
    assert escape_key("tab\there") == r"tab\there"
    assert escape_key("trailing\\") == "trailing"  # cannot be written; dropped
    assert escape_string('q"b\\') == 'q\\"b\\\\'


def test_address_tag_and_empty_tags() -> None:
    enc = LineEncoder(address_tag=True)
    line = enc.encode_sample(sample(1.5, address="40001"))
    assert line is not None and ",address=40001," in line
    assert format_line("m", {"empty": "", "k": "v"}, {"f": 1.0}) == "m,k=v f=1"


def test_kpis_are_the_numeric_leaves_of_the_state() -> None:
    state = {
        "timestamp": "2025-01-01T00:00:00",
        "system_status": "running",
        "production_line": {"temperature": 22.5, "status": "running", "running": True},
        "materials": {"silicon_wafer": {"inventory": 1000, "quality": 0.95}},
        "bad": math.nan,
    }
    leaves = list(numeric_leaves(state))
    assert leaves[:3] == [
        ("production_line.temperature", 22.5),
        ("materials.silicon_wafer.inventory", 1000),
        ("materials.silicon_wafer.quality", 0.95),
    ]
    assert leaves[3][0] == "bad" and math.isnan(leaves[3][1])
    enc = LineEncoder()
    payload, count = enc.encode_state(state, TS)
    assert count == 3
    assert payload.decode().splitlines() == [
        f"twin_kpi,line=line1,path=production_line.temperature,site=site1 value=22.5 {TS}",
        f"twin_kpi,line=line1,path=materials.silicon_wafer.inventory,site=site1 value=1000 {TS}",
        f"twin_kpi,line=line1,path=materials.silicon_wafer.quality,site=site1 value=0.95 {TS}",
    ]
    assert enc.skipped == 1  # the NaN


def test_prefix_cache_holds_one_entry_per_series() -> None:
    enc = LineEncoder()
    samples = [
        sample(float(i), path=f"p{i % 5}", quality=(Quality.GOOD, Quality.BAD)[i % 2])
        for i in range(1000)
    ]
    payload, count = enc.encode_samples(samples)
    assert count == 1000
    assert len(enc._sample_prefixes) == 10
    assert payload.count(b"quality=bad") == 500


def test_format_value_types() -> None:
    assert format_value(True) == "true"
    assert format_value(3) == "3i"
    assert format_value(3.0) == "3"
    assert format_value(1e-7) == "1e-07"
    assert format_value("x") == '"x"'
    assert format_value(math.nan) is None
    assert format_value(2**70) == "1.1805916207174113e+21"


_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
_tag_value = _text.filter(lambda t: not t.endswith("\\"))
_field_value = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)


@given(
    measurement=_text.filter(lambda t: t and not t.startswith("#") and not t.endswith("\\")),
    tags=st.dictionaries(_tag_value.filter(bool), _tag_value, max_size=4),
    fields=st.dictionaries(_tag_value.filter(bool), _field_value, min_size=1, max_size=4),
    ts=st.integers(0, 2**62),
)
def test_format_line_matches_influxdb_client_point(
    measurement: str, tags: dict[str, str], fields: dict[str, FieldValue], ts: int
) -> None:
    point = Point(measurement).time(ts)  # type: ignore[no-untyped-call]
    for tag, text in tags.items():
        point.tag(tag, text)
    for key, value in fields.items():
        point.field(key, value)
    assert format_line(measurement, tags, fields, ts) == point.to_line_protocol()


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    when = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert parse_retry_after(when, now=1445412470.0) == 10.0
    assert parse_retry_after(when, now=1445412490.0) == 0.0
