"""The data tree and server the folder archive tests share: every kind of entry an
archive must carry or leave out, a 214 MiB tree, and the helpers that fetch, extract
and compare."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration import rawhttp
from tests.integration.conftest import ServerFactory
from tests.integration.helpers import MiB, assert_healthy, write_big_file
from tests.support.server import GunicornServer
from tests.support.tools import require_tool

NS = 1_000_000_000
LONG = "deep/" + "d" * 60 + "/" + "f" * 90 + ".txt"  # past ustar's 100-byte name field
BIG_SIZES = (72 * MiB, 72 * MiB + 3, 70 * MiB + 511)  # 214 MiB, bodies off block bounds
#: Seconds a zip may stay 503 while the digest pass computes its CRC-32s: the 2 s a
#: fresh file needs to settle, and 214 MiB of reading, with room for a loaded machine.
ZIP_READY_SECONDS = 60.0


@dataclass
class Site:
    server: GunicornServer
    root: Path

    def url(self, folder: str, kind: str = "tar") -> str:
        return f"{self.server.url}/files/{folder}?format={kind}"

    def get(
        self, target: str, headers: rawhttp.Headers = (), method: str = "GET"
    ) -> rawhttp.RawResponse:
        return rawhttp.get(self.server.host, self.server.port, target, headers, method=method)

    def ready(self, folder: str, kind: str) -> rawhttp.RawResponse:
        """HEAD of the folder's archive once it can be served: a zip answers 503 with
        ``Retry-After`` until the digest pass knows every member's CRC-32."""
        deadline = time.monotonic() + ZIP_READY_SECONDS
        while True:
            head = self.get(f"/files/{folder}?format={kind}", method="HEAD")
            if head.status != 503:
                return head
            assert kind == "zip", "a tar never waits for checksums"
            assert int(head["Retry-After"]) >= 1
            assert time.monotonic() < deadline, f"the zip of {folder!r} stayed 503"
            time.sleep(0.1)


def small_tree(folder: Path) -> None:
    """Every kind of entry an archive must carry or leave out."""
    folder.mkdir()
    (folder / "name with spaces.txt").write_bytes(b"spaces\n")
    (folder / "ünï").mkdir()
    (folder / "ünï" / "名前.txt").write_bytes(b"non-ASCII\n")
    (folder / LONG).parent.mkdir(parents=True)
    (folder / LONG).write_bytes(b"long path\n" * 100)
    (folder / "empty file").write_bytes(b"")
    (folder / "empty folder").mkdir()
    (folder / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (folder / "run.sh").chmod(0o750)
    (folder / "block.bin").write_bytes(bytes(range(256)) * 2)  # exactly one tar block
    (folder / ".hidden").write_bytes(b"never served\n")
    os.mkfifo(folder / "fifo")
    (folder / "outside").symlink_to("/etc/hostname")
    (folder / "loop").symlink_to(".")  # leads back to its own folder
    (folder / "inside-link.txt").symlink_to("name with spaces.txt")
    # Nanosecond mtimes, one before 1970, one after 2106 (past 32-bit seconds).
    os.utime(folder / "name with spaces.txt", ns=(0, 1_700_000_000 * NS + 123_456_789))
    os.utime(folder / "empty file", ns=(0, -86_400 * NS - 5))
    os.utime(folder / "block.bin", ns=(0, (2**32 + 7) * NS))


#: What the small tree's archive holds: every served entry below it, in path-byte order.
SMALL_MEMBERS = sorted(
    [
        "block.bin",
        "deep",
        "deep/" + "d" * 60,
        LONG,
        "empty file",
        "empty folder",
        "inside-link.txt",
        "name with spaces.txt",
        "run.sh",
        "ünï",
        "ünï/名前.txt",
    ],
    key=lambda path: path.encode(),
)


def start(
    tmp_path_factory: pytest.TempPathFactory, module_server_factory: ServerFactory
) -> Iterator[Site]:
    """A server over the small tree, the big tree and a one-file folder."""
    root = tmp_path_factory.mktemp("archives") / "data"
    root.mkdir()
    small_tree(root / "small")
    (root / "big").mkdir()
    for index, size in enumerate(BIG_SIZES):
        write_big_file(root / "big" / f"part-{index}.bin", size, seed=40 + index)
    (root / "big" / "notes.txt").write_bytes(b"notes\n")
    (root / "tiny").mkdir()
    (root / "tiny" / "a.txt").write_bytes(b"a\n")
    os.utime(root / "tiny" / "a.txt", ns=(0, 1_600_000_000 * NS))  # whole: no pax header
    server = module_server_factory(root, DL_KEEPALIVE="60")
    yield Site(server, root)
    assert_healthy(server)


def download(url: str, out: Path, *extra: str) -> None:
    subprocess.run(
        [require_tool("curl"), "-sS", "--fail", "-o", str(out), *extra, url],
        check=True,
        timeout=120,
    )


def sha256_of(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(MiB):
            digest.update(chunk)
    return digest.digest()


def tree_digests(folder: Path) -> dict[str, tuple[str, int]]:
    """path -> (SHA-256 or "dir", mtime in ns) of every entry, symlinks followed."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            relative = str(path.relative_to(folder))
            if not (path.is_dir() or path.is_file()):
                continue  # a FIFO (never read: that would wait for a writer)
            facts = path.stat()
            digest = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
            found[relative] = (digest, facts.st_mtime_ns)
    return found


def served(folder: Path) -> dict[str, tuple[str, int]]:
    """The entries of ``folder`` an archive must hold, with their digests and mtimes."""
    everything = tree_digests(folder)
    return {path: everything[path] for path in SMALL_MEMBERS}


def read_until_cut(conn: rawhttp.Connection, limit: int) -> bytes:
    """Read until the server ends the connection (bounded by ``limit`` bytes and 30 s)."""
    out = bytearray()
    conn.sock.settimeout(10)
    try:
        while len(out) < limit:
            data = conn.read_some(min(rawhttp.RECV_SIZE, limit - len(out)))
            if not data:
                break
            out += data
    except ConnectionResetError:
        pass
    return bytes(out)


def assert_dead(conn: rawhttp.Connection) -> None:
    try:
        conn.send(rawhttp.build_request("GET", "/files/tiny/a.txt"))
    except (BrokenPipeError, ConnectionResetError):
        return
    assert conn.closed_by_peer(wait=3.0), "the server kept the aborted connection open"
