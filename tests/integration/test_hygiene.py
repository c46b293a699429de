"""Process hygiene, as the container runs it: an unprivileged user, a read-only root
filesystem and read-only data. The server must need no writable path but /dev/shm.

The container itself cannot be built here (no Docker engine), so the test recreates its
constraints around the real server: a private mount namespace whose root is remounted
read-only, and setpriv to drop to nobody, exactly as ``docker run --read-only`` with
``USER app`` would leave it.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import MiB, file_sha256, sha256, write_big_file
from tests.support.server import GunicornServer

pytestmark = pytest.mark.server

NOBODY = 65534


def _can_confine() -> str | None:
    """Why the confinement cannot be built here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root to unshare a mount namespace and drop privileges"
    for tool in ("unshare", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (util-linux)"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", "mount -o remount,bind,ro /"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return None if probe.returncode == 0 else f"cannot remount / read-only: {probe.stderr!r}"


@pytest.fixture
def public_data() -> Iterator[Path]:
    """A data folder nobody can read (pytest's own tmp is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="dl-hygiene-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def shm_cache() -> Iterator[Path]:
    """The digest cache where the container has one: a memory-backed folder of its user."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    folder = Path(tempfile.mkdtemp(prefix="dl-hygiene-digests-", dir=base))
    try:
        if os.geteuid() == 0:
            os.chown(folder, NOBODY, NOBODY)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def confined(data: Path, log: Path, delivery: dict[str, str], cache: Path) -> GunicornServer:
    wrapper = [
        "unshare", "-m", "--propagation", "private", "sh", "-c",
        'mount -o remount,bind,ro / && exec "$@"', "confine",
        "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
    ]  # fmt: skip
    # No HOME, no writable TMPDIR: nothing may depend on them.
    env = {**delivery, "HOME": "/nonexistent", "TMPDIR": str(data), "DL_DIGEST_CACHE": str(cache)}
    return GunicornServer(data, log, env, wrapper=wrapper)


def b64_digest(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _wait_for_repr_digest(server: GunicornServer, timeout: float = 20.0) -> str | None:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(f"{server.url}/files/big.bin", method="HEAD")
    for _ in range(400):
        with urllib.request.urlopen(request, timeout=10) as response:
            value = response.headers.get("Repr-Digest")
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(0.05)
    return None


def test_the_server_runs_unprivileged_on_a_read_only_root(
    public_data: Path, tmp_path: Path, delivery: dict[str, str], shm_cache: Path
) -> None:
    reason = _can_confine()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    digest = write_big_file(public_data / "big.bin", 8 * MiB, seed=5)
    (public_data / "big.bin").chmod(0o644)
    server = confined(public_data, tmp_path / "confined.log", delivery, shm_cache)
    try:
        server.start()
        (worker,) = server.worker_pids()
        status = Path(f"/proc/{worker}/status").read_text()
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1:] == [str(NOBODY)] * 4, uid_line
        with urllib.request.urlopen(f"{server.url}/files/big.bin", timeout=10) as response:
            body = response.read()
        assert sha256(body) == digest
        request = urllib.request.Request(
            f"{server.url}/files/big.bin", headers={"Range": "bytes=-100"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 206
            assert response.read() == body[-100:]
        # Metrics keep their values in /dev/shm, the one writable place.
        for _ in range(50):  # counted as the response closes, just after the client has it
            with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
                scraped = response.read().decode()
            if 'download_requests_total{code="206",kind="range"} 1.0' in scraped:
                break
            time.sleep(0.1)
        assert 'download_requests_total{code="206",kind="range"} 1.0' in scraped
        assert file_sha256(public_data / "big.bin") == digest
        # Digests work too, kept in the memory-backed cache folder.
        assert _wait_for_repr_digest(server) == f"sha-256=:{b64_digest(digest)}:"
        assert sorted(p.name for p in public_data.iterdir()) == ["big.bin"]  # nothing written
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()
