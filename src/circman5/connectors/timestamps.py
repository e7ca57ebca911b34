"""The window a source timestamp must fall in to be written as it is.

A sample stamped far in the past (1970, a PLC clock that was never set) or far in the future (a
20-digit epoch, ``9999-12-31T23:59:59Z``) would be written where the time-series server drops it
(before the retention horizon, beyond int64 nanoseconds) while the service reports the output as
healthy. A connector that takes a source timestamp therefore checks it against a window of
``[receive time - max_age_s, receive time + max_future_s]``; a timestamp outside is, per tag,
``"replace"``-d by the receive time (the value is kept) or ``"reject"``-ed (the sample is dropped).
Both are counted and reported (rate-limited) as ``TimestampOutOfRange`` problems.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_MAX_AGE_S",
    "DEFAULT_MAX_FUTURE_S",
    "TimestampPolicy",
    "TimestampWindow",
]

#: The age limit when neither the connector nor the output sets one: the embedded store's
#: default retention (7 days).
DEFAULT_MAX_AGE_S = 7 * 24 * 3600.0
#: How far ahead of the receive time a source clock may run.
DEFAULT_MAX_FUTURE_S = 300.0

TimestampPolicy = Literal["replace", "reject"]


@dataclass(frozen=True, slots=True)
class TimestampWindow:
    """``[now - max_age_s, now + max_future_s]`` in nanoseconds, relative to the receive time."""

    max_age_s: float = DEFAULT_MAX_AGE_S
    max_future_s: float = DEFAULT_MAX_FUTURE_S

    @property
    def max_age_ns(self) -> int:
        return int(self.max_age_s * 1e9)

    @property
    def max_future_ns(self) -> int:
        return int(self.max_future_s * 1e9)

    def bounds(self, now_ns: int) -> tuple[int, int]:
        """The lowest and highest accepted timestamp for a sample received at ``now_ns``."""
        return now_ns - self.max_age_ns, now_ns + self.max_future_ns

    def contains(self, timestamp_ns: int, now_ns: int) -> bool:
        low, high = self.bounds(now_ns)
        return low <= timestamp_ns <= high

    def describe(self, timestamp_ns: int, now_ns: int) -> str:
        """Why ``timestamp_ns`` is outside (for the problem report)."""
        if timestamp_ns > now_ns:
            ahead = (timestamp_ns - now_ns) / 1e9
            return (
                f"source timestamp {ahead:.3g} s in the future "
                f"(more than {self.max_future_s:g} s ahead)"
            )
        behind = (now_ns - timestamp_ns) / 1e9
        return f"source timestamp {behind:.3g} s old (older than {self.max_age_s:g} s)"
