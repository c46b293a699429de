"""``multipart/byteranges`` framing (RFC 9110 §14.6, RFC 2046 §5.1.1)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from service.sansio.multipart import Segment, body_length, content_type, layout, new_boundary
from service.sansio.ranges import Span

DATA = bytes(i % 256 for i in range(1000))


def render(segments: Sequence[Segment]) -> bytes:
    return b"".join(s if isinstance(s, bytes) else DATA[s.start : s.stop] for s in segments)


def test_boundary_is_32_hex_digits() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", new_boundary())


def test_boundaries_are_not_repeated() -> None:
    assert len({new_boundary() for _ in range(100)}) == 100


def test_content_type_names_an_unquoted_boundary() -> None:
    assert content_type("abc123") == "multipart/byteranges; boundary=abc123"


def test_two_part_layout_matches_the_wire_format_byte_for_byte() -> None:
    segments = layout("BNDRY", "application/octet-stream", [Span(0, 10), Span(20, 30)], 1000)
    assert render(segments) == (
        b"--BNDRY\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Range: bytes 0-9/1000\r\n"
        b"\r\n" + DATA[0:10] + b"\r\n"
        b"--BNDRY\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Range: bytes 20-29/1000\r\n"
        b"\r\n" + DATA[20:30] + b"\r\n"
        b"--BNDRY--\r\n"
    )
    assert body_length(segments) == 201  # http-semantics.md §2.4


def test_layout_starts_with_the_boundary_without_a_leading_crlf() -> None:
    segments = layout("b", "text/plain", [Span(5, 6)], 1000)
    assert render(segments).startswith(b"--b\r\n")


def test_layout_ends_with_the_close_delimiter() -> None:
    segments = layout("b", "text/plain", [Span(5, 6), Span(500, 600)], 1000)
    assert render(segments).endswith(b"\r\n--b--\r\n")


def test_layout_reads_each_span_once_in_the_given_order() -> None:
    ordered = [Span(500, 600), Span(0, 10), Span(900, 1000)]
    segments = layout("b", "video/mp4", ordered, 1000)
    assert [s for s in segments if isinstance(s, Span)] == ordered


def test_every_part_carries_content_type_and_its_own_content_range() -> None:
    segments = layout("b", "video/mp4", [Span(0, 1), Span(999, 1000)], 1000)
    body = render(segments)
    assert body.count(b"Content-Type: video/mp4\r\n") == 2
    assert b"Content-Range: bytes 0-0/1000\r\n" in body
    assert b"Content-Range: bytes 999-999/1000\r\n" in body


def test_body_length_counts_framing_and_span_bytes() -> None:
    segments: list[Segment] = [b"abc", Span(10, 20), b"", Span(0, 1)]
    assert body_length(segments) == 3 + 10 + 0 + 1


def test_body_length_equals_the_rendered_size() -> None:
    spans = [Span(i * 100, i * 100 + 7) for i in range(10)]
    segments = layout(new_boundary(), "application/octet-stream", spans, 1000)
    assert body_length(segments) == len(render(segments))


def test_body_length_of_nothing_is_zero() -> None:
    assert body_length(()) == 0


def test_framing_segments_are_ascii() -> None:
    segments = layout("b", "application/octet-stream", [Span(0, 1), Span(2, 3)], 1000)
    for segment in segments:
        if isinstance(segment, bytes):
            assert segment.isascii()
