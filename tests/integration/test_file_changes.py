"""Files that change while they are being downloaded: truncated, grown, replaced, removed."""

from __future__ import annotations

import hashlib
import os
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
    etag_of,
    file_sha256,
    pseudo_random,
    sha256,
    the_worker,
    write_big_file,
)
from tests.support.server import GunicornServer

pytestmark = pytest.mark.server

BIG = 64 * MiB
# A small receive buffer keeps the server's run-ahead (its send buffer plus one chunk)
# far below the point where the file is cut.
RCVBUF = 64 * 1024
READ_FIRST = 1 * MiB
TRUNCATE_TO = 16 * MiB
SMALL = b"small file body\n"
QUIET = 3.0  # seconds of silence that count as "the server stopped but kept the socket"


@dataclass
class Site:
    server: GunicornServer
    root: Path

    def connect(self, **kwargs: int) -> rawhttp.Connection:
        return rawhttp.Connection(self.server.host, self.server.port, **kwargs)


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, module_server_factory: ServerFactory
) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("changes") / "data"
    root.mkdir()
    (root / "small.txt").write_bytes(SMALL)
    # A long keep-alive: an idle-timeout close must not pass for a prompt abort.
    server = module_server_factory(root, DL_KEEPALIVE="60")
    yield Site(server, root)
    assert_healthy(server)


def read_slowly(conn: rawhttp.Connection, count: int) -> bytes:
    """Read ``count`` body bytes in small pieces with pauses (bounded in time)."""
    out = bytearray()
    deadline = time.monotonic() + 10
    while len(out) < count:
        assert time.monotonic() < deadline, "slow read took too long"
        out += conn.read_exact(min(64 * 1024, count - len(out)))
        time.sleep(0.005)
    return bytes(out)


def read_until_cut(conn: rawhttp.Connection, limit: int) -> tuple[bytes, str]:
    """Read up to ``limit`` bytes; returns them and how the stream ended.

    "eof" or "reset" when the server aborted, "complete" if ``limit`` bytes arrived,
    "timeout" if the server went quiet for ``QUIET`` seconds with the connection open:
    a short body on a live keep-alive connection, the desync hazard.
    """
    out = bytearray()
    deadline = time.monotonic() + 20
    conn.sock.settimeout(QUIET)
    try:
        while len(out) < limit:
            if time.monotonic() > deadline:
                return bytes(out), "timeout"
            try:
                data = conn.read_some(min(rawhttp.RECV_SIZE, limit - len(out)))
            except ConnectionResetError:
                return bytes(out), "reset"
            except TimeoutError:
                return bytes(out), "timeout"
            if not data:
                return bytes(out), "eof"
            out += data
        return bytes(out), "complete"
    finally:
        conn.sock.settimeout(conn.timeout)


def assert_connection_dead(conn: rawhttp.Connection) -> None:
    """A further request on the socket fails; it never yields another response's bytes."""
    try:
        conn.send(rawhttp.build_request("GET", "/files/small.txt"))
    except (BrokenPipeError, ConnectionResetError):
        return
    assert conn.closed_by_peer(wait=3.0), "the server kept the aborted connection open"


def test_truncated_mid_transfer_aborts_the_keep_alive_connection(site: Site) -> None:
    path = site.root / "truncate-me.bin"
    write_big_file(path, BIG, seed=4)
    old = path.read_bytes()
    old_etag = etag_of(path)
    worker = the_worker(site.server)
    with site.connect(rcvbuf=RCVBUF) as conn:
        conn.request("GET", "/files/truncate-me.bin")
        head = conn.read_head()
        assert head.status == 200, head
        assert head["Content-Length"] == str(BIG)
        assert head["ETag"] == old_etag
        received = read_slowly(conn, READ_FIRST)
        os.truncate(path, TRUNCATE_TO)
        rest, ending = read_until_cut(conn, BIG - len(received))
        received += rest
        assert ending in ("eof", "reset"), (ending, len(received))
        assert len(received) < BIG
        # Every byte received is file content at its own offset: nothing of a later
        # response (or any framing) was spliced into the body.
        assert received == old[: len(received)]
        if ending == "eof":
            assert len(received) <= TRUNCATE_TO
        assert_connection_dead(conn)

    with site.connect() as fresh:
        fresh.request("GET", "/files/truncate-me.bin")
        response = fresh.read_response()
    assert response.status == 200
    assert response["Content-Length"] == str(TRUNCATE_TO)
    assert response["ETag"] == etag_of(path) != old_etag
    assert sha256(response.body) == sha256(old[:TRUNCATE_TO])
    # The abort was the service's decision, not a crashed or restarted worker.
    assert the_worker(site.server) == worker
    assert_healthy(site.server)


def test_truncated_with_a_pipelined_request_never_answers_it_in_the_body(site: Site) -> None:
    """The classic desync: request 2 already waits behind request 1 on the connection."""
    path = site.root / "truncate-pipelined.bin"
    write_big_file(path, BIG, seed=5)
    old = path.read_bytes()
    with site.connect(rcvbuf=RCVBUF) as conn:
        conn.send(
            rawhttp.build_request("GET", "/files/truncate-pipelined.bin", ["Range: bytes=0-"])
            + rawhttp.build_request("GET", "/files/small.txt")
        )
        head = conn.read_head()
        assert head.status == 206, head
        assert head["Content-Range"] == f"bytes 0-{BIG - 1}/{BIG}"
        received = read_slowly(conn, READ_FIRST)
        os.truncate(path, TRUNCATE_TO)
        rest, ending = read_until_cut(conn, BIG - len(received))
        received += rest
        assert ending in ("eof", "reset"), (ending, len(received))
        assert received == old[: len(received)]
        assert b"HTTP/1.1 200" not in received[READ_FIRST:]
        assert SMALL not in received
        assert_connection_dead(conn)
    assert_healthy(site.server)


def test_truncated_to_zero_before_the_body_is_read(site: Site) -> None:
    path = site.root / "truncate-zero.bin"
    write_big_file(path, BIG, seed=6)
    # What was already in the socket buffers when the file shrank still arrives (the
    # send buffer alone may autotune to several MiB): a prefix of the old bytes, cut.
    old = path.read_bytes()
    with site.connect(rcvbuf=RCVBUF) as conn:
        conn.request("GET", "/files/truncate-zero.bin")
        head = conn.read_head()
        assert head.status == 200
        os.truncate(path, 0)
        received, ending = read_until_cut(conn, BIG)
        assert ending in ("eof", "reset"), (ending, len(received))
        assert len(received) < BIG
        assert received == old[: len(received)]
        assert_connection_dead(conn)
    with site.connect() as fresh:
        fresh.request("GET", "/files/truncate-zero.bin")
        response = fresh.read_response()
    assert (response.status, response["Content-Length"], response.body) == (200, "0", b"")


def test_replaced_by_rename_mid_transfer_completes_with_the_old_version(site: Site) -> None:
    path = site.root / "replace-me.bin"
    old_digest = write_big_file(path, BIG, seed=7)
    old_etag = etag_of(path)
    new_content = pseudo_random(3 * MiB + 5, seed=8)
    staging = site.root / "staging.tmp"
    staging.write_bytes(new_content)

    with site.connect(rcvbuf=RCVBUF) as conn:
        conn.request("GET", "/files/replace-me.bin")
        head = conn.read_head()
        assert head.status == 200
        assert head["ETag"] == old_etag
        assert head["Content-Length"] == str(BIG)
        digest = hashlib.sha256(read_slowly(conn, READ_FIRST))
        os.replace(staging, path)
        remaining = BIG - READ_FIRST
        while remaining:
            piece = conn.read_exact(min(4 * MiB, remaining))
            digest.update(piece)
            remaining -= len(piece)
        assert digest.hexdigest() == old_digest
        # The connection is still in step: the next request on it sees the new file.
        conn.request("GET", "/files/replace-me.bin")
        again = conn.read_response()
    assert again.status == 200
    assert again["ETag"] == etag_of(path) != old_etag
    assert again.body == new_content

    with site.connect() as fresh:
        fresh.request("GET", "/files/replace-me.bin", [f"If-Range: {old_etag}", "Range: bytes=0-9"])
        stale = fresh.read_response()
    # A resume against the old version must not splice: If-Range fails, whole new file.
    assert stale.status == 200
    assert stale.body == new_content


def test_unlinked_mid_transfer_completes_with_the_old_bytes(site: Site) -> None:
    path = site.root / "unlink-me.bin"
    old_digest = write_big_file(path, 16 * MiB, seed=9)
    with site.connect(rcvbuf=RCVBUF) as conn:
        conn.request("GET", "/files/unlink-me.bin")
        head = conn.read_head()
        assert head.status == 200
        first = read_slowly(conn, READ_FIRST)
        path.unlink()
        rest = conn.read_exact(16 * MiB - READ_FIRST)
        assert sha256(first + rest) == old_digest
        conn.request("GET", "/files/unlink-me.bin")
        gone = conn.read_response()
    assert gone.status == 404
    assert gone.body == b"Not Found\n"


def test_grown_mid_transfer_sends_exactly_the_planned_length(site: Site) -> None:
    path = site.root / "grow-me.bin"
    size = 8 * MiB
    old_digest = write_big_file(path, size, seed=10)
    with site.connect(rcvbuf=RCVBUF) as conn:
        conn.request("GET", "/files/grow-me.bin", ["Range: bytes=1024-"])
        head = conn.read_head()
        assert head.status == 206
        assert head["Content-Range"] == f"bytes 1024-{size - 1}/{size}"
        first = read_slowly(conn, READ_FIRST)
        with open(path, "ab") as f:
            f.write(b"\xee" * (2 * MiB))
        rest = conn.read_exact(size - 1024 - READ_FIRST)
        assert file_sha256(path, size) == old_digest
        with open(path, "rb") as f:
            assert first + rest == f.read(size)[1024:]
        # Not a byte more: the next response starts right after the planned body.
        conn.request("GET", "/files/small.txt")
        nxt = conn.read_response()
    assert (nxt.status, nxt.body) == (200, SMALL)
