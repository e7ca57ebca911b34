"""Stopping the Modbus connector while a request is on the wire.

The device here is a Modbus TCP server written in this test (raw MBAP frames on a socket), not
pymodbus: it answers read-holding-registers and can hold one answer back until the test lets it
go, so the test decides exactly when the answer reaches the connector's socket.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from circman5.connectors.config import ModbusConnectorSettings
from circman5.connectors.modbus.client import ModbusConnector

pytestmark = pytest.mark.asyncio(loop_scope="function")

LATE_ANSWER = "without a corresponding request"


class HoldingDevice:
    """Answers every read with register value 7, except the ``hold_at``-th: that request is
    announced (``held``) and answered only once ``release`` is set (then ``answered``)."""

    def __init__(self, hold_at: int) -> None:
        self.hold_at = hold_at
        self.held = threading.Event()
        self.release = threading.Event()
        self.answered = threading.Event()
        self.peer_closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._listener.accept()
        with conn:
            requests = 0
            while True:
                header = _read_exactly(conn, 7)
                if header is None:
                    self.peer_closed.set()
                    return
                tid, _proto, length, unit = struct.unpack(">HHHB", header)
                pdu = _read_exactly(conn, length - 1)
                if pdu is None:
                    self.peer_closed.set()
                    return
                function, _address, count = struct.unpack(">BHH", pdu)
                requests += 1
                if requests == self.hold_at:
                    self.held.set()
                    if not self._wait_for_release(conn):
                        self.peer_closed.set()  # the connector closed the session meanwhile
                        return
                body = struct.pack(">BB", function, 2 * count) + b"\x00\x07" * count
                conn.sendall(struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body)
                if requests == self.hold_at:
                    time.sleep(0.05)  # the answer is in the connector's socket buffer now
                    self.answered.set()

    def _wait_for_release(self, conn: socket.socket) -> bool:
        """False if the peer closes the connection before the test releases the answer."""
        while not self.release.wait(0.05):
            readable, _, _ = select.select([conn], [], [], 0)
            if readable and conn.recv(1, socket.MSG_PEEK) == b"":
                return False
        return True

    def close(self) -> None:
        self.release.set()
        self._listener.close()


def _read_exactly(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


@pytest.fixture
def device() -> Iterator[HoldingDevice]:
    device = HoldingDevice(hold_at=3)
    yield device
    device.close()


def _connector(port: int, timeout_s: float) -> ModbusConnector:
    return ModbusConnector(
        ModbusConnectorSettings.model_validate(
            {
                "type": "modbus",
                "name": "meter",
                "host": "127.0.0.1",
                "port": port,
                "poll_interval_s": 0.05,
                "timeout_s": timeout_s,
                "tags": [{"address": "hr:0", "path": "meter.value", "data_type": "uint16"}],
            }
        )
    )


async def test_a_stop_that_meets_an_answer_on_its_way_reads_it(
    device: HoldingDevice, caplog: pytest.LogCaptureFixture
) -> None:
    """The answer is in the socket when the stop begins, before the loop could read it.

    Cancelling the request alone made pymodbus read that answer for nobody and log "received
    pdu without a corresponding request" at WARNING: on every demo stop that met a poll.
    """
    caplog.set_level(logging.WARNING)
    connector = _connector(device.port, timeout_s=5.0)
    async with connector:
        assert await asyncio.to_thread(device.held.wait, 60), "the third request never came"
        device.release.set()
        # blocking on purpose: the loop must not read the answer before the stop begins
        assert device.answered.wait(30)
    assert connector.status.samples_in >= 1  # the first answers were read as samples
    late = [r.getMessage() for r in caplog.records if LATE_ANSWER in r.getMessage()]
    assert late == []


async def test_a_stop_that_meets_a_device_that_never_answers_closes_the_session(
    device: HoldingDevice, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    connector = _connector(device.port, timeout_s=0.5)
    async with asyncio.timeout(60):  # the stop waits one request timeout, not for the device
        async with connector:
            assert await asyncio.to_thread(device.held.wait, 60), "the third request never came"
    assert await asyncio.to_thread(device.peer_closed.wait, 30)  # the device saw the close
    device.release.set()  # a late answer now has no session to arrive on
    late = [r.getMessage() for r in caplog.records if LATE_ANSWER in r.getMessage()]
    assert late == []
