"""The digest store: background hashing, the shared SQLite cache across a restart,
claims between workers, and files that change while they are hashed."""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import Settings
from service import digests
from service.digests import DigestCache, DigestStore, Hashes, hash_version, open_store
from service.storage.catalog import Catalog

OLD_NS = 1_700_000_000_000_000_000  # long settled: no racy-timestamp wait


def write(path: Path, content: bytes, mtime_ns: int = OLD_NS) -> tuple[int, int]:
    path.write_bytes(content)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    facts = path.stat()
    return facts.st_size, facts.st_mtime_ns


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def cache_path(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "digests.sqlite3"


@pytest.fixture
def new_store(root: Path, cache_path: Path) -> Iterator[object]:
    cache_path.parent.mkdir(exist_ok=True)
    stores: list[DigestStore] = []

    def make(**options: object) -> DigestStore:
        store = DigestStore(cache_path, Catalog(root), settle_seconds=0, **options)  # type: ignore[arg-type]
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def rows(cache_path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(cache_path) as db:
        return db.execute(
            "SELECT path, size, mtime_ns, sha256, claimed_by, hashed_at FROM digests"
        ).fetchall()


def test_a_digest_is_absent_until_the_background_hash_is_done(root: Path, new_store) -> None:
    content = os.urandom(3 * 2**20 + 5)
    size, mtime = write(root / "a.bin", content)
    store = new_store(chunk=2**20)
    assert store.lookup("a.bin", size, mtime) is None  # queued, never hashed inline
    assert store.wait_idle(10)
    assert store.lookup("a.bin", size, mtime) == hashlib.sha256(content).digest()
    assert store.hashed == 1
    assert store.queue_length() == 0


def test_the_crc32_comes_from_the_same_pass_as_the_digest(root: Path, new_store) -> None:
    content = os.urandom(3 * 2**20 + 5)
    size, mtime = write(root / "a.bin", content)
    store = new_store(chunk=2**20)
    assert store.crc32("a.bin", size, mtime) is None  # queued, like a digest
    assert store.wait_idle(10)
    assert store.crc32("a.bin", size, mtime) == zlib.crc32(content)
    assert store.peek("a.bin", size, mtime) == hashlib.sha256(content).digest()
    assert store.crc32("a.bin", size + 1, mtime) is None  # another version
    assert store.hashed == 1


OLD_SCHEMA = """
CREATE TABLE digests (
    root TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, sha256 BLOB, claimed_by INTEGER, claimed_at REAL,
    hashed_at REAL, PRIMARY KEY (root, path, size, mtime_ns)
) WITHOUT ROWID;
CREATE INDEX digests_by_time ON digests (root, hashed_at);
"""


def test_a_cache_from_before_crc32s_is_migrated_and_kept(
    root: Path, cache_path: Path, new_store
) -> None:
    """A cache written by a release that kept only SHA-256s: its digests are served at
    once, nothing is hashed until a zip asks for a CRC-32, and that version is then
    read once more for it."""
    size, mtime = write(root / "a.bin", b"kept" * 1000)
    other = write(root / "b.bin", b"other")
    root_key = str(Catalog(root).root)
    with sqlite3.connect(cache_path) as db:
        db.executescript(OLD_SCHEMA)
        for path, (row_size, row_mtime), content in (
            ("a.bin", (size, mtime), b"kept" * 1000),
            ("b.bin", other, b"other"),
        ):
            db.execute(
                "INSERT INTO digests VALUES (?, ?, ?, ?, ?, NULL, NULL, ?)",
                (root_key, path, row_size, row_mtime, hashlib.sha256(content).digest(), 1.0),
            )
    db.close()
    store = new_store()
    assert store.lookup("a.bin", size, mtime) == hashlib.sha256(b"kept" * 1000).digest()
    assert store.lookup("b.bin", *other) == hashlib.sha256(b"other").digest()
    assert store.queue_length() == 0
    assert store.hashed == 0
    assert store.crc32("a.bin", size, mtime) is None
    assert store.wait_idle(10)
    assert store.crc32("a.bin", size, mtime) == zlib.crc32(b"kept" * 1000)
    assert store.hashed == 1  # b.bin was not read: nothing asked for its CRC-32
    with sqlite3.connect(cache_path) as db:
        found = db.execute("SELECT path, crc32, claimed_by FROM digests ORDER BY path")
        assert found.fetchall() == [
            ("a.bin", zlib.crc32(b"kept" * 1000), None),
            ("b.bin", None, None),
        ]
    db.close()
    store.close()
    again = new_store()  # a restart: the CRC-32 was kept too
    assert again.crc32("a.bin", size, mtime) == zlib.crc32(b"kept" * 1000)
    assert again.queue_length() == 0
    assert again.hashed == 0


def test_a_digest_another_worker_stores_is_read_without_a_miss(
    root: Path, new_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's thread reads the shared cache every REFRESH_SECONDS: what another
    worker hashed reaches it though it never asked for any file."""
    monkeypatch.setattr(digests, "REFRESH_SECONDS", 0.05)
    later_size, later_mtime = write(root / "later.bin", b"later")
    one, other = new_store(), new_store()
    one.lookup("later.bin", later_size, later_mtime)
    assert one.wait_idle(10)
    expected = hashlib.sha256(b"later").digest()
    for _ in range(200):
        if other.peek("later.bin", later_size, later_mtime) is not None:
            break
        time.sleep(0.02)
    assert other.peek("later.bin", later_size, later_mtime) == expected
    assert other.queue_length() == 0
    assert (one.hashed, other.hashed) == (1, 0)


def test_a_restart_loads_the_cache_and_hashes_nothing(
    root: Path, cache_path: Path, new_store
) -> None:
    size, mtime = write(root / "a.bin", b"x" * 1000)
    first = new_store()
    first.lookup("a.bin", size, mtime)
    assert first.wait_idle(10)
    before = rows(cache_path)
    first.close()

    second = new_store()  # a new process's store: the first answer already has it
    assert second.lookup("a.bin", size, mtime) == hashlib.sha256(b"x" * 1000).digest()
    assert second.queue_length() == 0
    assert second.hashed == 0
    assert rows(cache_path) == before  # not rewritten


def test_another_root_shares_the_file_but_not_the_digests(
    tmp_path: Path, root: Path, cache_path: Path, new_store
) -> None:
    size, mtime = write(root / "a.bin", b"one")
    store = new_store()
    store.lookup("a.bin", size, mtime)
    assert store.wait_idle(10)
    other_root = tmp_path / "other"
    other_root.mkdir()
    other = DigestStore(cache_path, Catalog(other_root), settle_seconds=0)
    assert other.lookup("a.bin", size, mtime) is None
    other.close()


def test_a_new_version_is_hashed_and_replaces_the_old_row(
    root: Path, cache_path: Path, new_store
) -> None:
    store = new_store()
    old = write(root / "a.bin", b"old")
    store.lookup("a.bin", *old)
    assert store.wait_idle(10)
    new = write(root / "a.bin", b"new!", OLD_NS + 10**9)
    assert store.lookup("a.bin", *new) is None
    assert store.lookup("a.bin", *old) is not None  # still known until a new one lands
    assert store.wait_idle(10)
    assert store.lookup("a.bin", *new) == hashlib.sha256(b"new!").digest()
    assert [row[:3] for row in rows(cache_path)] == [("a.bin", *new)]


def test_a_version_that_is_gone_gets_no_digest(root: Path, cache_path: Path, new_store) -> None:
    store = new_store()
    old = write(root / "a.bin", b"old")
    write(root / "a.bin", b"newer", OLD_NS + 10**9)  # replaced before the thread looked
    store.lookup("a.bin", *old)
    assert store.wait_idle(10)
    assert store.lookup("a.bin", *old) is None
    assert rows(cache_path) == []  # and its claim is released


def test_a_file_changed_while_it_is_hashed_gets_no_digest(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = root / "a.bin"
    size, mtime = write(path, b"a" * 4096)
    opened = Catalog(root).open_file("a.bin")
    real_preadv = os.preadv

    def preadv_then_write(fd: int, buffers: list[bytearray], offset: int) -> int:
        count = real_preadv(fd, buffers, offset)
        if offset == 0:
            with open(path, "r+b") as file:  # same size, new bytes, new mtime
                file.write(b"b" * 1024)
        return count

    monkeypatch.setattr(digests.os, "preadv", preadv_then_write)
    try:
        assert hash_version(opened, size, mtime, chunk=1024) is None
    finally:
        opened.close()
    monkeypatch.undo()
    again = Catalog(root).open_file("a.bin")
    try:
        facts = again.representation
        body = b"b" * 1024 + b"a" * 3072
        sha256 = hashlib.sha256(body).digest()
        expected = Hashes(sha256, zlib.crc32(body), sha256, digests.PIECE_SIZE)  # one piece
        assert hash_version(again, facts.size, facts.mtime_ns, chunk=1024) == expected
    finally:
        again.close()


def test_a_change_during_hashing_is_not_stored(
    root: Path, cache_path: Path, new_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = root / "a.bin"
    size, mtime = write(path, b"a" * 8192)
    real_preadv = os.preadv

    def preadv_then_touch(fd: int, buffers: list[bytearray], offset: int) -> int:
        count = real_preadv(fd, buffers, offset)
        if offset == 0:
            os.utime(path, ns=(mtime + 1, mtime + 1))
        return count

    monkeypatch.setattr(digests.os, "preadv", preadv_then_touch)
    store = new_store(chunk=4096)
    assert store.lookup("a.bin", size, mtime) is None
    assert store.wait_idle(10)
    assert store.lookup("a.bin", size, mtime) is None
    assert store.hashed == 0
    assert rows(cache_path) == []


def test_a_fresh_file_is_hashed_only_once_its_mtime_has_settled(
    root: Path, cache_path: Path
) -> None:
    cache_path.parent.mkdir()
    size, mtime = write(root / "a.bin", b"fresh", mtime_ns=os.stat(root).st_mtime_ns)
    old = write(root / "b.bin", b"settled")
    store = DigestStore(cache_path, Catalog(root), settle_seconds=1.0)
    try:
        store.lookup("a.bin", size, mtime)
        store.lookup("b.bin", *old)
        assert not store.wait_idle(0.3)  # still waiting for the timestamp tick to pass
        assert store.queue_length() == 1
        assert store.lookup("a.bin", size, mtime) is None
        assert store.lookup("b.bin", *old) is not None  # not held up by the fresh one
        assert store.wait_idle(10)
        assert store.lookup("a.bin", size, mtime) is not None
    finally:
        store.close()


def test_a_version_claimed_by_a_live_worker_is_left_to_it(
    root: Path, cache_path: Path, new_store
) -> None:
    size, mtime = write(root / "a.bin", b"claimed")
    store = new_store()
    cache = DigestCache(cache_path, str(Catalog(root).root))
    parent = os.getppid()  # alive, and not us
    assert cache.claim(("a.bin", size, mtime), parent, 1e12)[0].value == "mine"
    store.lookup("a.bin", size, mtime)
    assert store.wait_idle(10)
    assert store.hashed == 0
    assert store.lookup("a.bin", size, mtime) is None
    # The other worker stores it: the next request here finds it in the cache.
    pieces = b"\x02" * 32  # one piece, of the size every worker uses
    cache.store(("a.bin", size, mtime), Hashes(b"\x01" * 32, 7, pieces, digests.PIECE_SIZE), 1e12)
    cache.close()
    assert store.lookup("a.bin", size, mtime) is None
    assert store.wait_idle(10)
    assert store.lookup("a.bin", size, mtime) == b"\x01" * 32
    assert store.hashed == 0


def test_a_claim_of_a_dead_process_is_taken_over(root: Path, cache_path: Path, new_store) -> None:
    size, mtime = write(root / "a.bin", b"orphan")
    store = new_store()
    cache = DigestCache(cache_path, str(Catalog(root).root))
    cache.claim(("a.bin", size, mtime), 2**22 + 12345, 1e12)  # above pid_max: no such pid
    cache.close()
    store.lookup("a.bin", size, mtime)
    assert store.wait_idle(10)
    assert store.lookup("a.bin", size, mtime) == hashlib.sha256(b"orphan").digest()


def test_the_queue_length_counts_each_version_once(root: Path, cache_path: Path) -> None:
    cache_path.parent.mkdir()
    sizes = [
        write(root / f"{i}.bin", b"x" * i, mtime_ns=os.stat(root).st_mtime_ns) for i in range(3)
    ]
    store = DigestStore(cache_path, Catalog(root), settle_seconds=5.0)
    try:
        for _ in range(3):
            for i, (size, mtime) in enumerate(sizes):
                store.lookup(f"{i}.bin", size, mtime)
        assert store.queue_length() == 3
    finally:
        store.close(timeout=0.1)


# --- opening ------------------------------------------------------------------------------


def test_digests_can_be_turned_off(root: Path) -> None:
    assert open_store(Settings(data_root=root, digests=False), Catalog(root)) is None


def test_an_unusable_cache_leaves_the_service_running_without_digests(
    root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.ERROR, logger="service.digests"):
        store = open_store(Settings(data_root=root, digest_cache=blocker), Catalog(root))
    assert store is None
    assert "digests are off" in caplog.text


def test_the_default_folder_must_be_private(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # someone else could plant rows here
    monkeypatch.setattr(digests, "default_cache_dirs", lambda: [shared])
    with caplog.at_level(logging.ERROR, logger="service.digests"):
        assert open_store(Settings(data_root=root), Catalog(root)) is None
    assert "writable by other users" in caplog.text
    shared.chmod(0o700)
    store = open_store(Settings(data_root=root), Catalog(root))
    assert store is not None
    assert (shared / "digests.sqlite3").exists()
    store.close()


#: As imported, before tests/conftest.py points in-process apps at the session's tmp.
REAL_DEFAULT_DIRS = digests.default_cache_dirs


@pytest.mark.parametrize(
    ("env", "first"),
    [
        ({"XDG_CACHE_HOME": "/x/cache", "HOME": "/home/u"}, "/x/cache/download-service"),
        ({"HOME": "/home/u"}, "/home/u/.cache/download-service"),
        ({"XDG_CACHE_HOME": "relative", "HOME": "/home/u"}, "/home/u/.cache/download-service"),
        ({"HOME": "/"}, None),  # a system user's home is no cache
        ({}, None),
    ],
)
def test_the_default_folder_is_the_users_cache_then_memory(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], first: str | None
) -> None:
    for name in ("XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    folders = [str(folder) for folder in REAL_DEFAULT_DIRS()]
    assert folders[-1].endswith(f"/download-service-{os.geteuid()}")
    assert folders[:-1] == ([first] if first else [])


def test_an_unusable_default_folder_falls_back_to_the_next(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A home where no folder can be made (read-only in a container) leaves the next."""
    blocker = tmp_path / "home"
    blocker.write_text("a file, not a folder: nobody, not even root, can make one below")
    fallback = tmp_path / "shm" / "download-service"
    monkeypatch.setattr(digests, "default_cache_dirs", lambda: [blocker / ".cache", fallback])
    store = open_store(Settings(data_root=root), Catalog(root))
    assert store is not None
    store.close()
    assert (fallback / "digests.sqlite3").exists()


def test_a_cache_that_cannot_be_read_is_reported_once_and_read_again_later(
    root: Path, cache_path: Path, new_store, caplog: pytest.LogCaptureFixture
) -> None:
    store = new_store()
    hidden = cache_path.parent.with_name("moved")
    cache_path.parent.rename(hidden)
    cache_path.parent.write_text("a file where the cache folder was")
    with caplog.at_level(logging.WARNING, logger="service.digests"):
        store._refresh()
        store._refresh()
    assert len(caplog.records) == 1  # the second failure in a row is not logged again
    assert "digest cache not read" in caplog.text
    cache_path.parent.unlink()
    hidden.rename(cache_path.parent)
    store._refresh()
    assert store._refresh_failed is False


def test_a_read_error_releases_the_claim_is_logged_once_and_is_not_retried(
    root: Path,
    new_store,
    cache_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """EIO while hashing: no claim row is left (other workers may try), one ERROR line
    without a traceback, and requests for that version do not make it read again."""
    size, mtime = write(root / "bad.bin", os.urandom(300_000))
    reads: list[int] = []
    real_preadv = os.preadv

    def failing(fd: int, buffers: list[bytearray], offset: int, *flags: int) -> int:
        reads.append(offset)
        if offset >= 65536:
            raise OSError(5, "Input/output error")
        return real_preadv(fd, buffers, offset, *flags)

    monkeypatch.setattr(os, "preadv", failing)
    store = new_store()
    with caplog.at_level(logging.ERROR, logger="service.digests"):
        for _ in range(3):
            assert store.lookup("bad.bin", size, mtime) is None
            assert store.wait_idle(10)
    assert reads == [0, 65536]  # read once up to the error, never again
    assert rows(cache_path) == []  # the claim was released
    failures = [record for record in caplog.records if "bad.bin" in record.getMessage()]
    assert len(failures) == 1
    assert "storage error EIO at byte 65536" in failures[0].getMessage()
    assert failures[0].exc_info is None
    size2, mtime2 = write(root / "bad.bin", os.urandom(300_001))  # a new version
    monkeypatch.setattr(os, "preadv", real_preadv)
    store.lookup("bad.bin", size2, mtime2)
    assert store.wait_idle(10)
    assert store.peek("bad.bin", size2, mtime2) is not None


def test_a_failed_version_is_tried_again_after_the_back_off(
    root: Path, new_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    size, mtime = write(root / "flaky.bin", b"x" * 1000)
    store = new_store()
    store._failed[("flaky.bin", size, mtime)] = time.monotonic()
    store.lookup("flaky.bin", size, mtime)
    assert store.queue_length() == 0  # not queued while the failure is recent
    store._failed[("flaky.bin", size, mtime)] = time.monotonic() - digests.FAILED_RETRY_SECONDS - 1
    store.lookup("flaky.bin", size, mtime)
    assert store.wait_idle(10)
    assert store.peek("flaky.bin", size, mtime) == hashlib.sha256(b"x" * 1000).digest()


def reference_pieces(content: bytes, piece_size: int) -> bytes:
    return b"".join(
        hashlib.sha256(content[offset : offset + piece_size]).digest()
        for offset in range(0, len(content), piece_size)
    )


def test_piece_hashes_come_from_the_same_pass(root: Path, new_store) -> None:
    content = os.urandom(3 * 2**20 + 5)  # three whole pieces and a short one
    size, mtime = write(root / "a.bin", content)
    store = new_store(chunk=96 * 1024, piece_size=2**20)  # reads that straddle pieces
    assert store.pieces("a.bin", size, mtime) is None  # queued, like a digest
    assert store.wait_idle(10)
    assert store.pieces("a.bin", size, mtime) == reference_pieces(content, 2**20)
    assert store.peek("a.bin", size, mtime) == hashlib.sha256(content).digest()
    assert store.crc32("a.bin", size, mtime) == zlib.crc32(content)
    assert store.pieces("a.bin", size + 1, mtime) is None  # another version
    assert store.hashed == 1


@given(st.binary(max_size=20_000), st.integers(1, 5000), st.integers(1, 5000))
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_pieces_are_right_whatever_the_read_and_piece_sizes(
    tmp_path: Path, content: bytes, chunk: int, piece_size: int
) -> None:
    path = tmp_path / f"{len(content)}-{chunk}-{piece_size}.bin"
    size, mtime = write(path, content)
    opened = Catalog(tmp_path).open_file(path.name)
    try:
        hashes = hash_version(opened, size, mtime, chunk=chunk, piece_size=piece_size)
    finally:
        opened.close()
    assert hashes is not None
    assert hashes.pieces == reference_pieces(content, piece_size)
    assert hashes.piece_size == piece_size
    assert hashes.sha256 == hashlib.sha256(content).digest()


CRC_SCHEMA = OLD_SCHEMA.replace("sha256 BLOB,", "sha256 BLOB, crc32 INTEGER,")


def test_a_cache_from_before_piece_hashes_is_migrated_and_kept(
    root: Path, cache_path: Path, new_store
) -> None:
    """Its digests and CRC-32s are served at once, nothing is hashed until a Metalink
    asks for a version's pieces; that version is read once more, and a restart then
    has its pieces without reading it again."""
    content = os.urandom(300_000)
    size, mtime = write(root / "a.bin", content)
    with sqlite3.connect(cache_path) as db:
        db.executescript(CRC_SCHEMA)
        db.execute(
            "INSERT INTO digests VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?)",
            (str(Catalog(root).root), "a.bin", size, mtime,
             hashlib.sha256(content).digest(), zlib.crc32(content), 1.0),
        )  # fmt: skip
    db.close()
    store = new_store(piece_size=2**16)
    assert store.lookup("a.bin", size, mtime) == hashlib.sha256(content).digest()
    assert store.crc32("a.bin", size, mtime) == zlib.crc32(content)
    assert (store.queue_length(), store.hashed) == (0, 0)
    assert store.pieces("a.bin", size, mtime) is None
    assert store.wait_idle(10)
    assert store.pieces("a.bin", size, mtime) == reference_pieces(content, 2**16)
    assert store.hashed == 1
    store.close()
    again = new_store(piece_size=2**16)  # a restart
    assert again.pieces("a.bin", size, mtime) == reference_pieces(content, 2**16)
    assert (again.queue_length(), again.hashed) == (0, 0)


def test_another_piece_size_hashes_the_pieces_again_and_keeps_the_digest(
    root: Path, new_store
) -> None:
    content = os.urandom(200_000)
    size, mtime = write(root / "a.bin", content)
    first = new_store(piece_size=2**16)
    first.lookup("a.bin", size, mtime)
    assert first.wait_idle(10)
    first.close()
    resized = new_store(piece_size=2**17)
    assert resized.lookup("a.bin", size, mtime) == hashlib.sha256(content).digest()
    assert resized.pieces("a.bin", size, mtime) is None  # those were 64 KiB pieces
    assert resized.wait_idle(10)
    assert resized.pieces("a.bin", size, mtime) == reference_pieces(content, 2**17)
    assert resized.hashed == 1


def test_the_piece_size_is_a_setting(root: Path, tmp_path: Path) -> None:
    settings = Settings(data_root=root, digest_cache=tmp_path / "c", piece_size=2**20)
    store = open_store(settings, Catalog(root))
    assert store is not None
    try:
        assert store.piece_size == 2**20
    finally:
        store.close()
