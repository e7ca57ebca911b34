"""One paho client's session: the thread-to-loop hand-off, the connection state and its report.

paho runs the socket in its own network thread and calls back from there. :class:`BrokerLink`
binds paho's connect, connect-failure and disconnect callbacks once for every user, and:

- hands everything to the event loop with ``loop.call_soon_threadsafe`` (:meth:`BrokerLink.call`;
  a closed loop while shutting down is not an error);
- runs the owner's thread hooks where they must run in paho's thread (``on_session``: subscribe
  or publish a birth right after the CONNACK, before any message; ``on_session_end``: change the
  will before paho reconnects), catching what they raise (paho would stop its thread);
- keeps the state on the loop: :attr:`connected`, :attr:`connects`, the :attr:`up` event to wait
  on, up/down listeners (a :class:`LinkDown` says why: ``connect refused: Not authorized``,
  ``disconnected: ...``, ``cannot connect: ConnectionRefusedError: ...``); a CONNACK refusal and
  the disconnect that follows it are one down;
- with ``announce``: one INFO line when connected (``... online at host:port``; the first time,
  and when an outage ends), one WARNING line with the reason's meaning per outage (repeats at
  DEBUG, a library traceback at DEBUG), and, with a reporter, one ``ConnectionFailed`` /
  ``ConnectionLost`` problem per outage.
  The connectors pass ``announce=False``: their base class reports their state.

Reconnecting is paho's (``reconnect_on_failure``, delays from the settings), except for the MQTT
connector, which runs its own connection loop with :meth:`BrokerLink.open` and paho's
``reconnect()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVarTuple

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from circman5.mqtt_link.client import connect_async, new_client
from circman5.mqtt_link.settings import LinkSettings
from circman5.reporting import ProblemReporter

__all__ = ["BrokerLink", "LinkDown", "describe_error", "drain_soon"]

_Args = TypeVarTuple("_Args")


@dataclass(frozen=True, slots=True)
class LinkDown:
    """Why a connection ended or did not start.

    ``code``: the MQTT reason code (None for a socket or TLS failure); ``refused``: the
    connection never had a session (CONNACK refused, closed before it, cannot connect);
    ``was_up``: an established session ended.
    """

    reason: str
    code: int | None = None
    refused: bool = False
    was_up: bool = False


def describe_error(err: BaseException) -> str:
    """``ConnectionRefusedError: [Errno 111] Connection refused`` (the type, and the text)."""
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def drain_soon(
    loop: asyncio.AbstractEventLoop | None, delay_s: float, drain: Callable[[], None]
) -> None:
    """On the loop: ``drain()`` now, or after ``delay_s`` so that the messages of a burst
    arriving meanwhile ride along (one wake-up and one batch per burst instead of per message).
    """
    if loop is None or not delay_s:
        drain()
    else:
        loop.call_later(delay_s, drain)


class BrokerLink:
    """A paho client and its session state (see the module docstring)."""

    def __init__(
        self,
        settings: LinkSettings,
        *,
        what: str,
        log: logging.Logger,
        announce: bool = True,
        reporter: ProblemReporter | None = None,
        client_class: type[paho.Client] = paho.Client,
        manual_ack: bool = False,
        reconnect_on_failure: bool = True,
    ) -> None:
        self.settings = settings
        self.what = what
        self._log = log
        self._announce = announce
        self._reporter = reporter
        self._client_class = client_class
        self._manual_ack = manual_ack
        self._reconnect_on_failure = reconnect_on_failure
        self.client: paho.Client | None = None
        self.connected = False
        self.connects = 0
        self.up = asyncio.Event()
        #: Thread hooks (paho's network thread): after a successful CONNACK / on every disconnect.
        self.on_session: Callable[[paho.Client], None] | None = None
        self.on_session_end: Callable[[paho.Client], None] | None = None
        self._up_listeners: list[Callable[[], None]] = []
        self._down_listeners: list[Callable[[LinkDown], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._outage_told = False
        # network thread: the current connection's session started / its CONNACK refused it
        self.session_up = False
        self.refused = False
        self._refusal_told = False

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def add_up_listener(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs on the event loop after every (re)connect."""
        self._up_listeners.append(callback)

    def add_down_listener(self, callback: Callable[[LinkDown], None]) -> None:
        """``callback(down)`` runs on the event loop when a connection drops or a connect fails
        (not on a clean stop)."""
        self._down_listeners.append(callback)

    # -- lifecycle -------------------------------------------------------------------------------

    def open(self, configure: Callable[[paho.Client], None] | None = None) -> paho.Client:
        """Create the client, bind the callbacks, ``configure(client)`` (what paho allows only
        before the connection: in-flight window, extra callbacks) and set the broker to connect
        to; the caller starts paho's thread or connects itself (``reconnect()``)."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        client = new_client(
            self.settings,
            client_class=self._client_class,
            manual_ack=self._manual_ack,
            reconnect_on_failure=self._reconnect_on_failure,
        )
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        if configure is not None:
            configure(client)
        connect_async(client, self.settings)
        self.client = client
        return client

    def start(self, configure: Callable[[paho.Client], None] | None = None) -> paho.Client:
        """:meth:`open` and start paho's network thread (it connects and reconnects)."""
        client = self.open(configure)
        client.loop_start()
        return client

    async def stop(self) -> None:
        """Disconnect and end paho's thread (no down listener is told: a clean stop)."""
        client, self.client = self.client, None
        if client is None:
            return
        self._stopping = True
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._set_down_state()

    # -- the hand-off --------------------------------------------------------------------------

    def call(self, fn: Callable[[*_Args], object], *args: *_Args) -> None:
        """Run ``fn(*args)`` on the event loop (from any thread)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed while shutting down
                loop.call_soon_threadsafe(fn, *args)

    # -- paho's network thread (never raise: paho would stop its loop) -------------------------

    def _hook(self, hook: Callable[[paho.Client], None] | None, client: paho.Client) -> None:
        if hook is None:
            return
        try:
            hook(client)
        except Exception as err:
            self._log.debug("%s: %r failed", self.what, hook, exc_info=True)
            self._log.warning("%s: %s", self.what, describe_error(err))

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.refused = True
            self._refusal_told = True
            self.call(self._down, LinkDown(f"connect refused: {reason}", reason.value, True))
            return
        self.refused = False
        self._refusal_told = False
        self.session_up = True
        self._hook(self.on_session, client)
        self.call(self._up)

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        # paho calls this inside its ``except OSError`` around the connect: the reason is there
        err = sys.exc_info()[1]
        if err is not None:
            self._log.debug("%s: cannot connect to %s", self.what, self.where, exc_info=err)
        reason = f"cannot connect: {describe_error(err)}" if err else "cannot connect"
        self.call(self._down, LinkDown(reason, None, True))

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_up, self.session_up = self.session_up, False
        if not was_up:
            self.refused = True  # the broker took the connection but no session (TLS, login)
        told, self._refusal_told = self._refusal_told, False
        if not told:  # the end of a refused connect is not a second down
            down = LinkDown(f"disconnected: {reason}", reason.value, not was_up, was_up)
            self.call(self._down, down)
        self._hook(self.on_session_end, client)

    # -- on the event loop -----------------------------------------------------------------------

    def _up(self) -> None:
        if self._stopping:
            return
        self.connected = True
        self.connects += 1
        self.up.set()
        if self._announce and (self._outage_told or self.connects == 1):
            self._log.info("%s online at %s", self.what, self.where)
        self._outage_told = False
        for callback in self._up_listeners:
            callback()

    def _set_down_state(self) -> None:
        self.connected = False
        self.up.clear()

    def _down(self, down: LinkDown) -> None:
        if self._stopping:
            self._set_down_state()
            return
        self._set_down_state()
        for callback in self._down_listeners:
            callback(down)
        if not self._announce:
            return
        if self._outage_told:
            self._log.debug("%s %s %s; reconnecting", self.what, self.where, down.reason)
            return
        self._outage_told = True
        self._log.warning("%s %s %s; reconnecting", self.what, self.where, down.reason)
        if self._reporter is not None:
            kind = "ConnectionLost" if down.was_up else "ConnectionFailed"
            self._reporter.report(
                "error",
                kind,
                f"{self.what} {self.where}: {down.reason}",
                {"host": self.settings.host, "port": self.settings.port, "reason": down.reason},
            )
