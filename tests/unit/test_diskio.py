"""service.storage.diskio: reads the kernel vouches for run on the loop, all others in threads."""

from __future__ import annotations

import ctypes
import errno
import itertools
import mmap
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.storage import diskio
from service.storage.catalog import Catalog, OpenFile
from service.storage.diskio import DiskIO
from service.storage.iopool import IOPool
from service.storage.mounts import Mounts
from service.web.errors import StorageError

SIZE = 8 * 1024 * 1024
CONTENT = os.urandom(SIZE)


class RecordingPool(IOPool):
    """Runs calls inline (no gevent here) and records which went to a thread."""

    def __init__(self) -> None:
        super().__init__(4, 2, 60.0)
        self.calls: list[str] = []

    def call(self, key: Any, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.calls.append(args[1].__name__)  # DiskIO passes (offset, function, args)
        return super().call(key, function, *args, **kwargs)


class LoopOnly(IOPool):
    def __init__(self) -> None:
        super().__init__(4, 2, 60.0)

    def call(self, *args: Any, **kwargs: Any) -> Any:
        pytest.fail("went off the loop")


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[OpenFile]:
    (tmp_path / "data.bin").write_bytes(CONTENT)
    file = Catalog(tmp_path).open_file("data.bin")
    yield file
    file.close()


@pytest.fixture
def pool() -> RecordingPool:
    return RecordingPool()


@pytest.fixture
def disk(pool: RecordingPool) -> DiskIO:
    return DiskIO(pool, Mounts())


def resident_pages(fd: int, size: int, offset: int = 0) -> int:
    """How many pages of ``[offset, offset + size)`` are in the page cache, by mincore(2)
    on a mapping that is never touched: unlike a read (even RWF_NOWAIT), asking reads
    nothing in."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
    start = offset - offset % mmap.PAGESIZE
    length = offset + size - start
    vector = ctypes.create_string_buffer(-(-length // mmap.PAGESIZE))
    with mmap.mmap(fd, length, access=mmap.ACCESS_COPY, offset=start) as mapping:
        view = ctypes.c_char.from_buffer(mapping)
        try:
            if libc.mincore(ctypes.addressof(view), length, vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            del view  # the mapping cannot close while a ctypes view holds it
    return sum(byte & 1 for byte in vector.raw)


@pytest.fixture(autouse=True)
def _nowait_never_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The contract DiskIO relies on, without the kernel's race: a RWF_NOWAIT read of a
    page not in the page cache fails with EAGAIN. Linux may also start reading such a
    page and succeed when the disk answers within the call, which this VM's fast disk
    now and then does: an evicted file then looked cached at random. Resident pages go
    to the real call, so the kernel still answers for cached ones."""
    real = os.preadv

    def preadv(fd: int, buffers: Any, offset: int, flags: int = 0) -> int:
        nowait = diskio._NOWAIT is not None and flags & diskio._NOWAIT
        if nowait and not resident_pages(fd, 1, offset):
            raise BlockingIOError(errno.EAGAIN, "not in the page cache")
        return real(fd, buffers, offset, flags)

    monkeypatch.setattr(os, "preadv", preadv)


def evict(disk: DiskIO, file: OpenFile) -> None:
    """Drop the file's pages, and stop the kernel reading ahead on this descriptor: with
    read_ahead_kb up to 8 MiB, one probe or read would otherwise refill the whole file
    asynchronously, after the test looked. DONTNEED is advice: the test starts only once
    mincore(2) shows no page left (a few more tries, then a skip where pages stay, as on
    tmpfs)."""
    assert file.fd is not None
    os.fsync(file.fd)  # dirty pages cannot be dropped
    os.posix_fadvise(file.fd, 0, 0, os.POSIX_FADV_RANDOM)
    for _ in range(5):
        os.posix_fadvise(file.fd, 0, 0, os.POSIX_FADV_DONTNEED)
        left = resident_pages(file.fd, SIZE)
        if left == 0:
            return
    pytest.skip(f"{left} pages stay in memory after POSIX_FADV_DONTNEED (tmpfs?)")


def require_probeable(disk: DiskIO, file: OpenFile) -> None:
    if not disk.mounts.probeable(file.dev):
        pytest.skip(f"the test folder is on {disk.mounts.fs_type(file.dev)}, not a local disk")


def test_a_fresh_file_is_cached_and_read_directly(opened: OpenFile) -> None:
    disk = DiskIO(LoopOnly(), Mounts())
    require_probeable(disk, opened)
    assert disk.is_cached(opened, 0, SIZE)
    assert disk.read(opened, 1000, 12345) == CONTENT[12345:13345]
    assert disk.sendfile_safe(opened)


def test_evicted_pages_are_reported_and_read_off_the_loop(
    disk: DiskIO, pool: RecordingPool, opened: OpenFile
) -> None:
    require_probeable(disk, opened)
    evict(disk, opened)
    assert not disk.is_cached(opened, 0, SIZE)
    assert disk.read(opened, 70_000, 3_000_000) == CONTENT[3_000_000:3_070_000]
    disk.ensure_cached(opened, 5_000_000, 1_000_000)
    assert pool.calls == ["_pread", "_warm"]
    assert disk.is_cached(opened, 5_000_000, 1_000_000)  # warmed for sendfile


def test_a_sequential_reader_of_a_hot_file_stays_on_the_loop(opened: OpenFile) -> None:
    disk = DiskIO(LoopOnly(), Mounts())
    require_probeable(disk, opened)
    reader = disk.sequential(opened, SIZE)
    chunk = 256 * 1024
    assert b"".join(reader.read(chunk, offset) for offset in range(0, SIZE, chunk)) == CONTENT


def test_a_sequential_reader_of_a_cold_file_keeps_the_kernel_reading_ahead(
    disk: DiskIO, pool: RecordingPool, opened: OpenFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first miss, every read-ahead request runs in the pool, stays within
    READ_AHEAD of the reader, never passes the span's end, and the bytes are exact."""
    require_probeable(disk, opened)
    evict(disk, opened)
    monkeypatch.setattr(diskio, "READ_AHEAD", 1024 * 1024)
    stop = SIZE - 100_000
    advice: list[tuple[int, int]] = []
    real_fadvise = os.posix_fadvise

    def fadvise(descriptor: int, offset: int, length: int, what: int) -> None:
        assert pool.calls, "advice given on the loop"
        if what == os.POSIX_FADV_WILLNEED:
            advice.append((offset, offset + length))
        real_fadvise(descriptor, offset, length, what)

    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    reader = disk.sequential(opened, stop)
    chunk, data, start = 64 * 1024, [], 4096
    for offset in range(start, stop, chunk):
        data.append(reader.read(min(chunk, stop - offset), offset))
    assert b"".join(data) == CONTENT[start:stop]
    assert advice[0] == (start, start + 1024 * 1024)
    assert all(b == c for (_, b), (c, _) in itertools.pairwise(advice))  # no gaps
    assert advice[-1][1] == stop
    assert len(advice) >= (stop - start) // (1024 * 1024)  # renewed, not asked once


def test_a_range_cached_only_at_its_start_counts_as_cold(disk: DiskIO, opened: OpenFile) -> None:
    require_probeable(disk, opened)
    evict(disk, opened)
    assert opened.fd is not None
    os.pread(opened.fd, 4096, 0)
    assert disk.is_cached(opened, 0, 4096)
    assert not disk.is_cached(opened, 0, SIZE)


def test_warming_past_the_end_stops_quietly(disk: DiskIO, opened: OpenFile) -> None:
    diskio._warm(opened, SIZE - 10, 1000)


def test_a_device_without_nowait_is_marked_alone_and_read_in_threads(
    disk: DiskIO, pool: RecordingPool, opened: OpenFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EOPNOTSUPP from the probe marks that device only: no process-wide flag that
    would then trust every page of every other file system (or of this one) as cached."""
    require_probeable(disk, opened)
    real_preadv = os.preadv

    def unsupported(*args: Any) -> int:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "preadv", unsupported)
    assert not disk.is_cached(opened, 0, SIZE)
    monkeypatch.setattr(os, "preadv", real_preadv)
    assert not disk.mounts.probeable(opened.dev)
    assert disk.mounts.probeable(opened.dev + 1) == disk.mounts.is_local(opened.dev + 1)
    assert disk.read(opened, 5, 0) == CONTENT[:5]
    assert not disk.sendfile_safe(opened)
    assert pool.calls == ["_pread"]


def test_a_file_system_that_is_not_local_is_never_trusted_as_cached(
    disk: DiskIO, pool: RecordingPool, opened: OpenFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(disk.mounts, "_types", {opened.dev: "nfs4"})
    assert not disk.is_cached(opened, 0, 4096)
    assert disk.read(opened, 4096, 0) == CONTENT[:4096]
    assert disk.sequential(opened, SIZE).read(10, 100) == CONTENT[100:110]
    assert pool.calls == ["_pread", "_pread"]  # no readahead advice: see SequentialReader
    assert not disk.sendfile_safe(opened)


@pytest.mark.parametrize("code", [errno.EIO, errno.ESTALE, errno.EREMOTEIO])
def test_a_failing_read_is_a_storage_error_at_its_offset(
    disk: DiskIO, opened: OpenFile, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    def fail(*args: Any) -> bytes:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(disk.mounts, "_types", {opened.dev: "fuse"})
    monkeypatch.setattr(os, "pread", fail)
    with pytest.raises(StorageError) as raised:
        disk.read(opened, 4096, 65536)
    assert (raised.value.errno_name, raised.value.offset) == (errno.errorcode[code], 65536)
    with pytest.raises(StorageError) as raised:
        disk.sequential(opened, SIZE).read(10, 100)
    assert raised.value.offset == 100


def test_a_descriptor_in_use_by_a_thread_is_closed_when_the_thread_is_done(
    opened: OpenFile,
) -> None:
    fd = opened.fd
    opened.pin()
    opened.close()
    assert opened.fd == fd  # not yet: the number must not be reused under the thread
    opened.unpin()
    assert opened.fd is None
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)  # type: ignore[arg-type]
