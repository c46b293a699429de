"""Bandwidth limits as arithmetic: nginx's ``limit_rate`` and ``limit_rate_after``.

The clock is the caller's: functions take the bytes sent and the seconds elapsed since
the response started, and answer how long to wait or how much to send next.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Send at most this fraction of a second's worth of bytes at once, so the rate is
#: smooth at the scale a person or a TCP window notices.
_SLICES_PER_SECOND = 10
_MIN_STEP = 1024


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``rate`` bytes per second per connection, after ``after`` free bytes."""

    rate: int
    after: int = 0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.after < 0:
            raise ValueError(f"invalid rate limit {self.rate}/s after {self.after}")

    def delay(self, sent: int, elapsed: float) -> float:
        """Seconds to wait after ``sent`` bytes in ``elapsed`` seconds.

        As nginx, time spent on the free burst counts: the bytes past ``after`` may
        have taken at most ``(sent - after) / rate`` seconds since the start.
        """
        excess = sent - self.after
        if excess <= 0:
            return 0.0
        return max(0.0, excess / self.rate - elapsed)

    def step(self, sent: int) -> int:
        """The most bytes to send next: the rest of the burst, else a slice of a second."""
        if sent < self.after:
            return self.after - sent
        return max(_MIN_STEP, self.rate // _SLICES_PER_SECOND)
