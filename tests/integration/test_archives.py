"""Folder archives from a real server, both formats through the same HTTP core: ranged,
conditional and named like a file, resumed by curl, split by aria2c, aborted when a
member changes; the tar read by GNU tar and bsdtar (the zip's readers are in
test_zip_archives)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
import zipfile
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from tests.integration import rawhttp
from tests.integration.archive_site import (
    BIG_SIZES,
    SMALL_MEMBERS,
    Site,
    assert_dead,
    download,
    read_until_cut,
    served,
    sha256_of,
    start,
    tree_digests,
)
from tests.integration.conftest import ServerFactory
from tests.integration.helpers import MiB, assert_healthy, write_big_file
from tests.support.tools import require_tool

pytestmark = pytest.mark.server

TYPES = {"tar": "application/x-tar", "zip": "application/zip"}


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, module_server_factory: ServerFactory
) -> Iterator[Site]:
    yield from start(tmp_path_factory, module_server_factory)


@pytest.fixture(params=["tar", "zip"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def names(kind: str, body: bytes) -> list[str]:
    """The member paths an archive's bytes hold, in order, as its own reader sees them."""
    if kind == "tar":
        with tarfile.open(fileobj=io.BytesIO(body)) as archive:
            return archive.getnames()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        return [name.removesuffix("/") for name in archive.namelist()]


def member_bytes(kind: str, archive_path: Path, name: str) -> bytes:
    if kind == "tar":
        with tarfile.open(archive_path) as archive:
            data = archive.extractfile(name)
            assert data is not None
            return data.read()
    with zipfile.ZipFile(archive_path) as archive:
        return archive.read(name)  # its CRC-32 checked


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


def test_the_answer_is_a_download_with_the_archives_own_validators(site: Site, kind: str) -> None:
    target = f"/files/small/?format={kind}"
    head = site.ready("small/", kind)
    response = site.get(target)
    assert response.status == 200
    assert response["Content-Type"] == TYPES[kind]
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(len(response.body))
    assert (
        response["Content-Disposition"]
        == f"attachment; filename=\"small.{kind}\"; filename*=UTF-8''small.{kind}"
    )
    assert re.fullmatch(rf'"{kind}-[0-9a-f]{{32}}"', response["ETag"])
    assert names(kind, response.body) == SMALL_MEMBERS
    # The newest member's mtime is in 2106: RFC 9110 §8.8.2.1 clamps it to the Date.
    assert max(os.stat(site.root / "small" / p).st_mtime for p in SMALL_MEMBERS) > 2**32
    assert response["Last-Modified"] == response["Date"]
    site.ready("tiny/", kind)
    tiny = site.get(f"/files/tiny/?format={kind}")
    mtime = int(os.stat(site.root / "tiny" / "a.txt").st_mtime)
    assert tiny["Last-Modified"] == formatdate(mtime, usegmt=True)
    assert head.status == 200
    assert head.body == b""
    assert head.header_set("Date", "X-Request-Id") == response.header_set("Date", "X-Request-Id")


def test_the_root_archive_is_named_files(site: Site, kind: str) -> None:
    response = site.ready("", kind)
    assert response.status == 200
    assert f'filename="files.{kind}"' in response["Content-Disposition"]
    with_slashless = site.get(f"/?format={kind}", method="HEAD")
    assert with_slashless["ETag"] == response["ETag"]


def test_preconditions_and_if_range_work_as_for_a_file(site: Site, kind: str) -> None:
    target = f"/files/tiny/?format={kind}"
    site.ready("tiny/", kind)
    first = site.get(target)
    etag = first["ETag"]
    assert site.get(target, [f"If-None-Match: {etag}"]).status == 304
    assert site.get(target, ['If-Match: "other"']).status == 412
    at = first.body.index(b"a\n")  # the member's one line
    ranged = site.get(target, [f"Range: bytes={at}-{at + 1}", f"If-Range: {etag}"])
    assert ranged.status == 206
    assert ranged.body == first.body[at : at + 2] == b"a\n"
    stale = site.get(target, [f"Range: bytes={at}-{at + 1}", f'If-Range: "{kind}-0"'])
    assert stale.status == 200
    assert stale.body == first.body


def test_suffix_open_and_multiple_ranges(site: Site, kind: str) -> None:
    target = f"/files/small/?format={kind}"
    site.ready("small/", kind)
    whole = site.get(target).body
    size = len(whole)
    suffix = site.get(target, ["Range: bytes=-1500"])
    assert (suffix.status, suffix.body) == (206, whole[-1500:])
    assert suffix["Content-Range"] == f"bytes {size - 1500}-{size - 1}/{size}"
    opened = site.get(target, ["Range: bytes=777-"])
    assert opened.body == whole[777:]
    multi = site.get(target, ["Range: bytes=0-99,1000-1099,-10"])
    assert multi.status == 206
    boundary = multi["Content-Type"].partition("boundary=")[2]
    parts = [p for p in multi.body.split(b"--" + boundary.encode()) if p.strip(b"-\r\n")]
    bodies = [part.partition(b"\r\n\r\n")[2].removesuffix(b"\r\n") for part in parts]
    assert bodies == [whole[0:100], whole[1000:1100], whole[-10:]]
    assert site.get(target, [f"Range: bytes={size}-"]).status == 416


def test_a_range_from_the_middle_of_a_big_tree_is_the_full_downloads_slice(
    site: Site, tmp_path: Path, kind: str
) -> None:
    site.ready("big/", kind)
    full = tmp_path / f"big.{kind}"
    download(site.url("big/", kind), full)
    size = full.stat().st_size
    assert size > 200 * MiB
    start_at, stop = size // 2 - 12_345, size // 2 + 3 * MiB + 77
    part = tmp_path / "part"
    download(site.url("big/", kind), part, "-r", f"{start_at}-{stop - 1}")
    with open(full, "rb") as f:
        f.seek(start_at)
        assert f.read(stop - start_at) == part.read_bytes()
    for index, expected in enumerate(BIG_SIZES):
        name = f"part-{index}.bin"
        data = member_bytes(kind, full, name)
        assert len(data) == expected
        assert data == (site.root / "big" / name).read_bytes()


def test_curl_resumes_an_archive_cut_at_an_odd_offset(
    site: Site, tmp_path: Path, kind: str
) -> None:
    site.ready("big/", kind)
    url = site.url("big/", kind)
    complete = tmp_path / "complete"
    download(url, complete)
    resumed = tmp_path / "resumed"
    cut = 123 * MiB + 4321
    with open(complete, "rb") as source, open(resumed, "wb") as target:
        target.write(source.read(cut))
    download(url, resumed, "-C", "-")
    assert sha256_of(resumed) == sha256_of(complete)


def test_aria2c_splits_an_archive_over_eight_connections(
    site: Site, tmp_path: Path, kind: str
) -> None:
    site.ready("big/", kind)
    complete = tmp_path / "complete"
    download(site.url("big/", kind), complete)
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
            "split",
            site.url("big/", kind),
        ],
        check=True,
        timeout=120,
    )
    assert sha256_of(tmp_path / "split") == sha256_of(complete)


def test_a_changed_member_gives_a_new_etag_and_if_range_the_whole_new_archive(
    site: Site, kind: str
) -> None:
    folder = site.root / f"changing-{kind}"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"first\n")
    site.ready(f"{folder.name}/", kind)
    target = f"/files/{folder.name}/?format={kind}"
    old = site.get(target)
    (folder / "a.txt").write_bytes(b"second\n")
    site.ready(f"{folder.name}/", kind)
    new = site.get(target, ["Range: bytes=0-9", f"If-Range: {old['ETag']}"])
    assert new.status == 200
    assert new["ETag"] != old["ETag"]
    assert b"second\n" in new.body


def test_a_member_truncated_mid_transfer_aborts_the_connection(site: Site, kind: str) -> None:
    folder = site.root / f"truncating-{kind}"
    folder.mkdir()
    write_big_file(folder / "a.bin", 64 * MiB, seed=50)
    write_big_file(folder / "b.bin", 1 * MiB, seed=51)
    site.ready(f"{folder.name}/", kind)
    with rawhttp.Connection(site.server.host, site.server.port, rcvbuf=64 * 1024) as conn:
        conn.request("GET", f"/files/{folder.name}/?format={kind}")
        head = conn.read_head()
        assert head.status == 200
        length = int(head["Content-Length"])
        received = conn.read_exact(1 * MiB)
        os.truncate(folder / "a.bin", 16 * MiB)
        received += read_until_cut(conn, length - len(received))
        assert len(received) < length
        assert_dead(conn)
    assert_healthy(site.server)


def test_a_member_changed_before_the_stream_reaches_it_aborts_before_its_bytes(
    site: Site, kind: str
) -> None:
    folder = site.root / f"replacing-{kind}"
    folder.mkdir()
    write_big_file(folder / "a.bin", 64 * MiB, seed=52)
    (folder / "b.txt").write_bytes(b"planned\n")
    site.ready(f"{folder.name}/", kind)
    with rawhttp.Connection(site.server.host, site.server.port, rcvbuf=64 * 1024) as conn:
        conn.request("GET", f"/files/{folder.name}/?format={kind}")
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
    site: Site, module_server_factory: ServerFactory, kind: str
) -> None:
    capped = module_server_factory(site.root, DL_ARCHIVE_MAX_MEMBERS="3")
    over = rawhttp.get(capped.host, capped.port, f"/files/small/?format={kind}")
    assert over.status == 403
    assert b"too many entries" in over.body
    capped_site = Site(capped, site.root)
    assert capped_site.ready("tiny/", kind).status == 200
    off = module_server_factory(site.root, DL_ARCHIVES="false")
    assert rawhttp.get(off.host, off.port, f"/files/tiny/?format={kind}").status == 404
    assert rawhttp.get(off.host, off.port, "/files/tiny/").status == 200


def test_the_connection_serves_the_next_request_after_an_archive(site: Site, kind: str) -> None:
    site.ready("small/", kind)
    with rawhttp.Connection(site.server.host, site.server.port) as conn:
        for _ in range(3):
            conn.request("GET", f"/files/small/?format={kind}", ["Range: bytes=100-2000"])
            response = conn.read_response()
            assert response.status == 206
            assert len(response.body) == 1901
        conn.request("GET", "/files/tiny/a.txt")
        assert conn.read_response().body == b"a\n"
