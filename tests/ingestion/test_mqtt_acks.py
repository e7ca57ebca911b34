"""Acknowledge-after-durable: the MQTT connector acknowledges QoS 1/2 only when told, in order.

The broker is the judge: a message that was not acknowledged is delivered again to the
persistent session after a reconnect; one that was acknowledged is not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from circman5.connectors.mqtt.acks import InOrderAcks
from circman5.connectors.mqtt.client import MqttConnector
from circman5.samples import Sample, SampleBatch, acks_of, fire_acks
from simulators.external import Mosquitto
from tests.ingestion.conftest import eventually
from tests.ingestion.test_mqtt import apublish, settings

TAGS = [{"address": "acks/seq", "path": "acks.seq", "field": "seq"}]


def test_acks_go_out_in_receive_order_whatever_order_the_tokens_fire() -> None:
    sent: list[int] = []
    acks = InOrderAcks(lambda mid, qos: sent.append(mid))
    for mid in (1, 2):
        acks.received(mid, 1, link=1)
    first = acks.token()
    acks.received(3, 2, link=1)
    second = acks.token()
    assert first is not None and second is not None
    assert acks.token() is None  # nothing new since the last token
    second()
    assert sent == []  # the earlier messages are not durable yet
    first()
    assert sent == [1, 2, 3]
    acks.received(4, 1, link=1)
    acks.handled()  # nothing to store, nothing ahead of it: at once
    assert sent == [1, 2, 3, 4]
    acks.received(5, 1, link=1)
    stale = acks.token()
    acks.received(1, 1, link=2)  # a new connection: message ids start over
    assert stale is not None
    stale()  # from the old connection: never acknowledged on the new one
    assert sent == [1, 2, 3, 4]
    acks.received(9, 1, link=1)  # late from the old connection: ignored
    acks.handled()
    assert sent == [1, 2, 3, 4, 1]
    assert (acks.unacked, acks.acked) == (0, 5)


@asynccontextmanager
async def session(port: int, protocol: str) -> AsyncIterator[tuple[MqttConnector, list[Any]]]:
    """The connector on a persistent session; yields it and the batches it delivered."""
    config = settings(
        port, TAGS, protocol=protocol, qos=1, client_id=f"acks-{protocol}", clean_start=False
    )
    connector = MqttConnector(config)
    batches: list[list[Sample]] = []

    async def read() -> None:
        async for batch in connector.batches():
            batches.append(batch)

    async with connector, asyncio.TaskGroup() as tg:
        reader = tg.create_task(read())
        async with asyncio.timeout(10):
            await connector.wait_connected()
        try:
            yield connector, batches
        finally:
            reader.cancel()


def values(batches: list[list[Sample]]) -> list[float]:
    return [float(s.value) for batch in batches for s in batch]


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_unacknowledged_messages_come_back_acknowledged_ones_do_not(
    mosquitto: Mosquitto, protocol: str
) -> None:
    port = mosquitto.port
    async with session(port, protocol) as (connector, batches):
        await asyncio.sleep(0.3)  # the SUBACK
        messages = [("acks/seq", f'{{"seq": {n}}}', 1) for n in range(5)]
        messages.insert(2, ("acks/seq", "not json", 1))  # malformed: acknowledged when handled
        await apublish(port, messages)
        await eventually(lambda: len(values(batches)) == 5, 10, "5 samples")
        await eventually(lambda: connector.status.malformed == 1, 10, "the malformed one")
        first = list(batches)
        # the malformed message came after two good ones: it waits for them (acks in order)
        assert connector.status.extra["unacknowledged"] == 6
    assert all(type(b) is SampleBatch and acks_of(b) for b in first)
    # never acknowledged: the broker delivers them again to the session (the malformed one too,
    # but it stays unacknowledged only while an earlier message is: here it rode with them)
    async with session(port, protocol) as (connector, batches):
        await eventually(lambda: len(values(batches)) >= 5, 10, "the redelivery")
        assert sorted(set(values(batches))) == [0.0, 1.0, 2.0, 3.0, 4.0]
        for batch in batches:
            fire_acks(acks_of(batch))  # now durable
        await eventually(lambda: connector._acks.unacked == 0, 10, "the acknowledgements")
    async with session(port, protocol) as (_, batches):
        await asyncio.sleep(0.3)
        await apublish(port, [("acks/seq", '{"seq": 99}', 1)])
        await eventually(lambda: 99.0 in values(batches), 10, "the new message")
        assert values(batches) == [99.0]
        for batch in batches:
            fire_acks(acks_of(batch))
    # a redelivery, had there been one, comes before anything new
    async with session(port, protocol) as (_, batches):
        await asyncio.sleep(0.3)
        await apublish(port, [("acks/seq", '{"seq": 100}', 1)])
        await eventually(lambda: 100.0 in values(batches), 10, "the next new message")
        assert values(batches) == [100.0]


async def test_receipt_mode_acknowledges_at_once(mosquitto: Mosquitto) -> None:
    port = mosquitto.port
    config = settings(
        port, TAGS, qos=1, client_id="acks-receipt", clean_start=False, acknowledge="receipt"
    )
    for seq in (1, 2):  # the second session sees its own message only: nothing came back
        got: list[float] = []
        connector = MqttConnector(config)
        async with connector:
            async with asyncio.timeout(10):
                await connector.wait_connected()
            await asyncio.sleep(0.3)  # the SUBACK
            await apublish(port, [("acks/seq", f'{{"seq": {seq}}}', 1)])
            async with asyncio.timeout(10):
                async for batch in connector.batches():
                    assert acks_of(batch) == []
                    got += [float(s.value) for s in batch]
                    if float(seq) in got:
                        break
        assert got == [float(seq)]


async def test_a_qos2_exchange_left_open_by_a_crash_is_completed_not_kept_in_flight(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # an in-flight window of one: a QoS 2 message the broker keeps waiting for blocks the next
    with Mosquitto(tmp_path_factory.mktemp("window1"), extra_config="max_inflight_messages 1") as b:
        config = settings(b.port, TAGS, qos=2, client_id="acks-qos2", clean_start=False)
        first = MqttConnector(config)
        async with first:
            async with asyncio.timeout(10):
                await first.wait_connected()
            await asyncio.sleep(0.3)  # the SUBACK
            await apublish(b.port, [("acks/seq", '{"seq": 1}', 2)])
            async with asyncio.timeout(10):
                async for batch in first.batches():
                    assert [s.value for s in batch] == [1.0]
                    break  # never acknowledged (PUBCOMP): as if the process died here
        second = MqttConnector(config)  # a new process: the broker resends PUBREL for seq 1
        async with second:
            async with asyncio.timeout(10):
                await second.wait_connected()
            await apublish(b.port, [("acks/seq", '{"seq": 2}', 2)])
            got: list[float] = []
            async with asyncio.timeout(10):
                async for batch in second.batches():
                    got += [float(s.value) for s in batch]
                    fire_acks(acks_of(batch))
                    if 2.0 in got:
                        break
        assert got == [2.0]


def test_a_token_releases_its_acknowledgements_together_in_order() -> None:
    single: list[int] = []
    groups: list[list[tuple[int, int]]] = []
    acks = InOrderAcks(lambda mid, qos: single.append(mid), groups.append)
    for mid in (1, 2, 3):
        acks.received(mid, 1, link=1)
    first = acks.token()
    acks.received(4, 2, link=1)
    second = acks.token()
    assert first is not None and second is not None
    second()
    assert groups == []  # waits for the earlier token
    first()
    assert groups == [[(1, 1), (2, 1), (3, 1), (4, 2)]]  # both tokens, one write
    assert single == [] and (acks.unacked, acks.acked) == (0, 4)
