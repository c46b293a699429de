"""DL_RATE_LIMIT and DL_RATE_LIMIT_AFTER against the real server, accurate within 10%.

Timing is the behaviour under test here: a download of a known size must take as long
as the limit says (from the request to its last byte), not much more and not less.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ServerFactory
from tests.integration.helpers import MiB, sha256, write_big_file
from tests.support.server import GunicornServer

pytestmark = pytest.mark.server

RATE = 1 * MiB
BURST = MiB // 2
SIZE = 3 * MiB + BURST  # three seconds past the burst


@pytest.fixture(scope="module")
def limited(
    tmp_path_factory: pytest.TempPathFactory, module_server_factory: ServerFactory
) -> tuple[GunicornServer, str]:
    root: Path = tmp_path_factory.mktemp("limited")
    digest = write_big_file(root / "file.bin", SIZE, seed=11)
    server = module_server_factory(root, DL_RATE_LIMIT="1m", DL_RATE_LIMIT_AFTER="512k")
    return server, digest


def timed_download(server: GunicornServer, path: str) -> tuple[bytes, float, float]:
    """(body, seconds to the end of the burst, seconds to the last byte)."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        start = time.monotonic()
        sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        data, burst_done = bytearray(), None
        while chunk := sock.recv(1 << 16):
            data += chunk
            if burst_done is None and len(data) >= BURST:
                burst_done = time.monotonic() - start
        elapsed = time.monotonic() - start
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 ")
    assert burst_done is not None
    return body, burst_done, elapsed


def test_a_download_takes_as_long_as_the_rate_limit_says(limited) -> None:
    server, digest = limited
    body, burst, elapsed = timed_download(server, "/files/file.bin")
    assert sha256(body) == digest
    expected = (SIZE - BURST) / RATE
    assert expected * 0.9 <= elapsed <= expected * 1.1, f"{elapsed:.2f}s, expected {expected}s"
    assert burst < 0.5, f"the free burst took {burst:.2f}s"


def test_the_limit_is_per_download_not_per_worker(limited) -> None:
    """Two downloads at once each get the full rate."""
    server, digest = limited
    results: list[tuple[bytes, float, float]] = []
    threads = [
        threading.Thread(target=lambda: results.append(timed_download(server, "/files/file.bin")))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 2
    expected = (SIZE - BURST) / RATE
    for body, _, elapsed in results:
        assert sha256(body) == digest
        assert expected * 0.9 <= elapsed <= expected * 1.1, f"{elapsed:.2f}s"
