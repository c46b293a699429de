"""Streaming: executes a plan's body layout over an open file. I/O only, no HTTP logic.

Reads with ``os.pread`` (no shared seek state) in ``chunk_size`` pieces, never past the
planned spans, so a file that grows is still sent exactly as planned. A file that comes
up short raises :class:`TruncatedFileError`: the server then aborts the connection
instead of leaving a short body on a keep-alive connection. The descriptor is closed
when the body ends, fails, or the client goes away (``GeneratorExit``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence

from service.catalog import OpenFile
from service.errors import TruncatedFileError
from service.sansio import Span
from service.sansio.multipart import Segment


def iter_body(file: OpenFile, body: Sequence[Segment], chunk_size: int) -> Iterator[bytes]:
    """Yield the body's bytes; closes ``file`` in every case."""
    try:
        for segment in body:
            if isinstance(segment, Span):
                yield from _iter_span(file, segment, chunk_size)
            else:
                yield segment
    finally:
        file.close()


def _iter_span(file: OpenFile, span: Span, chunk_size: int) -> Iterator[bytes]:
    fd = file.fd
    if fd is None:
        raise ValueError("the file is already closed")
    offset = span.start
    while offset < span.stop:
        data = os.pread(fd, min(chunk_size, span.stop - offset), offset)
        if not data:
            raise TruncatedFileError(f"file ended at byte {offset}, {span.stop - offset} short")
        offset += len(data)
        yield data
        # Under gevent's monkey-patching this yields to the hub: a fast client that never
        # blocks on its socket would otherwise starve every other request on the worker.
        time.sleep(0)
