"""MQTT topic patterns -> twin paths, JSON field extraction, node id parsing."""

from __future__ import annotations

import pytest

from circman5.connectors.mqtt.topics import (
    TopicPattern,
    extract_field,
    parse_plain_number,
    validate_topic_filter,
)
from circman5.connectors.opcua.nodeid import parse_node_address


def test_plus_wildcard_capture() -> None:
    pattern = TopicPattern("mes/line1/+/consumption", "materials.{1}.consumption")
    captures = pattern.match("mes/line1/silicon_wafer/consumption")
    assert captures == ("silicon_wafer",)
    assert pattern.path_for(captures) == "materials.silicon_wafer.consumption"
    assert pattern.match("mes/line1/silicon_wafer/inventory") is None
    assert pattern.match("mes/line1/a/b/consumption") is None
    assert pattern.match("mes/line1/consumption") is None


def test_two_wildcards_in_any_order() -> None:
    pattern = TopicPattern("plant/+/+/value", "{2}.{1}")
    captures = pattern.match("plant/hall2/humidity/value")
    assert captures == ("hall2", "humidity")
    assert pattern.path_for(captures) == "humidity.hall2"


def test_hash_wildcard_joins_levels() -> None:
    pattern = TopicPattern("raw/#", "raw.{1}")
    assert pattern.path_for(pattern.match("raw/hall2/humidity")) == "raw.hall2.humidity"  # type: ignore[arg-type]
    assert pattern.match("raw") == ("",)
    assert pattern.match("other/x") is None


def test_wildcards_do_not_match_dollar_topics() -> None:
    assert TopicPattern("+/x", "a.{1}").match("$SYS/x") is None
    assert TopicPattern("#", "a.{1}").match("$SYS/broker/load") is None


def test_fixed_topic() -> None:
    pattern = TopicPattern("plant/temp", "production_line.temperature")
    assert pattern.match("plant/temp") == ()
    assert pattern.path_for(()) == "production_line.temperature"


def test_capture_that_is_not_a_path_part_is_refused() -> None:
    pattern = TopicPattern("mes/+/value", "materials.{1}.value")
    with pytest.raises(ValueError, match="cannot be part of a twin path"):
        pattern.path_for(pattern.match("mes/9-bad name/value"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("topic", "template", "reason"),
    [
        ("a/#/b", "x.y", "'#' must be the whole last level"),
        ("a/b+/c", "x.{1}", "'+' must be a whole level"),
        ("", "x.y", "empty topic filter"),
        ("a/+", "x.{2}", "placeholder {2}"),
        ("a/b", "x.{1}", "no wildcards"),
        ("a/+", "single", "is not a twin path"),
    ],
)
def test_invalid_patterns(topic: str, template: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("{", r"\{").replace("+", r"\+")):
        validate_topic_filter(topic)
        TopicPattern(topic, template)


def test_extract_field() -> None:
    document = {"value": 1.5, "data": {"temperature": 23.0, "items": [{"v": 7}]}}
    assert extract_field(document, ("value",)) == 1.5
    assert extract_field(document, ("data", "temperature")) == 23.0
    assert extract_field(document, ("data", "items", "0", "v")) == 7
    with pytest.raises(KeyError):
        extract_field(document, ("data", "missing"))
    with pytest.raises(KeyError):
        extract_field(document, ("value", "deeper"))


def test_plain_numbers() -> None:
    assert parse_plain_number(b" 23.5\n") == 23.5
    assert parse_plain_number(b"-4") == -4.0
    for bad in (b"nan", b"inf", b"abc", b""):
        with pytest.raises(ValueError):
            parse_plain_number(bad)


def test_node_addresses() -> None:
    node = parse_node_address("nsu=urn:circman5:sim:plc;s=Line1.Laminator.Temperature")
    assert (node.namespace_uri, node.kind, node.identifier) == (
        "urn:circman5:sim:plc",
        "s",
        "Line1.Laminator.Temperature",
    )
    assert str(node) == "nsu=urn:circman5:sim:plc;s=Line1.Laminator.Temperature"
    assert parse_node_address("i=2258").namespace_uri is None
    assert parse_node_address("ns=0;i=2258").identifier == 2258
    assert parse_node_address("s=Tag1", "urn:x").namespace_uri == "urn:x"
    assert parse_node_address("nsu=http://opcfoundation.org/UA/;i=85").namespace_uri is None
    guid = parse_node_address("nsu=urn:x;g=09087e75-8e5e-499b-954f-f2a9603db28a")
    assert guid.kind == "g"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ns=2;s=Line1.X", "namespace index"),
        ("s=Line1.X", "has no namespace"),
        ("nsu=urn:x;i=abc", "not an unsigned integer"),
        ("nsu=urn:x;i=4294967296", "UInt32"),
        ("nsu=urn:x;g=not-a-guid", "not a GUID"),
        ("Line1.X", "not an OPC UA node id"),
        ("nsu=urn:x;s=", "empty identifier"),
    ],
)
def test_bad_node_addresses(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_node_address(text)


@pytest.mark.parametrize(
    ("topic_filter", "template", "topic", "reason"),
    [
        # a dot would split the level into several path levels (materials.x.y.inventory)
        ("mes/line1/+/inventory", "materials.{1}.inventory", "mes/line1/x.y/inventory", "'.'"),
        ("raw/#", "raw.{1}", "raw/hall2/x.y", "'.'"),
        ("mes/+/value", "materials.{1}.value", "mes/line-1/value", "other than letters"),
        ("mes/+/value", "materials.{1}.value", "mes/line 1/value", "other than letters"),
        ("mes/+/value", "materials.{1}.value", "mes//value", "empty topic level"),
        # digits only as a segment of its own: not a name
        ("bench/seq/+", "bench.{1}", "bench/seq/0", "must start with a letter"),
        ("raw/#", "raw.{1}", "raw/hall2/2", "must start with a letter"),
        ("raw/#", "raw.{1}", "raw", "empty topic level"),
    ],
)
def test_captured_levels_that_are_not_one_segment_are_refused(
    topic_filter: str, template: str, topic: str, reason: str
) -> None:
    pattern = TopicPattern(topic_filter, template)
    captures = pattern.match(topic)
    assert captures is not None
    with pytest.raises(ValueError, match=reason):
        pattern.path_for(captures)


@pytest.mark.parametrize(
    ("topic_filter", "template", "topic", "path"),
    [
        ("bench/seq/+", "bench.seq_{1}", "bench/seq/0", "bench.seq_0"),
        ("bench/+/+", "bench.{1}_{2}", "bench/seq/42", "bench.seq_42"),
        ("raw/#", "raw.{1}", "raw/hall2/humidity", "raw.hall2.humidity"),
        ("raw/#", "raw.x_{1}", "raw/2/y", "raw.x_2.y"),
        (
            "mes/+/value",
            "materials.{1}.value",
            "mes/Silicon_Wafer2/value",
            "materials.Silicon_Wafer2.value",
        ),
    ],
)
def test_captured_levels_that_make_a_valid_path_are_accepted(
    topic_filter: str, template: str, topic: str, path: str
) -> None:
    pattern = TopicPattern(topic_filter, template)
    captures = pattern.match(topic)
    assert captures is not None
    assert pattern.path_for(captures) == path
