"""Digests with real clients: aria2c checks the whole download against the ``Digest``
it is sent (a wrong one fails it), ``aria2c -M`` checks every piece of a download
against the file's Metalink (a wrong piece hash fails it), and ``sha256sum -c`` checks
a mirror made with curl against the folder's ``?format=sha256`` listing."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.clients.support import aria2c_command, run, sha256_file
from tests.integration.helpers import MiB, write_big_file
from tests.support.server import GunicornServer
from tests.support.tools import require_tool

pytestmark = pytest.mark.clients

OLD_NS = 1_700_000_000_000_000_000  # long settled: hashed at once
ARIA2_CHECKSUM_ERROR = 32  # aria2c's exit status for "checksum validation failed"


@pytest.fixture
def site(tmp_path: Path, delivery: dict[str, str]) -> Iterator[tuple[Path, Path, list]]:
    root = tmp_path / "data"
    root.mkdir()
    cache = tmp_path / "cache"
    servers: list[GunicornServer] = []
    yield root, cache, servers
    for server in servers:
        server.stop()


def start(
    tmp_path: Path,
    site: tuple[Path, Path, list],
    delivery: dict[str, str],
    extra: dict[str, str] | None = None,
) -> GunicornServer:
    root, cache, servers = site
    log = tmp_path / f"gunicorn-{len(servers)}.log"
    env = {**delivery, "DL_DIGEST_CACHE": str(cache), **(extra or {})}
    server = GunicornServer(root, log, env)
    servers.append(server)
    return server.start()


def settled(path: Path) -> None:
    os.utime(path, ns=(OLD_NS, OLD_NS))


def wait_for_digest(url: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, method="HEAD")
    for _ in range(600):
        with urllib.request.urlopen(request, timeout=10) as response:
            value = response.headers.get("Repr-Digest")
        if value is not None:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    pytest.fail(f"no Repr-Digest for {url} within {timeout}s")


def aria2c(url: str, out_dir: Path, name: str, log: Path) -> list[str]:
    return aria2c_command(url, out_dir, name, split=4, extra=["--log-level=info", f"--log={log}"])


def test_aria2c_verifies_the_download_with_the_digest_it_is_sent(
    tmp_path: Path, site: tuple[Path, Path, list], delivery: dict[str, str], out_dir: Path
) -> None:
    root, cache, _ = site
    expected = write_big_file(root / "big.bin", 24 * MiB + 321, seed=11)
    settled(root / "big.bin")
    server = start(tmp_path, site, delivery)
    url = f"{server.url}/files/big.bin"
    wait_for_digest(url)

    # aria2c sends Want-Digest, takes the first response's Digest and, once every
    # segment is in, hashes the whole file and compares.
    good_log = tmp_path / "aria2-good.log"
    run(aria2c(url, out_dir, "big.bin", good_log))
    assert sha256_file(out_dir / "big.bin") == expected
    log = good_log.read_text(errors="replace")
    assert "Want-Digest: SHA-512;q=1, SHA-256;q=1, SHA;q=0.1" in log
    assert "Valid hash found in Digest header field" in log
    assert "Verification finished successfully" in log

    # The same bytes with a wrong digest (a corrupted cache row, loaded at restart):
    # aria2c must refuse them, which proves it checked.
    server.stop()
    with sqlite3.connect(cache / "digests.sqlite3") as db:
        assert db.execute("UPDATE digests SET sha256 = ?", (b"\x01" * 32,)).rowcount == 1
    server = start(tmp_path, site, delivery)
    bad_log = tmp_path / "aria2-bad.log"
    (out_dir / "big.bin").unlink()
    result = run(aria2c(f"{server.url}/files/big.bin", out_dir, "big.bin", bad_log), check=False)
    assert result.returncode == ARIA2_CHECKSUM_ERROR, bad_log.read_text(errors="replace")[-3000:]
    assert sha256_file(out_dir / "big.bin") == expected  # the bytes were right: only the digest


NAMES = ["a.bin", "with space.txt", "grüße.txt", "empty"]


def test_sha256sum_checks_a_mirror_fetched_with_curl(
    tmp_path: Path, site: tuple[Path, Path, list], delivery: dict[str, str]
) -> None:
    curl = require_tool("curl")
    sha256sum = require_tool("sha256sum")
    root, _, _ = site
    sub = root / "sub"
    sub.mkdir()
    write_big_file(sub / "a.bin", 3 * MiB + 1, seed=12)
    (sub / "with space.txt").write_text("spaces\n")
    (sub / "grüße.txt").write_text("unicode\n")
    (sub / "empty").write_bytes(b"")
    (sub / "nested").mkdir()
    for name in NAMES:
        settled(sub / name)
    server = start(tmp_path, site, delivery)
    listing_url = f"{server.url}/files/sub/?format=sha256"

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in NAMES:
        run([curl, "-sSf", "-o", name, f"{server.url}/files/sub/{quote(name)}"], cwd=mirror)
    listing = b""
    deadline = time.monotonic() + 30
    for _ in range(600):
        listing = run([curl, "-sSf", listing_url]).stdout
        if b"#" not in listing or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert b"#" not in listing, listing
    (mirror / "SHA256SUMS").write_bytes(listing)

    checked = run([sha256sum, "-c", "--strict", "SHA256SUMS"], cwd=mirror)
    assert sorted(checked.stdout.decode().splitlines()) == sorted(f"{n}: OK" for n in NAMES)

    (mirror / "with space.txt").write_text("changed\n")  # and a bad copy is caught
    failed = run([sha256sum, "-c", "SHA256SUMS"], cwd=mirror, check=False)
    assert failed.returncode == 1
    assert b"with space.txt: FAILED" in failed.stdout


def fetch_metalink(url: str, timeout: float = 30.0) -> bytes:
    """The document, once the digest pass has the file's hashes (503 until then)."""
    deadline = time.monotonic() + timeout
    for _ in range(600):
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.headers["Content-Type"] == "application/metalink4+xml"
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as error:  # only "not yet" is a reason to wait
            if error.code != 503 or not error.headers["Retry-After"]:
                raise
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    pytest.fail(f"no Metalink at {url} within {timeout}s")


def aria2c_metalink(meta4: Path, out_dir: Path, log: Path, *extra: str) -> list[str]:
    """``aria2c -M``: the file, its name and its sources all from the document."""
    command = aria2c_command("", out_dir, "", split=4, extra=["--log-level=info", f"--log={log}"])
    return [*command[: command.index("-o")], *extra, "-M", str(meta4)]


def test_aria2c_checks_every_piece_against_the_metalink(
    tmp_path: Path, site: tuple[Path, Path, list], delivery: dict[str, str], out_dir: Path
) -> None:
    root, _, _ = site
    expected = write_big_file(root / "big.bin", 24 * MiB + 321, seed=13)
    settled(root / "big.bin")
    server = start(tmp_path, site, delivery, {"DL_PIECE_SIZE": "1m"})
    meta4 = fetch_metalink(f"{server.url}/files/big.bin?format=meta4")
    good = tmp_path / "good.meta4"
    good.write_bytes(meta4)

    good_log = tmp_path / "aria2-meta4-good.log"
    run(aria2c_metalink(good, out_dir, good_log))
    assert sha256_file(out_dir / "big.bin") == expected
    log = good_log.read_text(errors="replace")
    assert log.count("Good chunk checksum.") == 25  # 24 whole MiB pieces and the short one
    assert "Chunk checksum validation failed" not in log

    # One piece hash altered: aria2c must refuse that piece, which proves it checks.
    hashes = re.findall(rb"<hash>([0-9a-f]{64})</hash>", meta4)
    assert len(hashes) == 25
    bad = tmp_path / "bad.meta4"
    bad.write_bytes(meta4.replace(hashes[7], hashlib.sha256(b"not it").hexdigest().encode()))
    (out_dir / "big.bin").unlink()
    bad_log = tmp_path / "aria2-meta4-bad.log"
    result = run(aria2c_metalink(bad, out_dir, bad_log, "--max-tries=2"), check=False)
    log = bad_log.read_text(errors="replace")
    assert result.returncode != 0, log[-3000:]
    assert "Chunk checksum validation failed. checksumIndex=7, offset=7340032" in log
