"""When to try again: exponential backoff, and the reconnect policy that tells an absent server
(retried at a short interval: it has no load to protect) from one that refuses (backed off).

Connectors use it for their device connections, the outbox for its sinks, the MQTT outputs for
their broker: one backoff for every part.
"""

from __future__ import annotations

import errno
import random
import socket
from collections import deque

__all__ = ["Backoff", "ReconnectPolicy", "server_absent"]


class Backoff:
    """Exponential backoff with jitter: ``initial``, doubled per failure, capped at ``maximum``."""

    def __init__(self, initial: float, maximum: float, factor: float = 2.0, jitter: float = 0.1):
        self.initial = initial
        self.maximum = max(maximum, initial)
        self.factor = factor
        self.jitter = jitter
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt (and count one more failure)."""
        delay = min(self.maximum, self.initial * self.factor**self.failures)
        self.failures += 1
        if self.jitter:
            delay *= 1.0 + random.uniform(-self.jitter, self.jitter)
        return max(0.0, delay)

    def reset(self) -> None:
        self.failures = 0


#: ``errno`` values of a connection attempt that found no server: nothing listens on the port,
#: the host or network is unreachable, the host is down, the name does not resolve.
_ABSENT_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
        errno.EADDRNOTAVAIL,
    }
)


def server_absent(err: BaseException | None) -> bool:
    """True when ``err`` (or an exception it was raised from) says that no server answered.

    Such a server cannot be overloaded by retries: it is retried at a short interval. Anything
    else (a refusal or a timeout on a live connection, a protocol error) is backed off.
    """
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, ConnectionRefusedError | socket.gaierror):
            return True
        if isinstance(err, OSError) and err.errno in _ABSENT_ERRNOS:
            return True
        if isinstance(err, OSError) and "Connect call failed" in str(err):
            return True  # asyncio's "Multiple exceptions: [Errno 111] Connect call failed ..."
        err = err.__cause__ or err.__context__
    return False


class ReconnectPolicy:
    """When to try again after a failed or lost connection.

    * The server is **absent** (connection refused, no route, name not resolved): it has no load
      to protect, so it is retried every ``absent_interval_s`` (with +-``jitter``); a returning
      server is found within about that interval.
    * The server **answered and refused** or timed out on a live connection (too many sessions,
      authentication failed, overloaded): exponential backoff from ``initial_s`` doubling to
      ``maximum_s`` (with jitter), so a struggling server is not hammered.

    ``absent_interval_s = None`` backs off for an absent server too (the old behaviour; the
    benchmarks use it as their baseline). :meth:`reset` after a successful connection.
    ``delays`` keeps the last delays handed out (for tests and diagnostics).
    """

    def __init__(
        self,
        initial_s: float,
        maximum_s: float,
        absent_interval_s: float | None = 0.5,
        jitter: float = 0.2,
    ) -> None:
        self.backoff = Backoff(initial_s, maximum_s, jitter=jitter)
        self.absent_interval_s = absent_interval_s
        self.jitter = jitter
        self.delays: deque[tuple[bool, float]] = deque(maxlen=64)

    def next_delay(self, absent: bool) -> float:
        """The delay before the next attempt after a failure (``absent``: no server answered)."""
        if absent and self.absent_interval_s is not None:
            delay = self.absent_interval_s * (1.0 + random.uniform(-self.jitter, self.jitter))
        else:
            delay = self.backoff.next_delay()
        self.delays.append((absent, delay))
        return max(0.0, delay)

    def reset(self) -> None:
        self.backoff.reset()
