"""Client-side deadband for sources that deliver every value (polled registers, MQTT)."""

from __future__ import annotations

from circman5.samples import SampleValue

__all__ = ["Deadband"]


class Deadband:
    """Client-side absolute deadband: pass a value when it moved at least ``deadband``.

    A value inside the deadband is still passed on when the last one passed is older than
    ``refresh_s``, so the engine keeps hearing from a live source.
    """

    __slots__ = ("_last", "deadband", "refresh_ns")

    def __init__(self, deadband: float, refresh_s: float = 1.0) -> None:
        self.deadband = deadband
        self.refresh_ns = int(refresh_s * 1e9)
        self._last: dict[str, tuple[float, int]] = {}

    def passes(self, key: str, value: SampleValue, now_ns: int) -> bool:
        if type(value) is not float and type(value) is not int:
            return True
        last = self._last.get(key)
        if (
            last is None
            or abs(value - last[0]) >= self.deadband
            or now_ns - last[1] >= self.refresh_ns
        ):
            self._last[key] = (float(value), now_ns)
            return True
        return False
