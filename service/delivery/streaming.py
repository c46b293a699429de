"""Streaming: executes a plan's body layout over an open file. I/O only, no HTTP logic.

Two ways to move the bytes, chosen in one place (:func:`uses_sendfile`):

- *copy*: ``os.pread`` in ``chunk_size`` pieces yielded to the WSGI server; works
  under any server, and is the path for small bodies and for files on file systems
  whose page cache the kernel cannot vouch for (NFS, FUSE, ...: every read in a thread).
- *zero-copy*: under gunicorn on a plain-HTTP/1.x socket (:func:`zero_copy_socket`),
  the generator yields a small first piece (so the server sends the header section
  with it), then writes the rest itself with ``os.sendfile`` on the non-blocking client
  socket, waiting cooperatively on ``EAGAIN``. gevent's own ``socket.sendfile`` is a
  read-and-send loop, so gunicorn's ``wsgi.file_wrapper`` path never reaches the
  kernel's sendfile.

Both never read past the planned spans (a growing file is sent exactly as planned), both
yield to the event loop every ``yield_interval`` bytes (a fast client must not starve
the worker). The first file bytes are read before the response starts (:func:`prime`),
so a storage error there is a clean 503. A storage error or a file that comes up short
later is reported to the sink and ends the connection, never leaving a short body on a
keep-alive connection. The descriptor is closed when the body ends, fails, or the client
goes away. Reads that could wait for storage run in a thread (:mod:`service.storage.diskio`).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from service.delivery.eventloop import pause_cooperatively
from service.sansio import Span
from service.sansio.multipart import Segment
from service.sansio.pacing import RateLimit
from service.storage.catalog import OpenFile
from service.storage.diskio import DiskIO
from service.storage.iopool import IOPool
from service.storage.mounts import Mounts
from service.web.errors import StorageError, TruncatedFileError

#: Bytes sent through the server before switching to sendfile. Any non-empty chunk
#: carries the header section out (PEP 3333 servers send headers with the first
#: non-empty bytes), and gunicorn's write loop keeps a reference to the last chunk it
#: wrote for as long as the next one takes, i.e. the whole sendfile transfer: so a
#: few hundred bytes, not a buffer held per slow client (16 KiB was a third of each
#: one's RSS). Not one byte either: REDbot checks a range against the first body chunk
#: it receives and, when that chunk is under 97 bytes, reports a correct 206 as
#: RANGE_INCORRECT (its own off-by-one); a 1-byte primer often arrived alone.
PRIMER = 256
#: Most bytes asked of one sendfile call (the socket buffer bounds what it really
#: sends). Small enough that a fast client yields to others often: with 8 MiB, one
#: call could hold the event loop for milliseconds (p99 of a small request: 100 ms).
SENDFILE_STEP = 256 * 1024
#: A span that starts on a page boundary has its first bytes copied, so that no sendfile
#: call reads from a page-aligned offset: here (Linux 6.18, loopback) aligned calls cost
#: about a fifth more CPU per byte and move a fifth fewer bytes per second, in a bare
#: sendfile loop as in the service. Archive members start at offset 0 and showed it
#: first (an archive at 0.7x one file's speed; 0.97x with this).
OFF_GRID = 256
_PAGE = 4096
#: Bodies with at most this many file bytes take the copy path even when sendfile is
#: possible: one pread and one write cost less than a primer, then sendfile and its
#: waits (random 64 KiB ranges: 4% fewer instructions per request). A slow client holds
#: one such chunk at most, as it held the primer before.
SMALL_BODY = 64 * 1024


def zero_copy_socket(environ: Mapping[str, Any], enabled: bool) -> socket.socket | None:
    """The client socket, when this response may bypass the server with ``sendfile``.

    Only gunicorn hands it out, and only a plain TCP socket speaking HTTP/1.x carries our
    bytes unchanged: TLS in gunicorn and HTTP/2 framing would be corrupted.
    """
    sock = environ.get("gunicorn.socket")
    if not enabled or not isinstance(sock, socket.socket):
        return None
    # The class, not the socket: gevent's socket answers a missing attribute through
    # __getattr__ and an exception (1.8 us a request; the class lookup is 0.2 us).
    if hasattr(type(sock), "getpeercert") or sock.type != socket.SOCK_STREAM:
        return None  # an SSL socket, or not TCP
    if environ.get("SERVER_PROTOCOL") not in ("HTTP/1.0", "HTTP/1.1"):
        return None
    return sock


def limit_send_time(environ: Mapping[str, Any], seconds: int) -> Callable[[], None]:
    """Drop a client that accepts no bytes for ``seconds`` (0: never), like nginx's
    ``send_timeout``: a stalled reader would otherwise hold its descriptor forever.

    Returns the function that puts the socket's own timeout back when the response
    ends, so the wait for the next request on the connection stays the server's.
    """
    sock = environ.get("gunicorn.socket")
    if not seconds or not isinstance(sock, socket.socket):
        return lambda: None
    previous = sock.gettimeout()
    sock.settimeout(seconds)

    def restore() -> None:
        try:
            sock.settimeout(previous)
        except OSError:  # already closed
            pass

    return restore


class Throttle:
    """Paces one response: a yield to the event loop every ``yield_interval`` bytes, and
    past the free burst at most the rate of ``limit``. Both paths report what they sent."""

    def __init__(self, yield_interval: int, limit: RateLimit | None = None) -> None:
        self.yield_interval = yield_interval
        self.limit = limit
        self.sent = 0
        self._unyielded = 0
        self._start = time.monotonic()

    def allowance(self, wanted: int) -> int:
        """How many of ``wanted`` bytes may go out in one step."""
        return wanted if self.limit is None else min(wanted, self.limit.step(self.sent))

    def account(self, count: int) -> None:
        """Record ``count`` bytes sent; sleep (cooperatively) as the limits require."""
        self.sent += count
        self._unyielded += count
        pause = 0.0
        if self.limit is not None:
            pause = self.limit.delay(self.sent, time.monotonic() - self._start)
        if pause > 0 or self._unyielded >= self.yield_interval:
            self._unyielded = 0
            pause_cooperatively(pause)


class Sink(Protocol):
    """Who hears about bytes written past the server, a departed client, and a transfer
    cut by its storage (the access log's record, through :mod:`service.storage.faults`)."""

    def sent_directly(self, count: int) -> None: ...

    def client_left(self) -> None: ...

    def failed(self, error: StorageError | TruncatedFileError, headers_sent: bool) -> None: ...


@dataclass(slots=True)
class Primed:
    """The body's first file bytes, read before the response started (:func:`prime`), so
    that a storage error there is still a clean 503. ``data`` is None when only the
    pages were warmed for ``sendfile``, and once the stream has taken it: a slow client
    must not hold this chunk while the server writes the next one."""

    offset: int
    data: bytes | None

    def take(self, offset: int) -> bytes | None:
        """The primed bytes if the stream is at their offset (once)."""
        if offset != self.offset:
            return None
        data, self.data = self.data, None
        return data


def uses_sendfile(
    file: OpenFile, body: Sequence[Segment], sock: socket.socket | None, disk: DiskIO
) -> bool:
    """The delivery path: ``sendfile`` onto ``sock`` for bodies past :data:`SMALL_BODY`
    from files whose pages the kernel can vouch for; else the copy path."""
    return sock is not None and _file_bytes(body) > SMALL_BODY and disk.sendfile_safe(file)


def prime(
    file: OpenFile,
    body: Sequence[Segment],
    chunk_size: int,
    disk: DiskIO,
    zero_copy: bool,
    rate_limit: RateLimit | None = None,
) -> Primed | None:
    """Read (or, for ``sendfile``, warm) the start of the first span now; raises
    StorageError. The stream then begins with exactly these bytes."""
    first = next((segment for segment in body if isinstance(segment, Span)), None)
    if first is None:
        return None
    if zero_copy:
        head = PRIMER if first is body[0] else 0  # what _zero_copy copies before sendfile
        disk.ensure_cached(file, first.start + head, min(SENDFILE_STEP, first.length - head))
        data = disk.read(file, head, first.start) if head else None
        return Primed(first.start, data)
    wanted = min(chunk_size, first.length)
    if rate_limit is not None:
        wanted = min(wanted, rate_limit.step(0))
    return Primed(first.start, disk.read(file, wanted, first.start))


def iter_body(
    file: OpenFile,
    body: Sequence[Segment],
    chunk_size: int,
    yield_interval: int = 256 * 1024,
    sock: socket.socket | None = None,
    rate_limit: RateLimit | None = None,
    sink: Sink | None = None,
    *,
    disk: DiskIO | None = None,
    primed: Primed | None = None,
    abort: Callable[[], bool] | None = None,
) -> Iterator[bytes]:
    """Yield (or, given ``sock``, send) the body's bytes; closes ``file`` in every case.

    ``sink`` hears of the bytes sent past the server, of a client that left there, and
    of a storage error or truncation, after which ``abort`` ends the connection (the
    generator then just stops); without ``abort``, or where it cannot, the error is
    raised to the server, which must not leave a short body on the connection either.
    """
    disk = disk if disk is not None else DiskIO(IOPool(1, 1, 60.0), Mounts())
    yielded = False
    try:
        whole = _primed_whole(body, primed) if rate_limit is None else None
        if whole is not None:  # a small range, read before the response: nothing to pace
            yielded = True
            yield whole
            return
        throttle = Throttle(yield_interval, rate_limit)
        if uses_sendfile(file, body, sock, disk):
            chunks = _zero_copy(disk, file, body, sock, throttle, sink, primed)  # type: ignore[arg-type]
        else:
            chunks = _copy_all(disk, file, body, chunk_size, throttle, primed)
        for chunk in chunks:
            yielded = True
            yield chunk
    except (StorageError, TruncatedFileError) as error:
        if sink is not None:
            sink.failed(error, yielded)
        if abort is None or not abort():
            raise
    finally:
        file.close()


def _primed_whole(body: Sequence[Segment], primed: Primed | None) -> bytes | None:
    """The primed bytes when they are the whole body (one span, read in full)."""
    if primed is None or primed.data is None or len(body) != 1:
        return None
    span = body[0]
    if not isinstance(span, Span) or len(primed.data) != span.length:
        return None
    return primed.take(span.start)


def _copy_all(
    disk: DiskIO,
    file: OpenFile,
    body: Sequence[Segment],
    chunk_size: int,
    throttle: Throttle,
    primed: Primed | None,
) -> Iterator[bytes]:
    for segment in body:
        yield from copy_segment(disk, file, segment, chunk_size, throttle, primed)
        if isinstance(segment, Span):
            primed = None  # only ever the first span's


def copy_segment(
    disk: DiskIO,
    file: OpenFile,
    segment: Segment,
    chunk_size: int,
    throttle: Throttle,
    primed: Primed | None = None,
) -> Iterator[bytes]:
    if not isinstance(segment, Span):
        yield segment
        throttle.account(len(segment))
        return
    reader = disk.sequential(file, segment.stop)
    offset = segment.start
    data = primed.take(offset) if primed is not None else None
    if data:
        offset += len(data)
        yield data
        throttle.account(len(data))
    del data  # the server holds the chunk it writes; this frame must not hold one more
    while offset < segment.stop:
        wanted = throttle.allowance(min(chunk_size, segment.stop - offset))
        data = reader.read(wanted, offset)
        if not data:
            raise TruncatedFileError(offset, segment.stop - offset)
        offset += len(data)
        yield data
        throttle.account(len(data))


def _zero_copy(
    disk: DiskIO,
    file: OpenFile,
    body: Sequence[Segment],
    sock: socket.socket,
    throttle: Throttle,
    sink: Sink | None,
    primed: Primed | None,
) -> Iterator[bytes]:
    first, rest = _split_primer(body)
    yield from copy_segment(disk, file, first, PRIMER, throttle, primed)
    # The header section and the primer are on the wire: the rest bypasses the server.
    direct = throttle.sent
    try:
        for segment in rest:
            if isinstance(segment, Span):
                send_span(disk, sock, file, segment, throttle)
            else:
                sock.sendall(segment)
                throttle.account(len(segment))
    except (ConnectionError, TimeoutError):
        # The client left or stalled past the socket's timeout. The server does not
        # know what we sent, so end the connection here: it then reads EOF and closes.
        shut_down(sock)
        if sink is not None:
            sink.client_left()
    finally:
        if sink is not None:
            sink.sent_directly(throttle.sent - direct)


def _file_bytes(body: Sequence[Segment]) -> int:
    return sum(segment.length for segment in body if isinstance(segment, Span))


def _split_primer(body: Sequence[Segment]) -> tuple[Segment, list[Segment]]:
    first, *rest = body
    if isinstance(first, Span) and first.length > PRIMER:
        split = first.start + PRIMER
        return Span(first.start, split), [Span(split, first.stop), *rest]
    return first, rest


def send_span(
    disk: DiskIO, sock: socket.socket, file: OpenFile, span: Span, throttle: Throttle
) -> None:
    out = sock.fileno()
    fd = _fd(file)
    offset = cached_until = span.start
    if offset % _PAGE == 0 and span.length > OFF_GRID:
        offset = cached_until = _send_head(disk, sock, file, offset, throttle)
    while offset < span.stop:
        if offset >= cached_until:  # a slow client takes many calls per step: probe once
            cached_until = min(span.stop, offset + SENDFILE_STEP)
            disk.ensure_cached(file, offset, cached_until - offset)
        step = throttle.allowance(cached_until - offset)
        try:
            sent = os.sendfile(out, fd, offset, step)
        except BlockingIOError:
            _wait_writable(out, sock.gettimeout())
            continue
        except (ConnectionError, TimeoutError):
            raise
        except OSError as error:  # the socket's errors are above: this is the file's
            raise StorageError.from_os_error(error, offset) from error
        if sent == 0:
            raise TruncatedFileError(offset, span.stop - offset)
        offset += sent
        throttle.account(sent)


def _send_head(
    disk: DiskIO, sock: socket.socket, file: OpenFile, offset: int, throttle: Throttle
) -> int:
    """Copy :data:`OFF_GRID` bytes at ``offset`` onto ``sock``; where sendfile goes on."""
    data = disk.read(file, OFF_GRID, offset)
    if len(data) < OFF_GRID:
        raise TruncatedFileError(offset + len(data), OFF_GRID - len(data))
    sock.sendall(data)
    throttle.account(len(data))
    return offset + OFF_GRID


def _wait_writable(fileno: int, timeout: float | None) -> None:
    """Park this greenlet until the socket drains (a blocking socket never gets here)."""
    from gevent.socket import wait_write

    wait_write(fileno, timeout=timeout, timeout_exc=TimeoutError("send timed out"))


def shut_down(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _fd(file: OpenFile) -> int:
    if file.fd is None:
        raise ValueError("the file is already closed")
    return file.fd
