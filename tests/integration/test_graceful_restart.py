"""Graceful restarts: downloads in flight survive SIGHUP and SIGTERM; hard stops resume.

gunicorn's master, on ``SIGHUP``, re-reads ``gunicorn.conf.py``, starts new workers and
sends the old ones ``SIGTERM``; on ``SIGTERM`` it closes the listeners, sends its
workers ``SIGTERM`` and waits ``graceful_timeout`` (DL_GRACEFUL_TIMEOUT) before
``SIGKILL``. A gevent worker that gets ``SIGTERM`` stops accepting and keeps serving the
connections it has until they end or ``graceful_timeout`` runs out
(``gunicorn/workers/ggevent.py``, ``GeventWorker.run``).

So a download shorter than ``graceful_timeout`` completes byte-exact across a reload
or a stop; a longer one is cut, and the client must resume it (``curl -C -``), as it
must after a hard kill. Each test starts its own server(s), since it signals them.

The raw-socket downloads below read at a fixed rate with a small receive buffer, so the
server is still sending (it still holds the file open) when the signal arrives.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration import rawhttp
from tests.integration.helpers import (
    MiB,
    assert_healthy,
    file_sha256,
    sha256,
    the_worker,
    write_big_file,
)
from tests.support.server import GunicornServer
from tests.support.tools import require_tool

pytestmark = pytest.mark.server

SIZE = 32 * MiB
RCVBUF = 64 * 1024
READ_STEP = 64 * 1024
#: 32 MiB at 12 MiB/s: a download of about 2.7 s, well inside a 10 s graceful timeout.
FAST_ENOUGH = 12 * MiB
#: 32 MiB at 4 MiB/s: about 8 s, far longer than a 1 s graceful timeout.
TOO_SLOW = 4 * MiB
SIGNAL_AT = 4 * MiB  # bytes read before the signal is sent
GRACEFUL = 10
SHORT_GRACEFUL = 1
CURL_RATE = "4M"  # bytes per second for curl --limit-rate (64 MiB: 16 s if never cut)
CURL_SIZE = 64 * MiB
CURL_TIMEOUT = 60.0

StartServer = Callable[..., GunicornServer]


@pytest.fixture
def data(data_root: Path) -> tuple[Path, str]:
    """``data_root`` with ``big.bin`` (SIZE bytes); returns the root and its SHA-256."""
    return data_root, write_big_file(data_root / "big.bin", SIZE, seed=1999)


@pytest.fixture
def servers() -> Iterator[list[GunicornServer]]:
    """Servers a test starts itself (it signals them); all stopped at the end."""
    started: list[GunicornServer] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()


def start(
    servers: list[GunicornServer], root: Path, log: Path, delivery: dict[str, str], **env: str
) -> GunicornServer:
    server = GunicornServer(root, log, {**delivery, **env})
    servers.append(server)
    return server.start()


# -- observing the server -----------------------------------------------------------------


def holds_file(pid: int, path: Path) -> bool:
    """True while process ``pid`` has ``path`` open (its download is not finished)."""
    wanted = os.path.realpath(path)
    try:
        entries = list(Path(f"/proc/{pid}/fd").iterdir())
    except FileNotFoundError:
        return False
    for entry in entries:
        try:
            if os.readlink(entry) == wanted:
                return True
        except OSError:
            pass
    return False


def serving_pid(server: GunicornServer, sock: socket.socket) -> int | None:
    """The worker holding the server side of the client connection ``sock``."""
    client_port = sock.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        if (local_port, remote_port) == (server.port, client_port):
            inode = fields[9]
    if inode is None:
        return None
    for pid in server.worker_pids():
        for entry in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(entry) == f"socket:[{inode}]":
                    return pid
            except OSError:
                pass
    return None


def health_from(server: GunicornServer) -> int | None:
    """GET /healthz on a keep-alive connection; returns the PID of the worker answering."""
    with rawhttp.Connection(server.host, server.port) as conn:
        conn.request("GET", "/healthz")
        response = conn.read_response()
        assert (response.status, response.body) == (200, b"ok\n")
        return serving_pid(server, conn.sock)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout}s")
        time.sleep(0.05)


# -- a slow raw download --------------------------------------------------------------------


class SlowDownload:
    """GET big.bin on a connection with a small receive buffer, read at ``rate`` B/s."""

    def __init__(self, server: GunicornServer, rate: int) -> None:
        self.rate = rate
        self.conn = rawhttp.Connection(server.host, server.port, timeout=5, rcvbuf=RCVBUF)
        self.body = bytearray()
        self.closed_early = False
        try:
            self.conn.request("GET", "/files/big.bin")
            head = self.conn.read_head()
            assert head.status == 200, head.head
            assert head["Content-Length"] == str(SIZE)
        except BaseException:
            self.conn.close()
            raise
        self.started = time.monotonic()

    def close(self) -> None:
        self.conn.close()

    def read(self, until: int, deadline: float) -> None:
        """Read up to ``until`` body bytes at the rate; stops early at EOF or a reset."""
        while len(self.body) < until:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.body)} of {until} bytes before the deadline")
            # Pace: never ahead of ``rate`` since the start.
            ahead = len(self.body) / self.rate - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)
            try:
                data = self.conn.read_some(min(READ_STEP, until - len(self.body)))
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed_early = True
                return
            self.body += data


# -- the tests ----------------------------------------------------------------------------


def test_reload_lets_a_download_in_flight_finish_and_a_new_worker_answers(
    data: tuple[Path, str],
    servers: list[GunicornServer],
    tmp_path: Path,
    delivery: dict[str, str],
) -> None:
    root, digest = data
    server = start(servers, root, tmp_path / "hup.log", delivery, DL_GRACEFUL_TIMEOUT=str(GRACEFUL))
    assert server.process is not None
    old = the_worker(server)
    download = SlowDownload(server, FAST_ENOUGH)
    try:
        download.read(SIGNAL_AT, time.monotonic() + GRACEFUL)
        signalled = time.monotonic()
        os.kill(server.process.pid, signal.SIGHUP)
        # The old worker is still sending: the reload really catches a download in flight.
        assert holds_file(old, root / "big.bin")
        download.read(SIZE, signalled + GRACEFUL)
        finished = time.monotonic()
    finally:
        download.close()
    assert not download.closed_early, f"cut after {len(download.body)} of {SIZE} bytes"
    assert sha256(download.body) == digest
    assert finished - signalled < GRACEFUL
    # The old worker leaves once its connections are done; a new one serves.
    wait_for(lambda: old not in server.worker_pids(), 5, "the old worker gone")
    wait_for(lambda: len(server.worker_pids()) == 1, 5, "one worker")
    new = the_worker(server)
    assert new != old
    assert health_from(server) == new
    assert "Hang up" in server.log()
    print(
        f"\n[reload DL_SENDFILE={delivery['DL_SENDFILE']}]"
        f" {SIZE} bytes in {finished - download.started:.2f}s,"
        f" SIGHUP after {SIGNAL_AT} bytes; worker {old} -> {new}"
    )


def test_stop_lets_a_download_in_flight_finish_then_the_master_exits(
    data: tuple[Path, str],
    servers: list[GunicornServer],
    tmp_path: Path,
    delivery: dict[str, str],
) -> None:
    root, digest = data
    server = start(
        servers, root, tmp_path / "term.log", delivery, DL_GRACEFUL_TIMEOUT=str(GRACEFUL)
    )
    assert server.process is not None
    worker = the_worker(server)
    download = SlowDownload(server, FAST_ENOUGH)
    try:
        download.read(SIGNAL_AT, time.monotonic() + GRACEFUL)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert holds_file(worker, root / "big.bin")
        download.read(SIZE, signalled + GRACEFUL)
        finished = time.monotonic()
        # Still running while the download was: the master waits for its worker.
        assert finished - signalled < GRACEFUL
    finally:
        download.close()
    assert not download.closed_early, f"cut after {len(download.body)} of {SIZE} bytes"
    assert sha256(download.body) == digest
    status = server.process.wait(timeout=GRACEFUL + 5)
    exited = time.monotonic()
    assert status == 0, server.log()
    assert exited - signalled < GRACEFUL + 2
    assert "Worker graceful timeout" not in server.log()
    print(
        f"\n[stop DL_SENDFILE={delivery['DL_SENDFILE']}]"
        f" download done {finished - signalled:.2f}s after SIGTERM,"
        f" master exited after {exited - signalled:.2f}s (graceful_timeout {GRACEFUL}s)"
    )


def curl_resume(curl: str, url: str, out: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [curl, "-sS", "-f", "-C", "-", "-o", str(out), url],
        capture_output=True,
        timeout=CURL_TIMEOUT,
        check=False,
    )


def test_a_download_longer_than_graceful_timeout_is_cut_and_resumes(
    data: tuple[Path, str],
    servers: list[GunicornServer],
    tmp_path: Path,
    delivery: dict[str, str],
) -> None:
    """Past DL_GRACEFUL_TIMEOUT the download is cut: clients must resume, and can."""
    curl = require_tool("curl")
    root, digest = data
    server = start(
        servers, root, tmp_path / "cut.log", delivery, DL_GRACEFUL_TIMEOUT=str(SHORT_GRACEFUL)
    )
    assert server.process is not None
    download = SlowDownload(server, TOO_SLOW)
    try:
        download.read(SIGNAL_AT // 2, time.monotonic() + 5)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        download.read(SIZE, signalled + SHORT_GRACEFUL + 8)
        cut = time.monotonic()
    finally:
        download.close()
    assert download.closed_early, "the download finished: it was meant to outlast the timeout"
    received = len(download.body)
    assert 0 < received < SIZE
    server.process.wait(timeout=SHORT_GRACEFUL + 5)
    # What arrived is a true prefix of the file...
    partial = tmp_path / "big.bin.part"
    partial.write_bytes(download.body)
    assert file_sha256(root / "big.bin", limit=received) == sha256(download.body)
    # ...and curl -C - completes it from a fresh server.
    fresh = start(servers, root, tmp_path / "fresh.log", delivery)
    result = curl_resume(curl, f"{fresh.url}/files/big.bin", partial)
    assert result.returncode == 0, result.stderr
    assert partial.stat().st_size == SIZE
    assert file_sha256(partial) == digest
    resumed = [json.loads(line) for line in fresh.log().splitlines() if line.startswith("{")]
    downloads = [r for r in resumed if r["target"] == "/files/big.bin"]
    assert [(r["status"], r["bytes"], r["outcome"]) for r in downloads] == [
        (206, SIZE - received, "complete")
    ]
    print(
        f"\n[cut DL_SENDFILE={delivery['DL_SENDFILE']}]"
        f" graceful_timeout {SHORT_GRACEFUL}s: cut {cut - signalled:.2f}s"
        f" after SIGTERM at {received} of {SIZE} bytes; curl -C - resumed byte-exact"
    )


def test_curl_interrupted_by_a_hard_kill_resumes_byte_exact(
    data_root: Path,
    servers: list[GunicornServer],
    tmp_path: Path,
    delivery: dict[str, str],
) -> None:
    curl = require_tool("curl")
    digest = write_big_file(data_root / "big.bin", CURL_SIZE, seed=2003)
    # A killed master cannot remove its metrics folder: keep it in tmp_path, not /dev/shm.
    metrics = str(tmp_path / "metrics")
    server = start(servers, data_root, tmp_path / "killed.log", delivery, DL_METRICS_DIR=metrics)
    assert server.process is not None
    worker = the_worker(server)
    out = tmp_path / "big.bin"
    command = [
        curl,
        "-sS",
        "--limit-rate",
        CURL_RATE,
        "-o",
        str(out),
        f"{server.url}/files/big.bin",
    ]
    errors = tmp_path / "curl-first.err"
    with open(errors, "wb") as stderr:
        first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_for(lambda: out.exists() and out.stat().st_size >= SIGNAL_AT, 10, "4 MiB received")
        assert holds_file(worker, data_root / "big.bin")  # the server is mid-transfer
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        first.wait(timeout=CURL_TIMEOUT)
    finally:
        if first.poll() is None:
            first.kill()
        first.wait(timeout=10)
    # curl reports the short transfer (18: partial file; 56: receive failure).
    assert first.returncode in (18, 56), (first.returncode, errors.read_text())
    kept = out.stat().st_size
    assert 0 < kept < CURL_SIZE
    fresh = start(servers, data_root, tmp_path / "fresh.log", delivery)
    result = curl_resume(curl, f"{fresh.url}/files/big.bin", out)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size == CURL_SIZE
    assert file_sha256(out) == digest
    assert_healthy(fresh)
    print(
        f"\n[kill DL_SENDFILE={delivery['DL_SENDFILE']}]"
        f" curl --limit-rate {CURL_RATE} cut by SIGKILL at {kept} of"
        f" {CURL_SIZE} bytes (exit {first.returncode}); curl -C - resumed byte-exact"
    )
