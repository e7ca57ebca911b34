"""The Modbus connector: pymodbus 3 async clients (TCP, RTU serial, RTU framing over TCP).

Why this module is long: one connector class whose polling, decoding and writes share the compiled
read plan and the per-unit state; the plan, codec and config are separate modules.

Tags are compiled once: each tag's codec (data type, byte and word order), and a read plan that
merges the tags of one unit and table into as few requests as the limits allow
(:func:`~circman5.connectors.modbus.plan.plan_reads`). Every ``poll_interval_s`` each due unit is
read request by request; a response is decoded into one batch of samples (one ``struct.pack`` per
response, one ``unpack_from`` per tag).

Failures, per unit (device):

* a timeout or an exception response marks the tags of that request **stale** and is reported
  (rate-limited); the other requests of the unit still run;
* a unit whose every request failed is polled less often: the interval doubles per failed poll
  (from ``max(poll_interval_s, timeout_s)`` up to ``backoff_max_s``) and snaps back when it
  answers again;
* a lost connection marks every tag stale; the connector reconnects every
  ``reconnect_absent_s`` while the device does not accept connections (pymodbus' own reconnect
  is off, so there is one reconnect policy: :class:`~circman5.connectors.base.ReconnectPolicy`).

Writes go to holding registers (function 6 for one register, 16 for more) and coils (function 5),
encoded with the tag's codec after undoing scale and offset; the unit is polled again at once so
the twin sees the new value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from circman5.connectors.base import BaseConnector
from circman5.connectors.config_base import stale_timeout
from circman5.connectors.deadband import Deadband
from circman5.connectors.modbus.codec import BlockDecoder, TagCodec
from circman5.connectors.modbus.config import ModbusConnectorSettings, ModbusTag
from circman5.connectors.modbus.plan import (
    BIT_TABLES,
    ReadItem,
    ReadRequest,
    parse_address,
    plan_reads,
)
from circman5.connectors.status import ConnectorStatus
from circman5.errors import DeviceUnavailable, SessionLost, TagWriteError
from circman5.reporting import ProblemReporter
from circman5.retry import ReconnectPolicy, server_absent
from circman5.samples import Quality, SampleValue, make_sample

logger = logging.getLogger(__name__)

EXCEPTION_NAMES = {
    1: "ILLEGAL_FUNCTION",
    2: "ILLEGAL_ADDRESS",
    3: "ILLEGAL_VALUE",
    4: "DEVICE_FAILURE",
    5: "ACKNOWLEDGE",
    6: "DEVICE_BUSY",
    8: "MEMORY_PARITY_ERROR",
    10: "GATEWAY_PATH_UNAVAILABLE",
    11: "GATEWAY_TARGET_NO_RESPONSE",
}


_FUNCTION_CODES = {
    "coil": 1,
    "discrete_input": 2,
    "holding_register": 3,
    "input_register": 4,
}


@dataclass(slots=True)
class _Tag:
    index: int
    path: str
    address: str
    unit_id: int
    table: str
    offset: int
    codec: TagCodec
    settings: ModbusTag
    scaled: bool
    is_bit: bool
    deadband: Deadband | None
    plain: bool  # an integer (or bit) without scaling or deadband: no per-value work


@dataclass(slots=True)
class _Plan:
    """One read request with its tags (in response order) and its decoder."""

    request: ReadRequest
    tags: list[_Tag]
    decoder: BlockDecoder | None  # None for coils and discrete inputs
    positions: list[int]
    keys: list[tuple[str, str]]  # (address, path) per tag
    plain: bool  # every tag plain: one comprehension builds the batch
    values: list[SampleValue] | None = None  # the last decoded (raw) values
    values_ns: int = 0
    heartbeat_due: int = 0


@dataclass(slots=True)
class _Outcome:
    response: Any = None
    error: str | None = None
    lost: bool = False


@dataclass(slots=True)
class _Cycle:
    """One poll of one unit: its requests sent, answered and failed."""

    unit: _Unit
    total: int
    sent: int = 0
    done: int = 0
    failed: int = 0


@dataclass(slots=True)
class _Unit:
    unit_id: int
    requests: list[_Plan]
    failures: int = 0
    next_poll: float = 0.0
    failing: bool = False
    in_cycle: bool = False
    paths: list[str] = field(default_factory=list)


class ModbusConnector(BaseConnector):
    """Polls the tags of one Modbus endpoint (one or more unit ids behind it)."""

    protocol = "modbus"

    def __init__(
        self, settings: ModbusConnectorSettings, reporter: ProblemReporter | None = None
    ) -> None:
        super().__init__(
            settings.name, reporter, max_buffered_samples=settings.max_buffered_samples
        )
        self.settings = settings
        self.reconnect_policy = ReconnectPolicy(
            settings.reconnect_initial_s, settings.reconnect_max_s, settings.reconnect_absent_s
        )
        self._tags: list[_Tag] = []
        for index, tag in enumerate(settings.tags):
            address = parse_address(tag.address)
            data_type = tag.effective_type
            codec = TagCodec(
                data_type,
                tag.byte_order or settings.byte_order,
                tag.word_order or settings.word_order,
                tag.length,
                tag.bit,
            )
            self._tags.append(
                _Tag(
                    index=index,
                    path=tag.path,
                    address=f"{tag.unit_id if tag.unit_id is not None else settings.unit_id}/"
                    f"{address}",
                    unit_id=tag.unit_id if tag.unit_id is not None else settings.unit_id,
                    table=address.table,
                    offset=address.offset,
                    codec=codec,
                    settings=tag,
                    scaled=tag.scale != 1.0 or tag.offset != 0.0,
                    is_bit=address.is_bit,
                    deadband=(
                        Deadband(tag.deadband, settings.heartbeat_s or math.inf)
                        if tag.deadband
                        else None
                    ),
                    plain=(
                        data_type not in ("float32", "float64", "string")
                        and tag.scale == 1.0
                        and tag.offset == 0.0
                        and not tag.deadband
                    ),
                )
            )
        items = [
            ReadItem(t.index, t.unit_id, t.table, t.offset, 1 if t.is_bit else t.codec.registers)  # type: ignore[arg-type]
            for t in self._tags
        ]
        requests = plan_reads(
            items,
            max_registers=settings.max_registers_per_request,
            max_bits=settings.max_bits_per_request,
            max_gap=settings.max_gap,
        )
        units: dict[int, _Unit] = {}
        for request in requests:
            unit = units.setdefault(request.unit_id, _Unit(request.unit_id, []))
            tags = [self._tags[item.key] for item, _ in request.items]
            positions = [position for _, position in request.items]
            decoder = None
            if request.table not in BIT_TABLES:
                decoder = BlockDecoder([(p, t.codec) for p, t in zip(positions, tags, strict=True)])
            unit.requests.append(
                _Plan(
                    request,
                    tags,
                    decoder,
                    positions,
                    [(t.address, t.path) for t in tags],
                    all(t.plain for t in tags),
                )
            )
            unit.paths.extend(t.path for t in tags)
        self._units = list(units.values())
        self.requests = requests
        self._by_target: dict[str, _Tag] = {}
        for compiled in self._tags:
            self._by_target.setdefault(compiled.path, compiled)
            self._by_target.setdefault(compiled.address, compiled)
            self._by_target.setdefault(compiled.settings.address, compiled)
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._poll_now = asyncio.Event()
        self._report_every_poll = settings.report == "poll"
        self.registers_read = 0  # registers and bits read successfully
        self._heartbeat_ns = int(settings.heartbeat_s * 1e9)
        self._ever_connected = False
        self.polls = 0

    def paths(self) -> list[str]:
        return [tag.path for tag in self._tags]

    def _recall(self) -> None:
        """Rebuild the last reported value per path from the plans' last responses."""
        last = self._last_values
        name = self._name
        for unit in self._units:
            for plan in unit.requests:
                values = plan.values
                if values is None:
                    continue
                stamp = plan.values_ns
                for tag, raw in zip(plan.tags, values, strict=True):
                    value = self._engineering(tag, raw)
                    if value is None:
                        continue
                    existing = last.get(tag.path)
                    if existing is None or existing.timestamp_ns < stamp:
                        last[tag.path] = make_sample(
                            name, tag.address, tag.path, value, stamp, Quality.GOOD
                        )

    @staticmethod
    def _engineering(tag: _Tag, raw: SampleValue) -> SampleValue | None:
        """The value a tag reports for ``raw`` (None for NaN/infinity)."""
        if type(raw) is float:
            if raw - raw != 0.0:
                return None
            if tag.scaled:
                return raw * tag.settings.scale + tag.settings.offset
        elif tag.scaled and type(raw) is int:
            return raw * tag.settings.scale + tag.settings.offset
        return raw

    def unit_status(self) -> dict[int, dict[str, object]]:
        """Per unit id: consecutive failed polls, current poll interval, requests per poll."""
        return {
            unit.unit_id: {
                "failures": unit.failures,
                "interval_s": self._interval(unit),
                "requests": len(unit.requests),
            }
            for unit in self._units
        }

    @property
    def status(self) -> ConnectorStatus:
        status = super().status
        status.extra["units"] = self.unit_status()
        status.extra["registers_read"] = self.registers_read
        return status

    def stale_after(self, path: str) -> float | None:
        tag = self._by_target.get(path)
        if tag is not None and tag.settings.stale_timeout_s is not None:
            return stale_timeout(tag.settings)
        return math.inf  # failed polls mark tags stale at once

    # -- connection -----------------------------------------------------------------------
    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        s = self.settings
        common: dict[str, Any] = {
            "name": f"circman5-{s.name}",
            "reconnect_delay": 0,  # one reconnect policy: ours
            "timeout": s.timeout_s,
            "retries": s.retries,
        }
        client: AsyncModbusTcpClient | AsyncModbusSerialClient
        if s.transport == "rtu":
            assert s.serial_port is not None
            client = AsyncModbusSerialClient(
                s.serial_port,
                framer=FramerType.RTU,
                baudrate=s.baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
                **common,
            )
        else:
            assert s.host is not None
            framer = FramerType.RTU if s.transport == "rtu_over_tcp" else FramerType.SOCKET
            client = AsyncModbusTcpClient(s.host, port=s.port, framer=framer, **common)
        # A dead unit behind a gateway must not make pymodbus drop the whole connection.
        client.set_max_no_responses(1_000_000)
        return client

    async def _run(self) -> None:
        policy = self.reconnect_policy
        while True:
            client = self._make_client()
            self._client = client
            error = "connection closed"
            # pymodbus reports a failed connect as False, without the reason: a device that does
            # not accept the connection counts as absent (retried at the short interval).
            absent = True
            try:
                try:
                    connected = await client.connect()
                except (ModbusException, OSError) as err:
                    absent = server_absent(err)
                    raise SessionLost(f"connect failed: {err}") from err
                if not connected:
                    raise SessionLost(f"cannot connect to {self._endpoint()}")
                if self._ever_connected:
                    self._status.reconnects += 1
                self._ever_connected = True
                self._set_connected(True, None)
                policy.reset()
                for unit in self._units:
                    unit.next_poll = 0.0
                    unit.in_cycle = False
                    for plan in unit.requests:
                        plan.values = None
                await self._poll_loop(client)
            except SessionLost as err:
                error = str(err)
            finally:
                self._client = None
                client.close()
            self._set_connected(False, error)
            self._mark_stale()
            await asyncio.sleep(policy.next_delay(absent))

    async def _close(self) -> None:
        client = self._client
        self._client = None
        if client is not None:
            client.close()

    def _endpoint(self) -> str:
        s = self.settings
        return s.serial_port or "" if s.transport == "rtu" else f"{s.host}:{s.port}"

    # -- polling --------------------------------------------------------------------------
    async def _poll_loop(self, client: AsyncModbusTcpClient | AsyncModbusSerialClient) -> None:
        """Poll the due units request by request, one request always on the wire.

        While a response is decoded the next request (of this unit, the next due unit, or this
        unit's next poll) is already on its way; pymodbus still sends one at a time.
        """
        queue: deque[tuple[_Plan, _Cycle]] = deque()
        pending: tuple[_Plan, _Cycle, asyncio.Task[_Outcome]] | None = None
        try:
            while True:
                if pending is None:
                    if not queue:
                        self._refill(queue)
                    if not queue:
                        await self._idle(client)
                        continue
                    pending = self._send(client, queue)
                plan, cycle, task = pending
                # shielded: a stop lets the request on the wire finish (see _finish_in_flight)
                outcome = await asyncio.shield(task)
                pending = None
                if outcome.lost:
                    raise SessionLost(outcome.error or "connection lost")
                if not queue:
                    self._refill(queue)
                if queue:
                    pending = self._send(client, queue)
                    await asyncio.sleep(0)  # let it send its request before decoding this one
                self._process(plan, cycle, outcome)
        finally:
            if pending is not None:
                await self._finish_in_flight(client, pending[2])

    async def _finish_in_flight(
        self,
        client: AsyncModbusTcpClient | AsyncModbusSerialClient,
        request: asyncio.Task[_Outcome],
    ) -> None:
        """End polling with the request on the wire answered, or the session closed first.

        Cancelling the request alone leaves its answer on the way: pymodbus then reads a
        response nobody waits for and logs "received pdu without a corresponding request" at
        WARNING, on every stop that meets a poll in flight. So the request gets up to its own
        ``timeout_s`` to be answered (a stop waits at most that long); if it is not, the session
        is closed before the request is cancelled, so no late answer can be read.
        """
        try:
            if not request.done():
                await asyncio.wait({request}, timeout=self.settings.timeout_s)
        finally:  # also when the stop cancels this wait again
            if not request.done():
                client.close()
                request.cancel()
        await asyncio.wait({request})

    def _refill(self, queue: deque[tuple[_Plan, _Cycle]]) -> None:
        now = time.monotonic()
        for unit in self._units:
            if unit.in_cycle or unit.next_poll > now:
                continue
            cycle = _Cycle(unit, len(unit.requests))
            unit.in_cycle = True
            unit.next_poll = now + self._interval(unit)
            queue.extend((plan, cycle) for plan in unit.requests)
        if queue:
            self.polls += 1

    def _send(
        self,
        client: AsyncModbusTcpClient | AsyncModbusSerialClient,
        queue: deque[tuple[_Plan, _Cycle]],
    ) -> tuple[_Plan, _Cycle, asyncio.Task[_Outcome]]:
        plan, cycle = queue.popleft()
        cycle.sent += 1
        if cycle.sent == cycle.total:
            cycle.unit.in_cycle = False  # its next poll may start while this one finishes
        return plan, cycle, asyncio.create_task(self._read(client, plan))

    async def _idle(self, client: AsyncModbusTcpClient | AsyncModbusSerialClient) -> None:
        if not client.connected:
            raise SessionLost("connection lost")
        next_due = min((u.next_poll for u in self._units), default=time.monotonic() + 1.0)
        delay = next_due - time.monotonic()
        if delay > 0:
            self._poll_now.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._poll_now.wait()
        else:
            await asyncio.sleep(0)

    def _process(self, plan: _Plan, cycle: _Cycle, outcome: _Outcome) -> None:
        if outcome.error is not None:
            self._request_failed(plan, outcome.error)
            cycle.failed += 1
        else:
            self._decode(plan, outcome.response)
        cycle.done += 1
        if cycle.done < cycle.total:
            return
        unit = cycle.unit
        if cycle.failed == cycle.total:
            unit.failures += 1
            unit.next_poll = time.monotonic() + self._interval(unit)
            if not unit.failing:
                unit.failing = True
                logger.warning(
                    "modbus %s: unit %d does not answer; polling it less often",
                    self._name,
                    unit.unit_id,
                )
        else:
            if unit.failing:
                logger.info("modbus %s: unit %d answers again", self._name, unit.unit_id)
                unit.next_poll = time.monotonic() + self.settings.poll_interval_s
            unit.failing = False
            unit.failures = 0

    def _interval(self, unit: _Unit) -> float:
        s = self.settings
        if not unit.failures:
            return s.poll_interval_s
        base = max(s.poll_interval_s, s.timeout_s)
        return float(min(s.backoff_max_s, base * 2.0 ** (unit.failures - 1)))

    async def _read(
        self, client: AsyncModbusTcpClient | AsyncModbusSerialClient, plan: _Plan
    ) -> _Outcome:
        """One read; library errors become an outcome (the caller decides what they mean)."""
        request = plan.request
        table = request.table
        address, count, unit = request.address, request.count, request.unit_id
        try:
            if table == "holding_register":
                response = await client.read_holding_registers(address, count=count, device_id=unit)
            elif table == "input_register":
                response = await client.read_input_registers(address, count=count, device_id=unit)
            elif table == "coil":
                response = await client.read_coils(address, count=count, device_id=unit)
            else:
                response = await client.read_discrete_inputs(address, count=count, device_id=unit)
        except ModbusIOException as err:  # no response (timeout)
            if not client.connected:
                return _Outcome(error=f"connection lost: {err}", lost=True)
            return _Outcome(error=f"no response ({err})")
        except (ConnectionException, OSError) as err:
            return _Outcome(error=f"connection lost: {err}", lost=True)
        except ModbusException as err:
            return _Outcome(error=f"error: {err}")
        if response.isError():
            code = response.exception_code
            return _Outcome(error=f"exception response {code} ({EXCEPTION_NAMES.get(code, '?')})")
        if response.function_code != _FUNCTION_CODES[table]:
            return _Outcome(error=f"mismatched response (function {response.function_code})")
        return _Outcome(response=response)

    def _request_failed(self, plan: _Plan, reason: str) -> None:
        request = plan.request
        self._record_error(reason)
        self._problems.note(
            "ModbusReadFailed",
            f"modbus {self._name}: unit {request.unit_id} {request.table} "
            f"{request.address}+{request.count}: {reason}",
            {"unit_id": request.unit_id, "table": request.table, "address": request.address},
        )
        self._mark_stale([tag.path for tag in plan.tags])
        plan.values = None  # report every tag again once it answers

    def _decode(self, plan: _Plan, response: Any) -> None:
        """Turn one response into samples: every value (``report = "poll"``) or the values that
        changed (``"change"``), plus everything at least every ``heartbeat_s``."""
        now_ns = time.time_ns()
        name = self._name
        make = make_sample
        good = Quality.GOOD
        values: list[SampleValue]
        if plan.decoder is None:
            bits: Sequence[bool] = response.bits
            if len(bits) < plan.request.count:
                self._malformed(f"{plan.request.unit_id}/{plan.request.table}", "short response")
                return
            values = [bool(bits[position]) for position in plan.positions]
        else:
            registers: Sequence[int] = response.registers
            if len(registers) < plan.request.count:
                self._malformed(
                    f"{plan.request.unit_id}/{plan.request.table}:{plan.request.address}",
                    f"short response: {len(registers)} of {plan.request.count} registers",
                )
                return
            values = plan.decoder.decode(registers)
        self.registers_read += plan.request.count
        previous = plan.values
        plan.values = values
        plan.values_ns = now_ns
        report_all = self._report_every_poll or previous is None
        if self._heartbeat_ns and (report_all or now_ns >= plan.heartbeat_due):
            plan.heartbeat_due = now_ns + self._heartbeat_ns
            report_all = True
        if plan.plain:
            if report_all:
                batch = [
                    make(name, address, path, value, now_ns, good)
                    for (address, path), value in zip(plan.keys, values, strict=True)
                ]
            elif values == previous:
                return
            else:
                assert previous is not None
                batch = [
                    make(name, address, path, value, now_ns, good)
                    for (address, path), value, old in zip(plan.keys, values, previous, strict=True)
                    if value != old
                ]
            self._emit(batch, remember=False)
            return
        batch = []
        append = batch.append
        bad: list[str] = []
        for index, (tag, raw) in enumerate(zip(plan.tags, values, strict=True)):
            value = self._engineering(tag, raw)
            if value is None:  # NaN or infinity: the device says "no value"
                bad.append(tag.path)
                continue
            if tag.deadband is not None:
                if not (report_all or tag.deadband.passes(tag.path, value, now_ns)):
                    continue
                if report_all:
                    tag.deadband.passes(tag.path, value, now_ns)
            elif not report_all and previous is not None and raw == previous[index]:
                continue
            append(make(name, tag.address, tag.path, value, now_ns, good))
        self._emit(batch, remember=False)
        if bad:
            self._mark_stale(bad, Quality.BAD)

    # -- writes ---------------------------------------------------------------------------
    async def write(self, target: str, value: SampleValue) -> None:
        """Write ``value`` (engineering units) to a writable coil or holding register tag."""
        tag = self._by_target.get(target)
        if tag is None:
            raise TagWriteError(f"modbus {self._name}: no tag '{target}'")
        if not tag.settings.writable:
            raise TagWriteError(f"modbus {self._name}: tag '{target}' is not writable")
        client = self._client
        if client is None or not client.connected:
            raise DeviceUnavailable(f"modbus {self._name}: not connected")
        try:
            if tag.is_bit:
                bit = _as_bool(value)
                response = await client.write_coil(tag.offset, bit, device_id=tag.unit_id)
            else:
                raw: SampleValue = value
                if tag.scaled and not isinstance(value, bool | str):
                    raw = (float(value) - tag.settings.offset) / tag.settings.scale
                words = tag.codec.encode(raw)
                if len(words) == 1:
                    response = await client.write_register(
                        tag.offset, words[0], device_id=tag.unit_id
                    )
                else:
                    response = await client.write_registers(
                        tag.offset, words, device_id=tag.unit_id
                    )
        except ValueError as err:
            self._status.write_errors += 1
            raise TagWriteError(f"modbus {self._name}: {tag.path} = {value!r}: {err}") from err
        except ModbusIOException as err:
            self._status.write_errors += 1
            raise DeviceUnavailable(f"modbus {self._name}: write not answered: {err}") from err
        except (ModbusException, OSError) as err:
            self._status.write_errors += 1
            raise DeviceUnavailable(f"modbus {self._name}: write failed: {err}") from err
        if response.isError():
            self._status.write_errors += 1
            code = response.exception_code
            raise TagWriteError(
                f"modbus {self._name}: writing {tag.path} = {value!r} refused: exception "
                f"{code} ({EXCEPTION_NAMES.get(code, '?')})"
            )
        self._status.writes += 1
        for unit in self._units:
            if unit.unit_id == tag.unit_id:
                unit.next_poll = 0.0
        self._poll_now.set()


def _as_bool(value: SampleValue) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "on", "off"):
        return value.strip().lower() in ("true", "1", "on")
    raise ValueError(f"{value!r} is not a boolean")
