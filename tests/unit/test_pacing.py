"""service.sansio.pacing: nginx-style limit_rate / limit_rate_after arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.sansio.pacing import RateLimit


def test_the_free_burst_is_never_delayed() -> None:
    limit = RateLimit(rate=1000, after=5000)
    assert limit.delay(sent=5000, elapsed=0.0) == 0.0


def test_bytes_past_the_burst_wait_until_the_rate_allows_them() -> None:
    limit = RateLimit(rate=1000, after=5000)
    assert limit.delay(sent=7000, elapsed=0.5) == pytest.approx(1.5)
    assert limit.delay(sent=7000, elapsed=2.5) == 0.0  # already slow enough


def test_time_spent_on_the_burst_counts_as_in_nginx() -> None:
    limit = RateLimit(rate=1000, after=1000)
    assert limit.delay(sent=2000, elapsed=1.0) == 0.0


def test_steps_finish_the_burst_then_send_a_tenth_of_a_second() -> None:
    limit = RateLimit(rate=100_000, after=30_000)
    assert limit.step(sent=0) == 30_000
    assert limit.step(sent=29_000) == 1_000
    assert limit.step(sent=30_000) == 10_000
    assert RateLimit(rate=10).step(sent=0) == 1024  # never absurdly small


@pytest.mark.parametrize(("rate", "after"), [(0, 0), (-1, 0), (10, -1)])
def test_invalid_limits_are_refused(rate: int, after: int) -> None:
    with pytest.raises(ValueError, match="invalid rate limit"):
        RateLimit(rate, after)


@given(
    rate=st.integers(1, 10**9),
    after=st.integers(0, 10**9),
    steps=st.lists(st.integers(1, 10**7), min_size=1, max_size=50),
)
def test_following_the_delays_never_beats_the_rate(rate: int, after: int, steps: list[int]) -> None:
    """Simulated sender: after sleeping each delay, the bytes past the burst have taken
    at least (sent - after) / rate seconds."""
    limit = RateLimit(rate, after)
    clock = sent = 0.0
    for count in steps:
        sent += count
        clock += limit.delay(int(sent), clock)
        assert clock >= (sent - after) / rate - 1e-6
