"""Sparkplug B DDATA ingest: the host connector's decode path against a bare decode-by-alias loop.

Both sides get the same pre-encoded DDATA payloads (10 or 100 metrics by alias, Double, Int32
and Boolean, each with its own timestamp, ``seq`` counting on) and turn every metric into a
:class:`Sample` with the same constructor and the same ``protobuf`` classes. The connector's
path is :meth:`SparkplugConnector.handle`, what its drain runs per message: topic lookup,
protobuf parse, ``seq`` check, alias -> binding, value by data type, finite check, sample time.
The baseline only parses and looks each alias up in a dict. Target: at least 0.85x the
baseline's metric rate. (The network and paho's thread are the same for both and left out;
the MQTT connector's benchmark in ``ingestion`` measures a broker end to end.)

Also the edge node's NDATA publish rate (:func:`bench_edge_ndata`): metrics per second the twin's
Sparkplug output encodes and publishes to a real mosquitto, against a bare protobuf + paho loop.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.report import Row
from circman5.connectors.sparkplug import payload as spb
from circman5.connectors.sparkplug.client import SparkplugConnector
from circman5.connectors.sparkplug.config import SparkplugConnectorSettings
from circman5.samples import Quality, Sample, make_sample

RATIO = 0.85
GROUP, NODE, DEVICE = "Plant1", "gw1", "press"
T0_MS = 1_767_323_045_000
TYPES = [(spb.DOUBLE, "double_value"), (spb.INT32, "int_value"), (spb.BOOLEAN, "boolean_value")]


def _metric_type(index: int) -> tuple[int, str]:
    return TYPES[0] if index % 5 < 3 else TYPES[1] if index % 5 == 3 else TYPES[2]


def _set_value(metric: spb.Metric, datatype: int, index: int, step: int) -> None:
    if datatype == spb.DOUBLE:
        metric.double_value = 20.0 + index + step * 0.01
    elif datatype == spb.INT32:
        metric.int_value = (index * step) & 0x7FFF_FFFF
    else:
        metric.boolean_value = bool(step & 1)


def _births(count: int) -> tuple[bytes, bytes]:
    node = spb.Payload(timestamp=T0_MS, seq=0)
    bd = node.metrics.add(name=spb.BD_SEQ, datatype=spb.UINT64)
    bd.long_value = 0
    device = spb.Payload(timestamp=T0_MS, seq=1)
    for index in range(count):
        datatype, _ = _metric_type(index)
        metric = device.metrics.add(name=f"m{index}", alias=index, datatype=datatype)
        _set_value(metric, datatype, index, 0)
    return node.SerializeToString(), device.SerializeToString()


def _data(count: int) -> list[bytes]:
    """256 DDATA payloads whose ``seq`` continues from the DBIRTH (1) and wraps."""
    out = []
    for step in range(256):
        message = spb.Payload(timestamp=T0_MS + step, seq=(2 + step) % 256)
        for index in range(count):
            datatype, _ = _metric_type(index)
            metric = message.metrics.add(alias=index, datatype=datatype, timestamp=T0_MS + step)
            _set_value(metric, datatype, index, step + 1)
        out.append(message.SerializeToString())
    return out


def _connector(count: int) -> SparkplugConnector:
    settings = SparkplugConnectorSettings.model_validate(
        {
            "type": "sparkplug",
            "name": "bench",
            "tags": [
                {"address": f"{GROUP}/+/+/m{index}", "path": f"bench.{{1}}.{{2}}.m{index}"}
                for index in range(count)
            ],
        }
    )
    connector = SparkplugConnector(settings)
    nbirth, dbirth = _births(count)
    out: list[Sample] = []
    now = time.time_ns()
    connector.handle(f"spBv1.0/{GROUP}/NBIRTH/{NODE}".encode(), nbirth, now, out)
    connector.handle(f"spBv1.0/{GROUP}/DBIRTH/{NODE}/{DEVICE}".encode(), dbirth, now, out)
    assert len(out) == count, "the birth must bind every metric"
    return connector


def _connector_pass(count: int) -> Callable[[list[bytes], list[Sample]], None]:
    connector = _connector(count)
    topic = f"spBv1.0/{GROUP}/DDATA/{NODE}/{DEVICE}".encode()
    handle = connector.handle

    def one_pass(payloads: list[bytes], out: list[Sample]) -> None:
        now = time.time_ns()
        for data in payloads:
            handle(topic, data, now, out)
        assert connector.stats.seq_gaps == 0 and connector.stats.rebirth_requests == 0

    return one_pass


def _bare_pass(count: int) -> Callable[[list[bytes], list[Sample]], None]:
    """Parse with the same protobuf classes; alias -> (field, address, path) in a dict."""
    table = {
        index: (
            _metric_type(index)[1],
            f"{GROUP}/{NODE}/{DEVICE}/m{index}",
            f"bench.{NODE}.{DEVICE}.m{index}",
        )
        for index in range(count)
    }
    parse = spb.Payload.FromString
    make = make_sample
    good = Quality.GOOD

    def one_pass(payloads: list[bytes], out: list[Sample]) -> None:
        append = out.append
        for data in payloads:
            message = parse(data)
            for metric in message.metrics:
                field, address, path = table[metric.alias]
                value = getattr(metric, field)
                append(make("bench", address, path, value, metric.timestamp * 1_000_000, good))

    return one_pass


def bench_ddata(count: int, rounds: int = 60) -> Row:
    """Alternate one pass over the 256 payloads of each side, ``rounds`` times; each side's
    figure is its fastest pass in CPU time of this thread (what other processes on a shared
    machine take does not count against either side)."""
    payloads = _data(count)
    sides = {"bare": _bare_pass(count), "connector": _connector_pass(count)}
    best = {name: math.inf for name in sides}
    out: list[Sample] = []
    for _ in range(rounds):
        for name, one_pass in sides.items():
            start = time.thread_time()
            one_pass(payloads, out)
            elapsed = time.thread_time() - start
            assert len(out) == count * len(payloads)
            out.clear()
            best[name] = min(best[name], elapsed)
    per_pass = count * len(payloads)
    bare, ours = per_pass / best["bare"], per_pass / best["connector"]
    return Row(
        name=f"Sparkplug DDATA ingest, {count} metrics/payload (decode by alias -> Samples)",
        value=ours,
        unit="metrics/s",
        target=RATIO * bare,
        baseline=bare,
        baseline_label="bare protobuf decode-by-alias loop",
    )


# -- the edge node: NDATA publish rate -------------------------------------------------------

EDGE_RATIO = 0.5
EDGE_TICKS = 200


def _edge_values(count: int, tick: int) -> dict[str, float]:
    return {f"bench.section.m{index}": 20.0 + index + tick * 0.01 for index in range(count)}


def _flush(client: Any) -> None:
    """Wait until paho wrote everything queued before this marker to mosquitto's socket."""
    info = client.publish("bench/marker", b"", qos=0)
    info.wait_for_publish(10.0)


async def _edge_rates(count: int, rounds: int) -> tuple[float, float]:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from circman5.connectors.sparkplug.edge_config import SparkplugEdgeSettings
    from circman5.connectors.sparkplug.edge_node import SparkplugEdgeNode
    from simulators.external import Mosquitto

    with tempfile.TemporaryDirectory(prefix="bench-spb-") as tmp, Mosquitto(Path(tmp)) as broker:
        settings = SparkplugEdgeSettings(port=broker.port, group_id=GROUP, edge_node_id="edge")
        bare = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare")
        bare.connect("127.0.0.1", broker.port)
        bare.loop_start()
        try:
            async with SparkplugEdgeNode(settings) as node:
                node.update(_edge_values(count, 0))
                await asyncio.wait_for(node.connected.wait(), 15)
                client = node._client
                assert client is not None
                topic = f"spBv1.0/{GROUP}/NDATA/bare"
                aliases = list(range(1, count + 1))
                seq = 0

                def edge_pass(first_tick: int) -> None:
                    for tick in range(first_tick, first_tick + EDGE_TICKS):
                        node.update(_edge_values(count, tick))
                    _flush(client)

                def bare_pass(first_tick: int) -> None:
                    nonlocal seq
                    for tick in range(first_tick, first_tick + EDGE_TICKS):
                        values = _edge_values(count, tick)
                        now = time.time_ns() // 1_000_000
                        seq = (seq + 1) % 256
                        message = spb.Payload(timestamp=now, seq=seq)
                        add = message.metrics.add
                        for alias, value in zip(aliases, values.values(), strict=True):
                            metric = add()
                            metric.alias = alias
                            metric.datatype = spb.DOUBLE
                            metric.timestamp = now
                            metric.double_value = value
                        bare.publish(topic, message.SerializeToString(), qos=0)
                    _flush(bare)

                best = {"bare": math.inf, "edge": math.inf}
                tick = 1
                for _ in range(rounds):
                    for name, one_pass in (("bare", bare_pass), ("edge", edge_pass)):
                        start = time.perf_counter()
                        one_pass(tick)
                        best[name] = min(best[name], time.perf_counter() - start)
                        tick += EDGE_TICKS
                sent = node.stats.metrics_published
                assert sent >= count * EDGE_TICKS * rounds, "every tick must be published"
        finally:
            bare.disconnect()
            bare.loop_stop()
    per_pass = count * EDGE_TICKS
    return per_pass / best["bare"], per_pass / best["edge"]


def bench_edge_ndata(count: int, rounds: int = 40) -> Row:
    """``rounds`` alternating passes of ``EDGE_TICKS`` ticks, every metric changed each tick:
    the edge node's :meth:`update` (selection, type check, deadband, alias, protobuf, paho) against
    a bare loop that builds the same NDATA with the same protobuf classes and publishes it with
    paho; each pass ends when paho wrote its last message to mosquitto. Best pass, wall time."""
    bare, ours = asyncio.run(_edge_rates(count, rounds))
    return Row(
        name=f"Sparkplug edge node NDATA publish, {count} metrics/tick (to mosquitto)",
        value=ours,
        unit="metrics/s",
        target=EDGE_RATIO * bare,
        baseline=bare,
        baseline_label="bare protobuf + paho publish loop",
    )


def main() -> list[Row]:
    return [bench_ddata(10), bench_ddata(100), bench_edge_ndata(10), bench_edge_ndata(100)]
