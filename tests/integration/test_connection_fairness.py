"""One worker, many keep-alive connections each sending its next request the moment
an answer arrives (wrk): every connection gets its turn. gunicorn's keep-alive loop
reads a connection's next request at once, so without a yield after each request
(``gunicorn.conf.py`` ``post_request``) a client quicker than the answer's own end
kept one greenlet running and left the others' requests unread for seconds."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import ServerFactory
from tests.integration.helpers import MiB, write_big_file
from tests.support.server import REPO
from tests.support.tools import require_tool

pytestmark = pytest.mark.server

SIZE = 64 * MiB
CONNECTIONS = 64
SECONDS = 3


def wrk_latency(url: str) -> tuple[float, int, int]:
    """The slowest answer (ms), wrk's timeouts (over 2 s) and the requests answered."""
    out = subprocess.run(
        [
            require_tool("wrk"), "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS}s",
            "-s", str(REPO / "bench" / "ranges.lua"), url, "--", str(SIZE), "4096",
        ],
        capture_output=True, text=True, timeout=SECONDS + 30, check=True,
    ).stdout  # fmt: skip
    latency = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\b", out)
    assert latency is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[latency.group(2)]
    timeouts = re.search(r"timeout (\d+)", out)
    answered = re.search(r"(\d+) requests in", out)
    assert answered is not None, out
    return (
        float(latency.group(1)) * scale,
        int(timeouts.group(1)) if timeouts else 0,
        int(answered.group(1)),
    )


def test_every_keep_alive_connection_gets_its_turn(
    data_root: Path, start_server: ServerFactory
) -> None:
    write_big_file(data_root / "big.bin", SIZE, seed=3)
    server = start_server(data_root)
    slowest_ms, timeouts, answered = wrk_latency(f"{server.url}/files/big.bin")
    assert answered > CONNECTIONS * 10
    assert timeouts == 0
    # Fair turns: about CONNECTIONS answers' time, far from the seconds a starved
    # connection waited (2 s and more).
    assert slowest_ms < 1000, slowest_ms
