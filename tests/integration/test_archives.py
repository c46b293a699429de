"""Folder archives from a real server: read by GNU tar and bsdtar, resumed by curl, split
by aria2c, ranged and conditional like a file, aborted when a member changes."""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

import pytest

from tests.integration import rawhttp
from tests.integration.conftest import ServerFactory
from tests.integration.helpers import MiB, assert_healthy, write_big_file
from tests.support.server import GunicornServer
from tests.support.tools import require_tool

pytestmark = pytest.mark.server

NS = 1_000_000_000
LONG = "deep/" + "d" * 60 + "/" + "f" * 90 + ".txt"  # past ustar's 100-byte name field
BIG_SIZES = (72 * MiB, 72 * MiB + 3, 70 * MiB + 511)  # 214 MiB, bodies off block bounds


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


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, module_server_factory: ServerFactory
) -> Iterator[Site]:
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


@pytest.mark.parametrize("extractor", ["tar", "bsdtar"])
def test_tar_and_bsdtar_extract_the_tree_byte_exact_with_mtimes(
    site: Site, tmp_path: Path, extractor: str
) -> None:
    archive = tmp_path / "small.tar"
    download(site.url("small/"), archive)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        [require_tool(extractor), "-xf", str(archive), "-C", str(out)], check=True, timeout=60
    )
    got, want = tree_digests(out), served(site.root / "small")
    assert sorted(got) == sorted(want)
    for path, (digest, mtime_ns) in want.items():
        assert got[path][0] == digest, path
        if digest != "dir":  # a folder's mtime moves with what it holds: not compared
            # GNU tar keeps nanoseconds; bsdtar microseconds at least.
            assert abs(got[path][1] - mtime_ns) < 1000, path
    assert (out / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (out / "name with spaces.txt").stat().st_mode & 0o777 == 0o644


def test_the_answer_is_a_download_with_the_archives_own_validators(site: Site) -> None:
    response = site.get("/files/small/?format=tar")
    assert response.status == 200
    assert response["Content-Type"] == "application/x-tar"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(len(response.body))
    assert (
        response["Content-Disposition"]
        == "attachment; filename=\"small.tar\"; filename*=UTF-8''small.tar"
    )
    assert re.fullmatch(r'"tar-[0-9a-f]{32}"', response["ETag"])
    with tarfile.open(fileobj=io.BytesIO(response.body)) as archive:
        assert archive.getnames() == SMALL_MEMBERS
    # The newest member's mtime is in 2106: RFC 9110 §8.8.2.1 clamps it to the Date.
    assert max(os.stat(site.root / "small" / p).st_mtime for p in SMALL_MEMBERS) > 2**32
    assert response["Last-Modified"] == response["Date"]
    tiny = site.get("/files/tiny/?format=tar")
    mtime = int(os.stat(site.root / "tiny" / "a.txt").st_mtime)
    assert tiny["Last-Modified"] == formatdate(mtime, usegmt=True)
    head = site.get("/files/small/?format=tar", method="HEAD")
    assert head.status == 200
    assert head.body == b""
    assert head.header_set("Date", "X-Request-Id") == response.header_set("Date", "X-Request-Id")


def test_the_root_archive_is_named_files_tar(site: Site) -> None:
    response = site.get("/files/?format=tar", method="HEAD")
    assert response.status == 200
    assert 'filename="files.tar"' in response["Content-Disposition"]
    with_slashless = site.get("/?format=tar", method="HEAD")
    assert with_slashless["ETag"] == response["ETag"]


def test_preconditions_and_if_range_work_as_for_a_file(site: Site) -> None:
    first = site.get("/files/tiny/?format=tar")
    etag = first["ETag"]
    assert site.get("/files/tiny/?format=tar", [f"If-None-Match: {etag}"]).status == 304
    assert site.get("/files/tiny/?format=tar", ['If-Match: "other"']).status == 412
    ranged = site.get("/files/tiny/?format=tar", ["Range: bytes=512-514", f"If-Range: {etag}"])
    assert ranged.status == 206
    assert ranged.body == first.body[512:515] == b"a\n\0"
    stale = site.get("/files/tiny/?format=tar", ["Range: bytes=512-514", 'If-Range: "tar-0"'])
    assert stale.status == 200
    assert stale.body == first.body


def test_suffix_open_and_multiple_ranges(site: Site) -> None:
    whole = site.get("/files/small/?format=tar").body
    size = len(whole)
    suffix = site.get("/files/small/?format=tar", ["Range: bytes=-1500"])
    assert (suffix.status, suffix.body) == (206, whole[-1500:])
    assert suffix["Content-Range"] == f"bytes {size - 1500}-{size - 1}/{size}"
    opened = site.get("/files/small/?format=tar", ["Range: bytes=777-"])
    assert opened.body == whole[777:]
    multi = site.get("/files/small/?format=tar", ["Range: bytes=0-99,1000-1099,-10"])
    assert multi.status == 206
    boundary = multi["Content-Type"].partition("boundary=")[2]
    parts = [p for p in multi.body.split(b"--" + boundary.encode()) if p.strip(b"-\r\n")]
    bodies = [part.partition(b"\r\n\r\n")[2].removesuffix(b"\r\n") for part in parts]
    assert bodies == [whole[0:100], whole[1000:1100], whole[-10:]]
    assert site.get("/files/small/?format=tar", [f"Range: bytes={size}-"]).status == 416


def test_a_range_from_the_middle_of_a_big_tree_is_the_full_downloads_slice(
    site: Site, tmp_path: Path
) -> None:
    full = tmp_path / "big.tar"
    download(site.url("big/"), full)
    size = full.stat().st_size
    assert size > 200 * MiB
    start, stop = size // 2 - 12_345, size // 2 + 3 * MiB + 77
    part = tmp_path / "part"
    download(site.url("big/"), part, "-r", f"{start}-{stop - 1}")
    with open(full, "rb") as f:
        f.seek(start)
        assert (
            hashlib.sha256(f.read(stop - start)).digest()
            == hashlib.sha256(part.read_bytes()).digest()
        )
    with tarfile.open(full) as archive:
        for index, expected in enumerate(BIG_SIZES):
            member = archive.getmember(f"part-{index}.bin")
            data = archive.extractfile(member)
            assert data is not None
            digest = hashlib.sha256(data.read()).hexdigest()
            assert (
                digest == hashlib.sha256((site.root / "big" / member.name).read_bytes()).hexdigest()
            )
            assert member.size == expected


def test_curl_resumes_an_archive_cut_at_an_odd_offset(site: Site, tmp_path: Path) -> None:
    url = site.url("big/")
    complete = tmp_path / "complete.tar"
    download(url, complete)
    resumed = tmp_path / "resumed.tar"
    cut = 123 * MiB + 4321
    with open(complete, "rb") as source, open(resumed, "wb") as target:
        target.write(source.read(cut))
    download(url, resumed, "-C", "-")
    assert (
        hashlib.sha256(resumed.read_bytes()).digest()
        == hashlib.sha256(complete.read_bytes()).digest()
    )


def test_aria2c_splits_an_archive_over_eight_connections(site: Site, tmp_path: Path) -> None:
    complete = tmp_path / "complete.tar"
    download(site.url("big/"), complete)
    subprocess.run(
        [
            require_tool("aria2c"),
            "-q",
            "-x8",
            "-s8",
            "-k1M",
            "--allow-overwrite=true",
            "--auto-file-renaming=false",
            "-d",
            str(tmp_path),
            "-o",
            "split.tar",
            site.url("big/"),
        ],
        check=True,
        timeout=120,
    )
    assert (
        hashlib.sha256((tmp_path / "split.tar").read_bytes()).digest()
        == hashlib.sha256(complete.read_bytes()).digest()
    )


def test_a_changed_member_gives_a_new_etag_and_if_range_the_whole_new_archive(site: Site) -> None:
    folder = site.root / "changing"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"first\n")
    old = site.get("/files/changing/?format=tar")
    (folder / "a.txt").write_bytes(b"second\n")
    new = site.get("/files/changing/?format=tar", ["Range: bytes=0-9", f"If-Range: {old['ETag']}"])
    assert new.status == 200
    assert new["ETag"] != old["ETag"]
    assert b"second\n" in new.body


def test_a_member_truncated_mid_transfer_aborts_the_connection(site: Site) -> None:
    folder = site.root / "truncating"
    folder.mkdir()
    write_big_file(folder / "a.bin", 64 * MiB, seed=50)
    write_big_file(folder / "b.bin", 1 * MiB, seed=51)
    with rawhttp.Connection(site.server.host, site.server.port, rcvbuf=64 * 1024) as conn:
        conn.request("GET", "/files/truncating/?format=tar")
        head = conn.read_head()
        assert head.status == 200
        length = int(head["Content-Length"])
        received = conn.read_exact(1 * MiB)
        os.truncate(folder / "a.bin", 16 * MiB)
        received += read_until_cut(conn, length - len(received))
        assert len(received) < length
        assert_dead(conn)
    assert_healthy(site.server)


def test_a_member_changed_before_the_stream_reaches_it_aborts_before_its_bytes(site: Site) -> None:
    folder = site.root / "replacing"
    folder.mkdir()
    write_big_file(folder / "a.bin", 64 * MiB, seed=52)
    (folder / "b.txt").write_bytes(b"planned\n")
    with rawhttp.Connection(site.server.host, site.server.port, rcvbuf=64 * 1024) as conn:
        conn.request("GET", "/files/replacing/?format=tar")
        head = conn.read_head()
        length = int(head["Content-Length"])
        received = conn.read_exact(1 * MiB)
        (folder / "b.txt").write_bytes(b"CHANGED\n")
        received += read_until_cut(conn, length - len(received))
        assert len(received) < length
        assert b"CHANGED" not in received
        assert_dead(conn)
    assert "changed: archive member 'b.txt'" in site.server.log()


def test_a_tree_over_the_member_cap_is_refused_and_archives_can_be_turned_off(
    site: Site, module_server_factory: ServerFactory
) -> None:
    capped = module_server_factory(site.root, DL_ARCHIVE_MAX_MEMBERS="3")
    over = rawhttp.get(capped.host, capped.port, "/files/small/?format=tar")
    assert over.status == 403
    assert b"too many entries" in over.body
    assert rawhttp.get(capped.host, capped.port, "/files/tiny/?format=tar").status == 200
    off = module_server_factory(site.root, DL_ARCHIVES="false")
    assert rawhttp.get(off.host, off.port, "/files/tiny/?format=tar").status == 404
    assert rawhttp.get(off.host, off.port, "/files/tiny/").status == 200


def test_the_connection_serves_the_next_request_after_an_archive(site: Site) -> None:
    with rawhttp.Connection(site.server.host, site.server.port) as conn:
        for _ in range(3):
            conn.request("GET", "/files/small/?format=tar", ["Range: bytes=100-5000"])
            response = conn.read_response()
            assert response.status == 206
            assert len(response.body) == 4901
        conn.request("GET", "/files/tiny/a.txt")
        assert conn.read_response().body == b"a\n"


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
