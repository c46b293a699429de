"""Clients that go away early: the worker must close every file it opened for them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration import rawhttp
from tests.integration.conftest import ServerFactory
from tests.integration.helpers import (
    MiB,
    assert_healthy,
    settled_fd_count,
    sha256,
    the_worker,
    wait_fds_at_most,
    write_big_file,
)
from tests.support.server import GunicornServer

pytestmark = pytest.mark.server

BIG = 64 * MiB
CLIENTS = 50
RCVBUF = 64 * 1024


@dataclass
class Site:
    server: GunicornServer
    root: Path
    digest: str
    worker: int
    baseline: int

    def connect(self, **kwargs: int) -> rawhttp.Connection:
        return rawhttp.Connection(self.server.host, self.server.port, **kwargs)

    def assert_back_to_baseline(self) -> None:
        count = wait_fds_at_most(self.server, self.worker, self.baseline, timeout=5.0)
        assert count <= self.baseline, (
            f"worker {self.worker} still has {count} fds open (baseline {self.baseline}):\n"
            + "\n".join(sorted(_fd_targets(self.worker))[:20])
        )


def _fd_targets(pid: int) -> list[str]:
    targets = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            targets.append(f"{fd.name} -> {fd.readlink()}")
    return targets


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, module_server_factory: ServerFactory
) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("disconnects") / "data"
    root.mkdir()
    digest = write_big_file(root / "big.bin", BIG, seed=11)
    (root / "small.txt").write_bytes(b"small\n")
    server = module_server_factory(root)
    worker = server.worker_pids()[0]
    # Warm up every code path once (full body, range, early close), then measure.
    with rawhttp.Connection(server.host, server.port) as conn:
        conn.request("GET", "/files/small.txt", ["Range: bytes=0-0"])
        assert conn.read_response().status == 206
    early = rawhttp.Connection(server.host, server.port, rcvbuf=RCVBUF)
    with early:
        early.request("GET", "/files/big.bin")
        early.read_head()
    assert_healthy(server)
    baseline = settled_fd_count(server, worker)
    site = Site(server, root, digest, worker, baseline)
    site.assert_back_to_baseline()
    yield site
    assert the_worker(server) == worker, "the worker was replaced (crashed or timed out)"
    assert_healthy(server)


def open_many(site: Site, count: int, tag: str, headers=None):  # type: ignore[no-untyped-def]
    """``count`` connections, each with a GET of the big file sent and nothing read."""
    conns = []
    try:
        for index in range(count):
            conn = site.connect(rcvbuf=RCVBUF)
            conns.append(conn)
            conn.request("GET", f"/files/big.bin?client={tag}-{index}", headers)
    except BaseException:
        for conn in conns:
            conn.close()
        raise
    return conns


def wait_for_access_log(site: Site, tag: str, count: int, timeout: float = 5.0) -> None:
    """Wait until the worker has finished (and logged) ``count`` requests tagged ``tag``.

    Only then does "fds back to baseline" mean something: a request the worker has not
    even accepted yet holds no file either.
    """
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        seen = site.server.log().count(f"?client={tag}-")
        if seen >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"only {seen} of {count} {tag!r} requests finished in {timeout}s")


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_clients_reading_a_bit_then_closing(site: Site, reset: bool) -> None:
    tag = f"read-bit-{'rst' if reset else 'fin'}"
    conns = open_many(site, CLIENTS, tag)
    try:
        for index, conn in enumerate(conns):
            head = conn.read_head()
            assert head.status == 200
            assert head["Content-Length"] == str(BIG)
            first = conn.read_exact(4096 * (index + 1))
            assert len(first) == 4096 * (index + 1)
        # All 50 downloads are in flight: 50 sockets and 50 files beyond the baseline.
        assert site.server.open_fds(site.worker) >= site.baseline + 2 * CLIENTS
    finally:
        for conn in conns:
            conn.close(reset=reset)
    wait_for_access_log(site, tag, CLIENTS)
    site.assert_back_to_baseline()


def test_clients_closing_before_reading_anything(site: Site) -> None:
    conns = open_many(site, CLIENTS, "no-read")
    for conn in conns:
        conn.close()
    wait_for_access_log(site, "no-read", CLIENTS)
    site.assert_back_to_baseline()


def test_clients_closing_before_sending_a_request(site: Site) -> None:
    for index in range(CLIENTS):
        conn = site.connect()
        if index % 2:
            conn.send(b"GET /files/big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # incomplete
        conn.close(reset=bool(index % 3 == 0))
    site.assert_back_to_baseline()


def test_clients_leaving_ranged_and_multipart_downloads(site: Site) -> None:
    ranged = open_many(site, CLIENTS // 2, "ranged", ["Range: bytes=1000-"])
    multi = open_many(site, CLIENTS // 2, "multi", ["Range: bytes=0-9,33554432-"])
    try:
        for conn in ranged + multi:
            head = conn.read_head()
            assert head.status == 206
            conn.read_exact(10_000)
    finally:
        for conn in ranged + multi:
            conn.close()
    wait_for_access_log(site, "ranged", CLIENTS // 2)
    wait_for_access_log(site, "multi", CLIENTS // 2)
    site.assert_back_to_baseline()


def test_clients_leaving_a_keep_alive_connection_between_requests(site: Site) -> None:
    conns = []
    try:
        for _ in range(CLIENTS):
            conn = site.connect()
            conns.append(conn)
            conn.request("GET", "/files/small.txt")
            response = conn.read_response()
            assert (response.status, response.body) == (200, b"small\n")
    finally:
        for conn in conns:
            conn.close()
    site.assert_back_to_baseline()


def test_after_the_storm_a_full_download_is_intact(site: Site) -> None:
    conns = open_many(site, 10, "storm")
    for conn in conns:
        conn.close(reset=True)
    wait_for_access_log(site, "storm", 10)
    with site.connect() as conn:
        conn.request("GET", "/files/big.bin")
        response = conn.read_response()
    assert response.status == 200
    assert sha256(response.body) == site.digest
    site.assert_back_to_baseline()
