"""What one small range request costs, counted, not timed: the Python functions the app
calls (``sys.setprofile`` sees every call into Python and C code) for a random 4 KiB
range of a cached file, a 304 and a HEAD, with every default on (access log, metrics,
digests known). The counts are the same on every run of the same code, so a change
that adds work to every request fails here, whatever the machine is doing.

The budgets are today's counts plus about 5%. When a change lowers a count, lower its
budget with it; raising one needs a reason in the commit. ``make bench`` scenario 8
measures what the counts cost in CPU against the bare stack.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from flask import Flask

from config import Settings
from service import create_app
from tests.app import BIG, BIG_SIZE, build_tree, wsgi_call

#: Function calls per request, today's count plus about 5% (see the module's docstring).
BUDGETS = {"range": 525, "not_modified": 360, "head": 355}  # counted: 500, 343, 339
REQUESTS = 50


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    served = create_app(Settings(data_root=build_tree(tmp_path)))
    served.extensions["access_log"].write = lambda line: None  # the cost is the record's
    store = served.extensions["digests"]
    exchange(served, "/files/big.bin")  # queue the digest, then wait for it: steady state
    assert store.wait_idle(30)
    return served


def exchange(app: Flask, path: str, **extra: Any) -> tuple[str, bytes]:
    started, body = wsgi_call(app, path, REMOTE_ADDR="127.0.0.1", **extra)
    data = b"".join(body)
    body.close()
    return started[0], data


def calls_per_request(app: Flask, request: Callable[[int], tuple[str, bytes]]) -> float:
    for n in range(5):  # warm: lazy imports, first-use caches
        request(n)
    count = [0]

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            count[0] += 1

    sys.setprofile(profile)
    try:
        for n in range(REQUESTS):
            request(n)
    finally:
        sys.setprofile(None)
    return count[0] / REQUESTS


def test_a_random_4_kib_range_stays_within_its_budget(app: Flask) -> None:
    starts = random.Random(7).sample(range(BIG_SIZE - 4096), REQUESTS + 5)

    def request(n: int) -> tuple[str, bytes]:
        start = starts[n]
        status, data = exchange(app, "/files/big.bin", HTTP_RANGE=f"bytes={start}-{start + 4095}")
        assert (status, data) == ("206 Partial Content", BIG[start : start + 4096])
        return status, data

    assert calls_per_request(app, request) <= BUDGETS["range"]


def test_a_304_and_a_head_stay_within_their_budgets(app: Flask) -> None:
    started, body = wsgi_call(app, "/files/big.bin", REMOTE_ADDR="127.0.0.1")
    body.close()
    etag = dict(started[1])["ETag"]

    def revalidate(n: int) -> tuple[str, bytes]:
        answer = exchange(app, "/files/big.bin", HTTP_IF_NONE_MATCH=etag)
        assert answer == ("304 Not Modified", b"")
        return answer

    def head(n: int) -> tuple[str, bytes]:
        answer = exchange(app, "/files/big.bin", REQUEST_METHOD="HEAD")
        assert answer == ("200 OK", b"")
        return answer

    assert calls_per_request(app, revalidate) <= BUDGETS["not_modified"]
    assert calls_per_request(app, head) <= BUDGETS["head"]


def test_the_profile_counts_what_a_request_does(app: Flask) -> None:
    """The counter is live: one more Python call per request shows as one more (give or
    take the access log's clock, formatted anew when a second begins)."""

    def plain(n: int) -> tuple[str, bytes]:
        return exchange(app, "/files/big.bin", HTTP_RANGE="bytes=0-9")

    def with_an_extra_call(n: int) -> tuple[str, bytes]:
        len([])
        return exchange(app, "/files/big.bin", HTTP_RANGE="bytes=0-9")

    added = calls_per_request(app, with_an_extra_call) - calls_per_request(app, plain)
    assert abs(added - 1) < 0.5
