"""Shared-table MQTT 5 properties decode exactly what paho's own Properties decode."""

from __future__ import annotations

import struct

import paho.mqtt._packet as paho_packet
import pytest
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from circman5.connectors.mqtt.paho_properties import SharedTableProperties, install


def every_publish_property() -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.PayloadFormatIndicator = 1
    props.MessageExpiryInterval = 3600
    props.TopicAlias = 7
    props.ResponseTopic = "mes/line1/reply"
    props.CorrelationData = b"\x00\x01batch-42"
    props.UserProperty = ("line", "1")
    props.UserProperty = ("shift", "night")
    props.SubscriptionIdentifier = 12
    props.ContentType = "application/json"
    return props


def publish_body(topic: str, props: Properties | None, payload: bytes, qos: int = 1) -> bytes:
    """A PUBLISH packet after its fixed header, as paho's decoder receives it."""
    name = topic.encode()
    body = struct.pack("!H", len(name)) + name
    if qos:
        body += struct.pack("!H", 321)
    body += props.pack() if props is not None else b"\x00"
    return body + payload


@pytest.mark.parametrize("props", [every_publish_property(), None], ids=["all", "none"])
def test_unpack_gives_what_paho_gives(props: Properties | None) -> None:
    raw = props.pack() if props is not None else b"\x00"
    theirs = Properties(PacketTypes.PUBLISH)
    ours = SharedTableProperties(PacketTypes.PUBLISH)
    assert theirs.unpack(raw)[1] == ours.unpack(raw)[1] == len(raw)
    assert ours.json() == theirs.json()
    assert str(ours) == str(theirs)
    if props is not None:
        assert ours.UserProperty == [("line", "1"), ("shift", "night")]
        assert ours.CorrelationData == b"\x00\x01batch-42"
    # unpacking again into the same object starts from scratch, as paho's does
    ours.unpack(b"\x00")
    theirs.unpack(b"\x00")
    assert ours.isEmpty() and theirs.isEmpty()


def test_objects_share_the_tables_and_keep_their_own_properties() -> None:
    first = SharedTableProperties(PacketTypes.PUBLISH)
    second = SharedTableProperties(PacketTypes.PUBLISH)
    assert first.names is second.names and first.properties is second.properties
    first.ContentType = "text/plain"
    assert first.ContentType == "text/plain"
    assert not hasattr(second, "ContentType")
    with pytest.raises(Exception, match="Property name must be one of"):
        first.NotAProperty = 1
    before = dict(first.names)
    first.unpack(every_publish_property().pack())
    assert first.names == before  # decoding never touches the shared tables


def test_installed_decoder_decodes_the_same_packet() -> None:
    body = publish_body("mes/line1/wafer/consumption", every_publish_property(), b'{"kg": 2.5}')
    expected = Properties(PacketTypes.PUBLISH)
    expected.unpack(every_publish_property().pack())
    assert install() is True
    assert install() is True  # idempotent
    assert paho_packet.Properties is SharedTableProperties
    packet = paho_packet.decode_publish(0x32, body, MQTTProtocolVersion.MQTTv5)
    assert isinstance(packet.properties, SharedTableProperties)
    assert packet.properties.json() == expected.json()
    assert packet.topic == b"mes/line1/wafer/consumption"
    assert packet.mid == 321 and packet.qos == 1
    assert packet.payload == b'{"kg": 2.5}'
    empty = paho_packet.decode_publish(
        0x30, publish_body("t", None, b"21.5", qos=0), MQTTProtocolVersion.MQTTv5
    )
    assert empty.payload == b"21.5" and empty.properties.isEmpty()


def test_install_leaves_an_unknown_decoder_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    class SomebodyElses(Properties):
        pass

    monkeypatch.setattr(paho_packet, "Properties", SomebodyElses)
    assert install() is False
    assert paho_packet.Properties is SomebodyElses
