"""Clients that stop reading are dropped after DL_SEND_TIMEOUT, and their files closed.

A stalled reader keeps its connection open and accepts no bytes: without a send
timeout the worker would hold its greenlet, descriptor and buffers for ever.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ServerFactory
from tests.integration.helpers import (
    MiB,
    assert_healthy,
    settled_fd_count,
    the_worker,
    wait_fds_at_most,
    write_big_file,
)
from tests.support.server import GunicornServer

pytestmark = pytest.mark.server

SEND_TIMEOUT = 1
STALLED = 5


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_server_factory: ServerFactory
) -> GunicornServer:
    root: Path = tmp_path_factory.mktemp("stalled")
    write_big_file(root / "big.bin", 64 * MiB, seed=7)
    return module_server_factory(root, DL_SEND_TIMEOUT=str(SEND_TIMEOUT))


def stalled_reader(server: GunicornServer) -> socket.socket:
    """Ask for the big file, read only the first bytes, then stop reading."""
    sock = socket.socket()
    # Small, and set before connecting: a buffer shrunk later confuses TCP's window.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect((server.host, server.port))
    sock.sendall(b"GET /files/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    assert sock.recv(1024).startswith(b"HTTP/1.1 200 ")
    return sock


@pytest.fixture
def readers(server: GunicornServer) -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    yield socks
    for sock in socks:
        sock.close()


def drained_until_closed(sock: socket.socket, limit: float) -> int:
    """Read what the server had buffered; returns the byte count once it closes."""
    total, deadline = 0, time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            data = sock.recv(1 << 20)
        except ConnectionResetError:
            return total
        if not data:
            return total
        total += len(data)
    raise AssertionError(f"the server kept the connection open for {limit}s")


def test_stalled_readers_are_dropped_and_their_files_closed(
    server: GunicornServer, readers: list[socket.socket]
) -> None:
    pid = the_worker(server)
    baseline = settled_fd_count(server, pid)
    readers += [stalled_reader(server) for _ in range(STALLED)]
    # Each stalled download holds its client socket and its file while it waits.
    assert wait_fds_at_most(server, pid, baseline + 2 * STALLED, timeout=1) >= baseline + STALLED
    time.sleep(SEND_TIMEOUT + 2)
    # Both descriptors of every stalled download are gone, without the clients' help.
    assert wait_fds_at_most(server, pid, baseline, timeout=5) <= baseline
    for sock in readers:
        assert drained_until_closed(sock, limit=5) < 64 * MiB  # cut short, never finished
    assert_healthy(server)
    # A stalled client is the client's doing: one INFO line each at most, no traceback.
    log = "\n".join(line for line in server.log().splitlines() if not line.startswith("{"))
    assert "Traceback" not in log
    assert "[ERROR]" not in log


def test_a_slow_reader_that_keeps_reading_is_not_dropped(server: GunicornServer) -> None:
    """The timeout is for no progress at all, not for a slow download."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"GET /files/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-4194303\r\n\r\n")
        received, deadline = 0, time.monotonic() + 3 * SEND_TIMEOUT
        while time.monotonic() < deadline:
            data = sock.recv(64 * 1024)
            assert data, "the server dropped a client that was still reading"
            received += len(data)
            time.sleep(0.05)  # about 1.3 MB/s: slow, but never stalled for a second
        assert received > 0
