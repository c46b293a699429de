"""service.diskio: cold pages are read off the event loop, cached ones directly."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import diskio

SIZE = 8 * 1024 * 1024
CONTENT = os.urandom(SIZE)


@pytest.fixture
def fd(tmp_path: Path) -> Iterator[int]:
    path = tmp_path / "data.bin"
    path.write_bytes(CONTENT)
    descriptor = os.open(path, os.O_RDONLY)
    yield descriptor
    os.close(descriptor)


def evict(fd: int) -> None:
    """Drop the file's pages, and stop the kernel reading ahead on this descriptor: with
    read_ahead_kb up to 8 MiB, one probe or read would otherwise refill the whole file
    asynchronously, after the test looked."""
    os.fsync(fd)  # dirty pages cannot be dropped
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    if diskio.is_cached(fd, SIZE // 2, 4096):
        pytest.skip("this filesystem keeps every page in memory (tmpfs)")


def test_a_fresh_file_is_cached_and_read_directly(fd: int, monkeypatch) -> None:
    monkeypatch.setattr(diskio, "_off_loop", lambda *args: pytest.fail("went off the loop"))
    assert diskio.is_cached(fd, 0, SIZE)
    assert diskio.read(fd, 1000, 12345) == CONTENT[12345:13345]


def test_evicted_pages_are_reported_and_read_off_the_loop(fd: int, monkeypatch) -> None:
    evict(fd)
    assert not diskio.is_cached(fd, 0, SIZE)
    calls: list[str] = []

    def off_loop(function, *args):  # type: ignore[no-untyped-def]
        calls.append(function.__name__)
        return function(*args)

    monkeypatch.setattr(diskio, "_off_loop", off_loop)
    assert diskio.read(fd, 70_000, 3_000_000) == CONTENT[3_000_000:3_070_000]
    diskio.ensure_cached(fd, 5_000_000, 1_000_000)
    assert calls == ["pread", "_warm"]
    assert diskio.is_cached(fd, 5_000_000, 1_000_000)  # warmed for sendfile


def test_a_sequential_reader_of_a_hot_file_stays_on_the_loop(fd: int, monkeypatch) -> None:
    monkeypatch.setattr(diskio, "_off_loop", lambda *args: pytest.fail("went off the loop"))
    reader = diskio.SequentialReader(fd, SIZE)
    chunk = 256 * 1024
    assert b"".join(reader.read(chunk, offset) for offset in range(0, SIZE, chunk)) == CONTENT


def test_a_sequential_reader_of_a_cold_file_keeps_the_kernel_reading_ahead(
    fd: int, monkeypatch
) -> None:
    """After the first miss, every read-ahead request runs in the pool, stays within
    READ_AHEAD of the reader, never passes the span's end, and the bytes are exact."""
    evict(fd)
    monkeypatch.setattr(diskio, "READ_AHEAD", 1024 * 1024)
    stop = SIZE - 100_000
    off_loop: list[str] = []
    advice: list[tuple[int, int]] = []
    real_fadvise = os.posix_fadvise

    def in_pool(function, *args):  # type: ignore[no-untyped-def]
        off_loop.append(function.__name__)
        return function(*args)

    def fadvise(descriptor: int, offset: int, length: int, what: int) -> None:
        assert off_loop, "advice given on the loop"
        if what == os.POSIX_FADV_WILLNEED:
            advice.append((offset, offset + length))
        real_fadvise(descriptor, offset, length, what)

    monkeypatch.setattr(diskio, "_off_loop", in_pool)
    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    reader = diskio.SequentialReader(fd, stop)
    chunk, data, start = 64 * 1024, [], 4096
    for offset in range(start, stop, chunk):
        data.append(reader.read(min(chunk, stop - offset), offset))
    assert b"".join(data) == CONTENT[start:stop]
    assert advice[0] == (start, start + 1024 * 1024)
    assert all(b == c for (_, b), (c, _) in itertools.pairwise(advice))  # no gaps
    assert advice[-1][1] == stop
    assert len(advice) >= (stop - start) // (1024 * 1024)  # renewed, not asked once


def test_a_range_cached_only_at_its_start_counts_as_cold(fd: int) -> None:
    evict(fd)
    os.pread(fd, 4096, 0)
    assert diskio.is_cached(fd, 0, 4096)
    assert not diskio.is_cached(fd, 0, SIZE)


def test_without_gevent_the_work_runs_inline(fd: int) -> None:
    assert diskio._off_loop(os.pread, fd, 10, 0) == CONTENT[:10]


def test_warming_past_the_end_stops_quietly(fd: int) -> None:
    diskio._warm(fd, SIZE - 10, 1000)


def test_a_filesystem_without_nowait_reads_plainly(fd: int, monkeypatch) -> None:
    def unsupported(*args: object) -> int:
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(os, "preadv", unsupported)
    monkeypatch.setattr(diskio, "_nowait_supported", True)
    assert diskio.is_cached(fd, 0, SIZE)
    assert diskio._nowait_supported is False
    assert diskio.read(fd, 5, 0) == CONTENT[:5]


def test_under_gevent_the_work_runs_in_the_thread_pool(tmp_path: Path) -> None:
    """In a monkey-patched process (as a gevent worker is) the read runs in another
    OS thread, and other greenlets keep running while it waits."""
    script = tmp_path / "probe.py"
    script.write_text(
        "from gevent import monkey\n"
        "monkey.patch_all()\n"
        "import threading, gevent\n"
        "from service import diskio\n"
        "main = threading.get_native_id()\n"
        "ticks = []\n"
        "ticker = gevent.spawn(lambda: [ticks.append(1) or gevent.sleep(0.01) for _ in range(5)])\n"
        "def slow():\n"
        "    import time\n"
        "    time.sleep(0.2)  # blocks this pool thread, as a disk wait would\n"
        "    return threading.get_native_id()\n"
        "worker = diskio._off_loop(slow)\n"
        "print(worker != main, len(ticks))\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "5"]
