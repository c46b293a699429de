"""File reads that never stall the event loop: on a cold page cache, or on storage that
stalls or fails.

A regular file is always "ready" to epoll, so under gevent a read that has to wait for
the disk blocks every greenlet of the worker. Where the file system can say so (a local
one that supports ``preadv2(RWF_NOWAIT)``, :mod:`service.storage.mounts`), we ask the kernel,
without waiting, whether the first and last pages of a range are in the page cache, and
read cached ranges right on the loop. Everything else (a cold range, any read from NFS,
FUSE and other file systems the kernel cannot vouch for) runs in the worker's I/O
threads (:mod:`service.storage.iopool`), capped per file and timed. Sequential readahead fills
a range front to back, so its two ends are a cheap and good proxy for the whole.

A failed read raises :class:`~service.web.errors.StorageError` with the offset it failed at.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from service.storage.catalog import OpenFile
from service.storage.iopool import IOPool
from service.storage.mounts import Mounts
from service.web.errors import StorageError

T = TypeVar("T")

_PROBE = bytearray(1)
_WARM_STEP = 1024 * 1024
#: How far ahead of a sequential reader of a cold file the kernel is asked to read.
READ_AHEAD = 8 * 1024 * 1024
_NOWAIT = getattr(os, "RWF_NOWAIT", None)


class DiskIO:
    """Reads for one worker: on the loop when the kernel says they cannot wait, else in
    ``pool``'s threads."""

    def __init__(self, pool: IOPool, mounts: Mounts) -> None:
        self.pool = pool
        self.mounts = mounts

    def read(self, file: OpenFile, length: int, offset: int) -> bytes:
        """``os.pread``, moved off the event loop unless the pages are known cached."""
        if self.is_cached(file, offset, length):
            return _pread(file, length, offset)
        return self.off_loop(file, offset, _pread, file, length, offset)

    def sequential(self, file: OpenFile, stop: int) -> SequentialReader:
        return SequentialReader(self, file, stop)

    def ensure_cached(self, file: OpenFile, offset: int, length: int) -> None:
        """Bring ``[offset, offset + length)`` into the page cache off the loop; then a
        ``sendfile`` of it cannot wait on the disk."""
        if not self.is_cached(file, offset, length):
            self.off_loop(file, offset, _warm, file, offset, length)

    def sendfile_safe(self, file: OpenFile) -> bool:
        """Whether ``sendfile`` from ``file`` may run on the loop once its pages are
        known cached: only where the kernel can tell (else: the copy path, in threads)."""
        return _NOWAIT is not None and self.mounts.probeable(file.dev)

    def is_cached(self, file: OpenFile, offset: int, length: int) -> bool:
        """True when the range's first and last bytes can be read without waiting."""
        if length <= 0:
            return True
        if _NOWAIT is None or not self.mounts.probeable(file.dev):
            return False
        fd = _fd(file)
        try:
            for position in (offset, offset + length - 1):
                os.preadv(fd, [_PROBE], position, _NOWAIT)
        except BlockingIOError:
            return False
        except OSError:  # EOPNOTSUPP and the like: this file system cannot say
            self.mounts.cannot_probe(file.dev)
            return False
        return True

    def off_loop(self, file: OpenFile, offset: int, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` in an I/O thread, holding ``file``'s descriptor open until
        it returns; an OSError becomes a StorageError at ``offset``."""
        file.pin()
        try:
            result: T = self.pool.call(
                ("file", file.dev, file.ino),
                _storage_errors,
                offset,
                function,
                args,
                when_done=file.unpin,
            )
        except StorageError as error:  # the pool's own: busy, or no answer in time
            if error.offset is None:
                error.offset = offset
            raise
        return result


class SequentialReader:
    """Reads one span of a file front to back (the copy path), cached pages on the loop.

    Once a read misses the page cache the file is cold, and from then on the I/O thread
    keeps the kernel reading up to :data:`READ_AHEAD` bytes ahead (``WILLNEED``, never
    past the span). Pages read that way carry no readahead mark, so the loop's reads of
    them never start the kernel's own readahead: that I/O submission ran on the loop
    and cost 0.4 ms per 256 KiB read, with stalls of 5-28 ms.
    """

    def __init__(self, disk: DiskIO, file: OpenFile, stop: int) -> None:
        self.disk = disk
        self.file = file
        self.stop = stop
        self._advised = 0  # the kernel was asked to read up to here; 0: not cold yet

    def read(self, length: int, offset: int) -> bytes:
        if not self.disk.mounts.probeable(self.file.dev):
            # No advice here: on FUSE, WILLNEED readahead goes out as the mount's few
            # "background" requests (max_background, 12 by default), and those of one
            # stalled file would hold every other file's readahead on that mount.
            return self.disk.read(self.file, length, offset)
        if self.disk.is_cached(self.file, offset, length) and not self._advice_due(offset):
            return _pread(self.file, length, offset)
        return self.disk.off_loop(self.file, offset, self._advise_and_read, length, offset)

    def _advice_due(self, offset: int) -> bool:
        return 0 < self._advised < self.stop and self._advised - offset < READ_AHEAD // 2

    def _advise_and_read(self, length: int, offset: int) -> bytes:
        fd = _fd(self.file)
        start = max(self._advised, offset)
        end = min(self.stop, offset + READ_AHEAD)
        if end > start:
            os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_WILLNEED)
            self._advised = end
        return os.pread(fd, length, offset)


def _pread(file: OpenFile, length: int, offset: int) -> bytes:
    try:
        return os.pread(_fd(file), length, offset)
    except OSError as error:
        raise StorageError.from_os_error(error, offset) from error


def _warm(file: OpenFile, offset: int, length: int) -> None:
    fd = _fd(file)
    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
    stop = offset + length
    while offset < stop:
        data = os.pread(fd, min(_WARM_STEP, stop - offset), offset)
        if not data:
            return  # past the end: the caller's own read reports the truncation
        offset += len(data)


def _storage_errors(offset: int, function: Callable[..., T], args: tuple[object, ...]) -> T:
    """Runs in the thread: the error names the offset the failing call started at."""
    try:
        return function(*args)
    except StorageError:
        raise
    except OSError as error:
        raise StorageError.from_os_error(error, offset) from error


def _fd(file: OpenFile) -> int:
    if file.fd is None:
        raise ValueError("the file is already closed")
    return file.fd
