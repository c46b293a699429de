"""DL_MAX_DOWNLOADS_PER_CLIENT against the real server with two workers: the cap holds
across processes, the refusal is 429 with Retry-After, and slots free when downloads
end or are abandoned, or when the worker serving them is killed."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import rawhttp
from tests.integration.conftest import ServerFactory
from tests.integration.helpers import MiB, write_big_file
from tests.support.server import GunicornServer

pytestmark = pytest.mark.server

CAP = 3
CLOSE = [("Connection", "close")]


def capped_server(
    tmp_path_factory: pytest.TempPathFactory, factory: ServerFactory, cap: int, workers: int
) -> GunicornServer:
    """A server over big.bin and small.txt where slow downloads stay in flight."""
    root: Path = tmp_path_factory.mktemp("capped")
    write_big_file(root / "big.bin", 16 * MiB, seed=3)
    (root / "small.txt").write_bytes(b"small")
    return factory(
        root,
        DL_MAX_DOWNLOADS_PER_CLIENT=str(cap),
        DL_WORKERS=str(workers),
        DL_RATE_LIMIT="256k",
    )


@pytest.fixture(scope="module")
def capped(
    tmp_path_factory: pytest.TempPathFactory, module_server_factory: ServerFactory
) -> GunicornServer:
    """Two workers prove the count is shared."""
    return capped_server(tmp_path_factory, module_server_factory, CAP, workers=2)


@pytest.fixture
def downloads(capped: GunicornServer) -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def start_download(server: GunicornServer, path: str = "/files/big.bin") -> socket.socket:
    """A fresh connection (so the workers share them out) that starts a download."""
    sock = socket.create_connection((server.host, server.port), timeout=5)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return sock


def status_of(sock: socket.socket) -> tuple[int, bytes]:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "connection closed before the header section"
        head += chunk
    return int(head.split(b" ", 2)[1]), head


def wait_until_admitted(server: GunicornServer) -> None:
    """Slots of an earlier test's downloads free once their workers notice the close."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        sock = start_download(server, "/files/small.txt")
        status = status_of(sock)[0]
        sock.close()
        if status == 200:
            return
        time.sleep(0.1)
    raise AssertionError("the client was never admitted again")


def test_the_cap_holds_across_workers_and_refuses_with_429(capped, downloads) -> None:
    wait_until_admitted(capped)
    for _ in range(CAP):
        downloads.append(start_download(capped))
        assert status_of(downloads[-1])[0] == 200
    for _ in range(4):  # whichever worker takes it, the client is over its cap
        response = rawhttp.get(
            capped.host, capped.port, "/files/big.bin", [("Connection", "close")]
        )
        assert response.status == 429, response
        assert response.get("Retry-After") == "5"
        assert response.body.startswith(b"Too Many Requests")
    # What reads no file is not a download: HEAD, listings and 304s still answer.
    head = rawhttp.get(capped.host, capped.port, "/files/big.bin", CLOSE, method="HEAD")
    assert head.status == 200
    assert rawhttp.get(capped.host, capped.port, "/files/", CLOSE).status == 200


def test_an_abandoned_download_frees_its_slot(capped, downloads) -> None:
    wait_until_admitted(capped)
    for _ in range(CAP):
        downloads.append(start_download(capped))
        assert status_of(downloads[-1])[0] == 200
    refused = start_download(capped, "/files/small.txt")
    assert status_of(refused)[0] == 429
    refused.close()
    downloads.pop().close()
    wait_until_admitted(capped)  # the worker notices at its next write


@pytest.fixture(scope="module")
def capped_one_worker(
    tmp_path_factory: pytest.TempPathFactory, module_server_factory: ServerFactory
) -> GunicornServer:
    return capped_server(tmp_path_factory, module_server_factory, 1, workers=1)


def test_a_killed_workers_slots_are_freed_by_the_master(capped_one_worker, downloads) -> None:
    """SIGKILL runs no finally block: gunicorn's master drops the dead worker's counts,
    so the client is not refused until the next restart."""
    server = capped_one_worker
    (victim,) = server.worker_pids()
    downloads.append(start_download(server))
    assert status_of(downloads[-1])[0] == 200
    refused = start_download(server, "/files/small.txt")
    assert status_of(refused)[0] == 429
    refused.close()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while server.worker_pids() in ([], [victim]):
        assert time.monotonic() < deadline, "no new worker"
        time.sleep(0.05)
    wait_until_admitted(server)
    assert f"worker {victim} exited holding 1 download slots: freed" in server.log()
