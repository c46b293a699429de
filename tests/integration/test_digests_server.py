"""Digests on the real gunicorn + gevent server: absent, then present once the
background hash is done; the right value on 200, 206 and HEAD; kept over a restart
without hashing again; and small requests keep being answered while a big file hashes."""

from __future__ import annotations

import base64
import os
import sqlite3
import time
from pathlib import Path

import pytest

from tests.integration import rawhttp
from tests.integration.helpers import MiB, write_big_file
from tests.support.server import GunicornServer

pytestmark = pytest.mark.server

OLD_NS = 1_700_000_000_000_000_000  # long settled: hashed at once, no racy-tick wait
POLL_LIMIT = 600  # probes at most, each bounded by the client's own timeout


def head(server: GunicornServer, target: str, *headers: str) -> rawhttp.RawResponse:
    lines = [*headers, "Connection: close"]
    return rawhttp.get(server.host, server.port, target, lines, method="HEAD")


def repr_digest(sha256_hex: str) -> str:
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256_hex)).decode()}:"


def wait_for_digest(server: GunicornServer, target: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    for _ in range(POLL_LIMIT):
        value = head(server, target).get("Repr-Digest")
        if value is not None:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    pytest.fail(f"no Repr-Digest for {target} within {timeout}s:\n{server.log()[-3000:]}")


def cache_rows(cache: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(cache / "digests.sqlite3") as db:
        return db.execute("SELECT path, size, mtime_ns, sha256, hashed_at FROM digests").fetchall()


def settled_file(path: Path, size: int, seed: int) -> str:
    digest = write_big_file(path, size, seed=seed)
    os.utime(path, ns=(OLD_NS, OLD_NS))
    return digest


def test_a_digest_appears_after_the_background_hash_and_survives_a_restart(
    tmp_path: Path, start_server
) -> None:
    root = tmp_path / "data"
    root.mkdir()
    expected = settled_file(root / "big.bin", 24 * MiB + 7, seed=3)
    cache = tmp_path / "cache"
    server = start_server(root, DL_DIGEST_CACHE=str(cache))
    master = server.process.pid
    assert len(os.listdir(f"/proc/{master}/task")) == 1  # no thread in the master

    first = head(server, "/files/big.bin")
    assert first.status == 200
    assert first.get("Repr-Digest") is None  # absent until known
    value = wait_for_digest(server, "/files/big.bin")
    assert value == repr_digest(expected)

    ranged = rawhttp.get(
        server.host,
        server.port,
        "/files/big.bin",
        ["Range: bytes=1000-1999", "Want-Digest: SHA-512;q=1, SHA-256;q=1, SHA;q=0.1"],
    )
    assert ranged.status == 206
    assert len(ranged.body) == 1000
    assert ranged["Repr-Digest"] == value
    assert ranged["Digest"] == "SHA-256=" + base64.b64encode(bytes.fromhex(expected)).decode()
    assert head(server, "/files/big.bin", "Range: bytes=-5").get("Repr-Digest") == value
    (worker,) = server.worker_pids()
    assert len(os.listdir(f"/proc/{master}/task")) == 1
    assert len(os.listdir(f"/proc/{worker}/task")) >= 2  # the worker's hashing thread
    before = cache_rows(cache)
    assert [(row[0], row[1], bytes(row[3]).hex()) for row in before] == [
        ("big.bin", 24 * MiB + 7, expected)
    ]

    server.stop()
    again = start_server(root, DL_DIGEST_CACHE=str(cache))
    restarted = head(again, "/files/big.bin")
    assert restarted.get("Repr-Digest") == value  # on the very first answer
    time.sleep(0.5)
    assert cache_rows(cache) == before  # the row was not rewritten: nothing rehashed


def test_the_event_loop_answers_while_a_big_file_hashes(tmp_path: Path, delivery) -> None:
    root = tmp_path / "data"
    root.mkdir()
    expected = settled_file(root / "huge.bin", 300 * MiB, seed=9)
    (root / "small.txt").write_bytes(b"small\n")
    server = GunicornServer(root, tmp_path / "gunicorn.log", delivery).start()
    try:
        assert head(server, "/files/huge.bin").get("Repr-Digest") is None  # starts the hash
        # Each probe is a small request to the same single worker. Had the hash run on
        # the event loop, no probe could be answered until it was done.
        gaps, absent = [], 0
        last = time.monotonic()
        deadline = last + 60
        value = None
        while value is None and time.monotonic() < deadline and len(gaps) < 20_000:
            small = rawhttp.get(server.host, server.port, "/files/small.txt", ["Connection: close"])
            assert small.body == b"small\n"
            value = head(server, "/files/huge.bin").get("Repr-Digest")
            absent += value is None
            now = time.monotonic()
            gaps.append(now - last)
            last = now
        assert value == repr_digest(expected)
        assert absent >= 5, f"only {absent} probes answered while hashing"
        assert max(gaps) < 1.0, f"a probe waited {max(gaps):.3f}s"
        print(f"probes while hashing: {absent}, slowest {max(gaps) * 1000:.1f} ms")
    finally:
        server.stop()
        (root / "huge.bin").unlink()
