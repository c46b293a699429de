"""The access log of a real gevent worker: batched lines stay whole and one per request
under concurrent keep-alive load, and none is lost when the server stops."""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path

import pytest

from tests.integration.conftest import ServerFactory
from tests.integration.helpers import write_big_file

pytestmark = pytest.mark.server

CONNECTIONS = 8
REQUESTS_EACH = 60


def ranges_over_one_connection(port: int, worker: int, statuses: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for n in range(REQUESTS_EACH):
            start = (worker * REQUESTS_EACH + n) * 100
            conn.request(
                "GET",
                "/files/big.bin",
                headers={"Range": f"bytes={start}-{start + 99}", "X-Request-Id": f"w{worker}-{n}"},
            )
            reply = conn.getresponse()
            reply.read()
            statuses.append(reply.status)
    finally:
        conn.close()


def test_concurrent_requests_give_one_whole_line_each_and_none_is_lost_at_stop(
    data_root: Path, start_server: ServerFactory
) -> None:
    write_big_file(data_root / "big.bin", 1024 * 1024, seed=7)
    server = start_server(data_root)
    statuses: list[int] = []
    threads = [
        threading.Thread(target=ranges_over_one_connection, args=(server.port, w, statuses))
        for w in range(CONNECTIONS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [206] * (CONNECTIONS * REQUESTS_EACH)
    server.stop()  # SIGTERM right after the last answer: a graceful exit
    lines = [line for line in server.log().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]  # every line whole JSON
    ids = sorted(r["id"] for r in records if r["target"] == "/files/big.bin")
    expected = sorted(f"w{w}-{n}" for w in range(CONNECTIONS) for n in range(REQUESTS_EACH))
    assert ids == expected
    assert all(r["bytes"] == 100 and r["status"] == 206 for r in records if r["id"] in ids)
