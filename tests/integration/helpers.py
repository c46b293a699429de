"""Shared helpers for the integration tests: files, digests, health and fd polling."""

from __future__ import annotations

import hashlib
import os
import random
import time
from pathlib import Path

from tests.integration import rawhttp
from tests.support.server import GunicornServer

MiB = 1024 * 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pseudo_random(size: int, seed: int) -> bytes:
    """Reproducible incompressible bytes, so every slice is distinguishable."""
    return random.Random(seed).randbytes(size)


def write_big_file(path: Path, size: int, seed: int) -> str:
    """Write ``size`` bytes in 1 MiB chunks; returns the SHA-256 of the content."""
    digest = hashlib.sha256()
    chunk = pseudo_random(MiB, seed)
    with open(path, "wb") as f:
        written = 0
        index = 0
        while written < size:
            # Vary each chunk so offsets cannot be confused with one another.
            piece = (index.to_bytes(8, "big") + chunk[8:])[: size - written]
            f.write(piece)
            digest.update(piece)
            written += len(piece)
            index += 1
    return digest.hexdigest()


def file_sha256(path: Path, limit: int | None = None) -> str:
    digest = hashlib.sha256()
    remaining = os.path.getsize(path) if limit is None else limit
    with open(path, "rb") as f:
        while remaining > 0:
            piece = f.read(min(MiB, remaining))
            if not piece:
                break
            digest.update(piece)
            remaining -= len(piece)
    return digest.hexdigest()


def etag_of(path: Path) -> str:
    """The ETag the service computes (size and mtime in ns, both hex)."""
    facts = os.stat(path)
    return f'"{facts.st_size:x}-{facts.st_mtime_ns:x}"'


def assert_healthy(server: GunicornServer) -> None:
    response = rawhttp.get(server.host, server.port, "/healthz", [("Connection", "close")])
    assert response.status == 200, response
    assert response.body == b"ok\n"


def the_worker(server: GunicornServer) -> int:
    pids = server.worker_pids()
    assert len(pids) == 1, pids
    return pids[0]


def settled_fd_count(server: GunicornServer, pid: int, *, timeout: float = 5.0) -> int:
    """The worker's fd count once two polls 0.1 s apart agree (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    last = server.open_fds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = server.open_fds(pid)
        if now == last:
            return now
        last = now
    return last


def wait_fds_at_most(server: GunicornServer, pid: int, limit: int, timeout: float = 5.0) -> int:
    """Poll /proc/<pid>/fd until at most ``limit`` fds are open; returns the last count."""
    deadline = time.monotonic() + timeout
    count = server.open_fds(pid)
    while count > limit and time.monotonic() < deadline:
        time.sleep(0.05)
        count = server.open_fds(pid)
    return count
