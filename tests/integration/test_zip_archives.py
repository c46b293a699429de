"""The zip of a folder from a real server, read by Info-ZIP's unzip, 7-Zip, bsdtar and
Python's zipfile; held back with a 503 until the digest pass knows its CRC-32s; a member
over 4 GiB (a sparse file) through ZIP64 fields, read back over ranges."""

from __future__ import annotations

import http.client
import io
import os
import subprocess
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.archive_site import (
    NS,
    SMALL_MEMBERS,
    Site,
    download,
    served,
    start,
    tree_digests,
)
from tests.integration.conftest import ServerFactory
from tests.integration.helpers import MiB
from tests.support.tools import require_tool

pytestmark = pytest.mark.server

#: The small tree's mtimes that the extended timestamp field carries to the second
#: (1970 .. 2106): its member dated before 1970 and the one after 2106 keep only the
#: DOS fields, clamped, which the extractors read as local time.
EXACT_MTIMES = [
    path for path in SMALL_MEMBERS if path not in {"empty file", "block.bin", "deep", "ünï"}
]


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, module_server_factory: ServerFactory
) -> Iterator[Site]:
    yield from start(tmp_path_factory, module_server_factory)


@pytest.fixture(scope="module")
def small_zip(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Path:
    site.ready("small/", "zip")
    path = tmp_path_factory.mktemp("zip") / "small.zip"
    download(site.url("small/", "zip"), path)
    return path


def test_unzip_and_7z_test_every_crc(small_zip: Path) -> None:
    tested = subprocess.run(
        [require_tool("unzip"), "-t", str(small_zip)], capture_output=True, text=True, timeout=60
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "No errors detected" in tested.stdout
    seven = subprocess.run(
        [require_tool("7z"), "t", str(small_zip)], capture_output=True, text=True, timeout=60
    )
    assert seven.returncode == 0, seven.stdout + seven.stderr
    assert "Everything is Ok" in seven.stdout
    with zipfile.ZipFile(small_zip) as archive:
        assert archive.testzip() is None
        assert [name.removesuffix("/") for name in archive.namelist()] == SMALL_MEMBERS


@pytest.mark.parametrize(
    "command",
    [
        ["unzip", "-q", "{zip}", "-d", "{out}"],
        ["7z", "x", "-y", "-bd", "-o{out}", "{zip}"],
        ["bsdtar", "-xf", "{zip}", "-C", "{out}"],
    ],
    ids=["unzip", "7z", "bsdtar"],
)
def test_extractors_give_the_tree_byte_exact_with_modes_and_mtimes(
    site: Site, small_zip: Path, tmp_path: Path, command: list[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    argv = [part.format(zip=small_zip, out=out) for part in command]
    argv[0] = require_tool(argv[0])
    env = {**os.environ, "TZ": "UTC"}
    subprocess.run(argv, check=True, timeout=60, env=env, capture_output=True)
    got, want = tree_digests(out), served(site.root / "small")
    assert sorted(got) == sorted(want)
    for path, (digest, mtime_ns) in want.items():
        assert got[path][0] == digest, path
        if path in EXACT_MTIMES and digest != "dir":  # a folder's mtime moves with its files
            assert got[path][1] // NS == mtime_ns // NS, path
    assert (out / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (out / "name with spaces.txt").stat().st_mode & 0o777 == 0o644
    # Only the DOS fields: UTC, clamped to 1980, rounded down to even seconds.
    dos_only = {"empty file": 315_532_800, "block.bin": 2**32 + 6}
    if command[0] == "unzip":
        # Info-ZIP counts 2100 as a leap year: its DOS dates after February 2100 come
        # out a day late (7-Zip and libarchive read the same bytes right).
        dos_only["block.bin"] += 86_400
    for path, seconds in dos_only.items():
        assert (out / path).stat().st_mtime == seconds, path


def test_a_zip_answers_503_until_its_crc32s_are_known(site: Site) -> None:
    folder = site.root / "fresh"
    folder.mkdir()
    (folder / "new.txt").write_bytes(b"just written\n" * 1000)
    (folder / "sub").mkdir()
    (folder / "sub" / "also.txt").write_bytes(b"also\n")
    pending = site.get("/files/fresh/?format=zip")
    assert pending.status == 503
    assert 1 <= int(pending["Retry-After"]) <= 300
    assert b"the CRC-32s of 2 of its 2 files are being computed" in pending.body
    head = site.get("/files/fresh/?format=zip", method="HEAD")
    assert (head.status, head.body) == (503, b"")
    assert site.get("/files/fresh/?format=tar").status == 200  # a tar never waits
    ready = site.ready("fresh/", "zip")
    assert ready.status == 200
    body = site.get("/files/fresh/?format=zip").body
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        assert archive.read("new.txt") == b"just written\n" * 1000


def test_without_digests_a_zip_is_not_found_and_not_listed(
    site: Site, module_server_factory: ServerFactory
) -> None:
    plain = Site(module_server_factory(site.root, DL_DIGESTS="false"), site.root)
    assert plain.get("/files/tiny/?format=zip").status == 404
    assert plain.get("/files/tiny/?format=tar").status == 200
    listing = plain.get("/files/tiny/?format=json")
    assert b'"zip"' not in listing.body
    assert b"format=tar" in listing.body


class RangedFile(io.RawIOBase):
    """A URL as a seekable file over one keep-alive connection, read ahead by ranges."""

    def __init__(self, site: Site, target: str, length: int) -> None:
        self.conn = http.client.HTTPConnection(site.server.host, site.server.port, timeout=60)
        self.target, self.length, self.at = target, length, 0
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.at = {0: 0, 1: self.at, 2: self.length}[whence] + offset
        return self.at

    def tell(self) -> int:
        return self.at

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        stop = min(self.length, self.at + len(buffer))
        if stop <= self.at:
            return 0
        self.conn.request("GET", self.target, headers={"Range": f"bytes={self.at}-{stop - 1}"})
        response = self.conn.getresponse()
        data = response.read()
        assert response.status == 206, response.status
        assert len(data) == stop - self.at
        buffer[: len(data)] = data
        self.at = stop
        self.requests += 1
        return len(data)

    def close(self) -> None:
        self.conn.close()
        super().close()


def test_a_member_over_4_gib_goes_through_zip64_and_reads_back_by_ranges(
    site: Site,
) -> None:
    """A sparse 4 GiB + 5 file beside a small one after it: zipfile reads the ZIP64
    fields over HTTP ranges, finds the small member past 4 GiB, and the big one's CRC-32
    (from the digest pass over its holes) and last bytes check out."""
    folder = site.root / "huge"
    folder.mkdir()
    size = 4 * 2**30 + 5
    with open(folder / "big.img", "wb") as file:
        file.truncate(size)
        file.seek(size - 5)
        file.write(b"tail!")
    (folder / "z.txt").write_bytes(b"after the big one\n")
    head = site.ready("huge/", "zip")
    length = int(head["Content-Length"])
    assert length > size
    raw = RangedFile(site, "/files/huge/?format=zip", length)
    with zipfile.ZipFile(io.BufferedReader(raw, 64 * 1024)) as archive:
        big, small = archive.infolist()
        assert (big.filename, big.file_size, big.extract_version) == ("big.img", size, 45)
        crc_of_the_file = zeros_then(size - 5, b"tail!")
        assert (big.CRC, big.compress_type) == (crc_of_the_file, zipfile.ZIP_STORED)
        assert small.header_offset > 2**32
        assert archive.read(small) == b"after the big one\n"
        local_at = big.header_offset
    raw.seek(local_at)
    assert raw.read(4) == b"PK\x03\x04"  # the local header where the central one says
    data_at = local_at + 30 + len("big.img") + 20 + 9  # its ZIP64 and timestamp fields
    raw.seek(data_at + size - 10)
    assert raw.read(10) == bytes(5) + b"tail!"
    raw.close()


def zeros_then(zeros: int, tail: bytes) -> int:
    crc, block = 0, bytes(16 * MiB)
    for _ in range(zeros // len(block)):
        crc = zlib.crc32(block, crc)
    return zlib.crc32(tail, zlib.crc32(bytes(zeros % len(block)), crc))
