"""Streaming an archive: executes its plan over the layout's pieces, opening the member
files one at a time. I/O only; what the bytes are is :mod:`service.sansio.archive`'s.

The planned body's spans are ranges of the archive; each becomes header bytes and spans
of member files (:meth:`Layout.pieces`), built as the stream reaches them. A member is
opened when its first byte is due and checked against the version the archive was
planned with (:class:`MemberChangedError` otherwise: never a wrong byte on the wire).
Bytes move like a file's (:mod:`service.delivery.streaming`): header bytes through the
server or ``sendall``, member bytes by ``pread`` copies or ``sendfile``, with the same
yields, rate limit and send timeout over the whole archive.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Sequence

from service.delivery.streaming import (
    PRIMER,
    Sink,
    Throttle,
    copy_segment,
    send_span,
    shut_down,
)
from service.sansio import Span
from service.sansio.archive import Layout
from service.sansio.multipart import Segment
from service.sansio.pacing import RateLimit
from service.storage.catalog import OpenFile
from service.storage.diskio import DiskIO
from service.web.errors import StorageError, TruncatedFileError

#: Opens member number ``i`` as planned, or raises (MemberChangedError, StorageError).
MemberOpener = Callable[[int], OpenFile]
#: What the stream moves: header bytes, or a span of an open member file.
Part = bytes | tuple[OpenFile, Span]


class _OpenMembers:
    """The member file being read; the previous one is closed when the next opens."""

    def __init__(self, opener: MemberOpener) -> None:
        self.opener = opener
        self.index = -1
        self.file: OpenFile | None = None

    def get(self, index: int) -> OpenFile:
        if index != self.index or self.file is None:
            self.close()
            self.file = self.opener(index)
            self.index = index
        return self.file

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def iter_archive(
    layout: Layout,
    body: Sequence[Segment],
    opener: MemberOpener,
    disk: DiskIO,
    chunk_size: int,
    yield_interval: int,
    sock: socket.socket | None = None,
    rate_limit: RateLimit | None = None,
    sink: Sink | None = None,
    abort: Callable[[], bool] | None = None,
) -> Iterator[bytes]:
    """Yield (or, given ``sock``, send after a first piece) the archive's planned body.

    Errors are handled as :func:`service.delivery.streaming.iter_body` handles them;
    every member file is closed in every case."""
    members = _OpenMembers(opener)
    yielded = False
    try:
        throttle = Throttle(yield_interval, rate_limit)
        parts = _parts(layout, body, members)
        if sock is None:
            chunks = _copy_parts(disk, parts, chunk_size, throttle)
        else:
            chunks = _zero_copy_parts(disk, parts, chunk_size, sock, throttle, sink)
        for chunk in chunks:
            yielded = True
            yield chunk
    except (StorageError, TruncatedFileError) as error:
        if sink is not None:
            sink.failed(error, yielded)
        if abort is None or not abort():
            raise
    finally:
        members.close()


def _parts(layout: Layout, body: Sequence[Segment], members: _OpenMembers) -> Iterator[Part]:
    for segment in body:
        if isinstance(segment, bytes):
            yield segment  # multipart framing around ranges of the archive
            continue
        for piece in layout.pieces(segment.start, segment.stop):
            if isinstance(piece, bytes):
                yield piece
            else:
                yield members.get(piece.member), Span(piece.start, piece.stop)


def _copy_parts(
    disk: DiskIO, parts: Iterator[Part], chunk_size: int, throttle: Throttle
) -> Iterator[bytes]:
    for part in parts:
        if isinstance(part, bytes):
            yield part
            throttle.account(len(part))
        else:
            yield from copy_segment(disk, part[0], part[1], chunk_size, throttle)


def _zero_copy_parts(
    disk: DiskIO,
    parts: Iterator[Part],
    chunk_size: int,
    sock: socket.socket,
    throttle: Throttle,
    sink: Sink | None,
) -> Iterator[bytes]:
    # The first bytes go through the server, which sends the header section with them.
    for part in parts:
        if isinstance(part, bytes):
            yield part
            throttle.account(len(part))
            break
        file, span = part
        head = Span(span.start, min(span.stop, span.start + PRIMER))
        yield from copy_segment(disk, file, head, PRIMER, throttle)
        if head.stop < span.stop:
            parts = _chain((file, Span(head.stop, span.stop)), parts)
        break
    direct = throttle.sent
    try:
        for part in parts:
            if isinstance(part, bytes):
                sock.sendall(part)
                throttle.account(len(part))
            elif disk.sendfile_safe(part[0]):
                send_span(disk, sock, part[0], part[1], throttle)
            else:  # a member on storage whose pages the kernel cannot vouch for
                for chunk in copy_segment(disk, part[0], part[1], chunk_size, throttle):
                    sock.sendall(chunk)
    except (ConnectionError, TimeoutError):
        shut_down(sock)  # the server does not know what was sent: end the connection
        if sink is not None:
            sink.client_left()
    finally:
        if sink is not None:
            sink.sent_directly(throttle.sent - direct)


def _chain(first: Part, rest: Iterator[Part]) -> Iterator[Part]:
    yield first
    yield from rest
