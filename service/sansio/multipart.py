"""``multipart/byteranges`` framing (RFC 9110 §14.6, RFC 2046 §5.1.1), CRLF only.

A body is laid out as a tuple of segments: ``bytes`` are framing written as they are,
:class:`Span` segments are read from the file. The length of a layout is therefore
known before a byte is sent.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from service.sansio.ranges import Span

Segment = bytes | Span


def new_boundary() -> str:
    """A random boundary: 32 hex digits, never predictable, never quoted (§14.6)."""
    return secrets.token_hex(16)


def content_type(boundary: str) -> str:
    return f"multipart/byteranges; boundary={boundary}"


def layout(boundary: str, part_type: str, spans: Sequence[Span], size: int) -> tuple[Segment, ...]:
    """Segments of a multipart body: each part's header, then its span, then the close.

    The CRLF before each later ``--boundary`` belongs to the delimiter (RFC 2046), so the
    body starts directly with ``--boundary`` and ends with ``--boundary--`` CRLF.
    """
    segments: list[Segment] = []
    for index, span in enumerate(spans):
        delimiter = "--" if index == 0 else "\r\n--"
        head = (
            f"{delimiter}{boundary}\r\n"
            f"Content-Type: {part_type}\r\n"
            f"Content-Range: {span.content_range(size)}\r\n\r\n"
        )
        segments += [head.encode("latin-1"), span]
    segments.append(f"\r\n--{boundary}--\r\n".encode("latin-1"))
    return tuple(segments)


def body_length(segments: Sequence[Segment]) -> int:
    """The exact number of bytes the segments produce."""
    return sum(s.length if isinstance(s, Span) else len(s) for s in segments)
