"""Ranges and conditional requests over raw sockets, with the exact header bytes."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration import rawhttp
from tests.integration.conftest import ServerFactory
from tests.integration.helpers import assert_healthy, etag_of, pseudo_random, sha256
from tests.support.server import GunicornServer

pytestmark = pytest.mark.server

SIZE = 10_000
DATA = pseudo_random(SIZE, seed=1)
MTIME = 1704164645  # Tue, 02 Jan 2024 03:04:05 GMT
LAST_MODIFIED = "Tue, 02 Jan 2024 03:04:05 GMT"
TARGET = "/files/data.bin"


@dataclass
class Site:
    server: GunicornServer
    root: Path
    etag: str

    def exchange(self, raw: bytes, method: str = "GET") -> rawhttp.RawResponse:
        return rawhttp.exchange(self.server.host, self.server.port, raw, method=method)

    def connect(self) -> rawhttp.Connection:
        return rawhttp.Connection(self.server.host, self.server.port)


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, module_server_factory: ServerFactory
) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("ranges") / "data"
    root.mkdir()
    path = root / "data.bin"
    path.write_bytes(DATA)
    os.utime(path, (MTIME, MTIME))
    server = module_server_factory(root)
    yield Site(server, root, etag_of(path))
    assert_healthy(server)


def raw_get(*header_lines: bytes, target: bytes = TARGET.encode()) -> bytes:
    head = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    return head + b"".join(line + b"\r\n" for line in header_lines) + b"\r\n"


def assert_full(response: rawhttp.RawResponse) -> None:
    assert response.status == 200, response
    assert response.framing == "length"
    assert response["Content-Length"] == str(SIZE)
    assert response.get("Content-Range") is None
    assert response["Accept-Ranges"] == "bytes"
    assert sha256(response.body) == sha256(DATA)


def assert_single_range(response: rawhttp.RawResponse, start: int, stop: int) -> None:
    """A 206 of DATA[start:stop] with the exact Content-Range and Content-Length."""
    assert response.status == 206, response
    assert response.reason == "Partial Content"
    assert response.framing == "length"
    assert response.get("Transfer-Encoding") is None
    assert response["Content-Range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert response["Content-Length"] == str(stop - start)
    assert response["Content-Type"] == "application/octet-stream"
    assert response.body == DATA[start:stop]


# -- single ranges ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "start", "stop"),
    [
        pytest.param(b"Range: bytes=0-99", 0, 100, id="closed"),
        pytest.param(b"Range: bytes=1234-5677", 1234, 5678, id="middle"),
        pytest.param(b"Range: bytes=-100", SIZE - 100, SIZE, id="suffix"),
        pytest.param(b"Range: bytes=-1", SIZE - 1, SIZE, id="suffix-one"),
        pytest.param(b"Range: bytes=-20000", 0, SIZE, id="suffix-longer-than-file"),
        pytest.param(b"Range: bytes=9000-", 9000, SIZE, id="open-ended"),
        pytest.param(b"Range: bytes=0-", 0, SIZE, id="open-from-zero"),
        pytest.param(b"Range: bytes=0-1", 0, 2, id="safari-probe"),
        pytest.param(b"Range: bytes=0-0", 0, 1, id="first-byte"),
        pytest.param(b"Range: bytes=9999-9999", SIZE - 1, SIZE, id="last-byte"),
        pytest.param(b"Range: bytes=9990-123456789", 9990, SIZE, id="clipped-last-pos"),
        pytest.param(b"Range: bytes=5-" + b"9" * 40, 5, SIZE, id="huge-numeral"),
        pytest.param(b"range: Bytes=0-9", 0, 10, id="lower-name-capital-unit"),
        pytest.param(b"RANGE: BYTES=0-9", 0, 10, id="upper-case"),
        pytest.param(b"Range:bytes=10-19", 10, 20, id="no-space-after-colon"),
        pytest.param(b"Range: \tbytes=20-29 \t", 20, 30, id="ows-around-value"),
        pytest.param(b"Range: bytes= 30-39", 30, 40, id="space-after-equals"),
        pytest.param(b"Range: bytes=,,40-49,", 40, 50, id="empty-list-elements"),
        pytest.param(b"Range: bytes=0-9,5-14", 0, 15, id="overlap-coalesced"),
    ],
)
def test_single_range(site: Site, line: bytes, start: int, stop: int) -> None:
    assert_single_range(site.exchange(raw_get(line)), start, stop)


def test_single_range_carries_the_validators_of_a_200(site: Site) -> None:
    full = site.exchange(raw_get())
    part = site.exchange(raw_get(b"Range: bytes=0-9"))
    assert_full(full)
    assert_single_range(part, 0, 10)
    for name in ("ETag", "Last-Modified", "Cache-Control", "Content-Disposition"):
        assert part[name] == full[name]
    assert part["ETag"] == site.etag
    assert part["Last-Modified"] == LAST_MODIFIED


# -- multiple ranges ----------------------------------------------------------------


def parse_multipart(response: rawhttp.RawResponse) -> list[tuple[dict[str, str], bytes]]:
    """Parse multipart/byteranges framing exactly, using each part's Content-Range."""
    match = re.fullmatch(
        r"multipart/byteranges; boundary=([0-9A-Za-z'()+_,\-./:=?]{1,70})", response["Content-Type"]
    )
    assert match, response["Content-Type"]
    boundary = match.group(1).encode()
    body = response.body
    assert len(body) == int(response["Content-Length"])
    parts: list[tuple[dict[str, str], bytes]] = []
    pos = 0
    # Optional preamble CRLFs are allowed by §14.6; none are expected, but tolerate them.
    while body.startswith(b"\r\n", pos):
        pos += 2
    delimiter = b"--" + boundary
    for _ in range(1000):
        assert body.startswith(delimiter, pos), body[pos : pos + 80]
        pos += len(delimiter)
        if body.startswith(b"--", pos):
            pos += 2
            assert body[pos:] in (b"", b"\r\n"), body[pos:]
            return parts
        assert body.startswith(b"\r\n", pos)
        pos += 2
        end = body.index(b"\r\n\r\n", pos)
        headers: dict[str, str] = {}
        for line in body[pos:end].split(b"\r\n"):
            name, _, value = line.decode("ascii").partition(":")
            headers[name.strip().lower()] = value.strip()
        pos = end + 4
        range_match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", headers["content-range"])
        assert range_match, headers
        first, last, total = map(int, range_match.groups())
        assert total == SIZE
        assert 0 <= first <= last < SIZE
        data = body[pos : pos + last - first + 1]
        assert len(data) == last - first + 1
        parts.append((headers, data))
        pos += len(data)
        assert body.startswith(b"\r\n", pos), body[pos : pos + 80]
        pos += 2
    raise AssertionError("too many parts")


@pytest.mark.parametrize(
    ("line", "spans"),
    [
        pytest.param(b"Range: bytes=0-9,500-599,-10", [(0, 10), (500, 600), (SIZE - 10, SIZE)]),
        pytest.param(b"Range: bytes=5000-5099,0-9", [(5000, 5100), (0, 10)], id="request-order"),
        pytest.param(b"range: BYTES = 100-199 , 1000-", [(100, 200), (1000, SIZE)], id="ows"),
        pytest.param(
            b"Range: bytes=0-9,20000-30000,200-209",
            [(0, 10), (200, 210)],
            id="unsatisfiable-member-dropped",
        ),
    ],
)
def test_multiple_ranges_are_multipart(site: Site, line: bytes, spans: list[tuple[int, int]]):
    response = site.exchange(raw_get(line))
    assert response.status == 206, response
    assert response.framing == "length"
    assert response.get("Content-Range") is None  # §15.3.7.2: only in the parts
    assert response["ETag"] == site.etag
    parts = parse_multipart(response)
    assert len(parts) == len(spans)
    for (headers, data), (start, stop) in zip(parts, spans, strict=True):
        assert headers["content-type"] == "application/octet-stream"
        assert headers["content-range"] == f"bytes {start}-{stop - 1}/{SIZE}"
        assert data == DATA[start:stop]


def test_multipart_boundary_is_fresh_per_response(site: Site) -> None:
    first = site.exchange(raw_get(b"Range: bytes=0-0,100-100"))
    second = site.exchange(raw_get(b"Range: bytes=0-0,100-100"))
    assert first["Content-Type"] != second["Content-Type"]
    assert len(first.body) == len(second.body)


# -- 416, ignored ranges -------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"Range: bytes=10000-",
        b"Range: bytes=-0",
        b"Range: bytes=20000-30000",
        b"Range: bytes=10000-10000,12000-",
    ],
)
def test_unsatisfiable_is_416_with_current_length(site: Site, line: bytes) -> None:
    response = site.exchange(raw_get(line))
    assert response.status == 416, response
    assert response["Content-Range"] == f"bytes */{SIZE}"
    assert response.body == b"Range Not Satisfiable\n"
    assert response["Content-Length"] == str(len(response.body))


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"Range: items=0-9", id="unknown-unit"),
        pytest.param(b"Range: none", id="no-equals"),
        pytest.param(b"Range: bytes=9-0", id="last-before-first"),
        pytest.param(b"Range: bytes=abc", id="garbage"),
        pytest.param(b"Range: bytes=-", id="lone-dash"),
        pytest.param(b"Range: bytes=0x0-0x9", id="hex"),
        pytest.param(
            b"Range: bytes=" + b",".join(b"%d-%d" % (i * 200, i * 200) for i in range(40)),
            id="too-many-parts",
        ),
        pytest.param(b"Range: bytes=0-9999,0-9999", id="sum-exceeds-size"),
    ],
)
def test_unusable_range_is_ignored_with_200(site: Site, line: bytes) -> None:
    assert_full(site.exchange(raw_get(line)))


# -- conditional requests ------------------------------------------------------------


def test_if_none_match_304_then_same_connection_still_framed(site: Site) -> None:
    with site.connect() as conn:
        conn.send(
            b"GET /files/data.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"If-None-Match: " + site.etag.encode() + b"\r\n\r\n"
        )
        not_modified = conn.read_response()
        assert not_modified.status == 304, not_modified
        assert not_modified["ETag"] == site.etag
        assert not_modified.get("Content-Range") is None
        assert not_modified.get("Transfer-Encoding") is None
        assert not_modified.get("Content-Length") in (None, "0")
        # No body bytes: the very next bytes on the wire are the next status line.
        conn.send(b"GET /files/data.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=-7\r\n\r\n")
        assert_single_range(conn.read_response(), SIZE - 7, SIZE)
        conn.send(b"GET /files/data.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert_full(conn.read_response())


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(lambda tag: [b"If-None-Match: " + tag], id="exact"),
        pytest.param(lambda tag: [b"If-None-Match: W/" + tag], id="weak-compare"),
        pytest.param(lambda tag: [b'If-None-Match: "x", ' + tag], id="list"),
        pytest.param(lambda tag: [b"If-None-Match: *"], id="star"),
        pytest.param(
            lambda tag: [b"if-none-match: " + tag, b"Range: bytes=0-9"], id="before-range"
        ),
        pytest.param(lambda tag: [b"If-Modified-Since: " + LAST_MODIFIED.encode()], id="ims"),
    ],
)
def test_not_modified(site: Site, lines) -> None:  # type: ignore[no-untyped-def]
    response = site.exchange(raw_get(*lines(site.etag.encode())))
    assert response.status == 304, response
    assert response.body == b""
    assert response["ETag"] == site.etag


def test_if_none_match_other_tag_gets_content(site: Site) -> None:
    assert_full(site.exchange(raw_get(b'If-None-Match: "other"')))
    assert_single_range(
        site.exchange(raw_get(b'If-None-Match: "other"', b"Range: bytes=3-5")), 3, 6
    )


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param([b'If-Match: "mismatch"'], id="mismatch"),
        pytest.param([b'If-Match: "mismatch"', b"Range: bytes=0-9"], id="before-range"),
        pytest.param([b"If-Unmodified-Since: Mon, 01 Jan 2024 00:00:00 GMT"], id="ius"),
    ],
)
def test_precondition_failed_has_a_short_body(site: Site, lines: list[bytes]) -> None:
    with site.connect() as conn:
        conn.send(raw_get(*lines).replace(b"Connection: close\r\n", b""))
        response = conn.read_response()
        assert response.status == 412, response
        assert response.body == b"Precondition Failed\n"
        assert response["Content-Length"] == str(len(response.body))
        assert response["Content-Type"].startswith("text/plain")
        assert DATA[:16] not in response.body
        # The short body is the whole body: the connection is still in step.
        conn.send(raw_get(b"Range: bytes=0-3"))
        assert_single_range(conn.read_response(), 0, 4)


def test_if_match_strong_match_and_star_proceed(site: Site) -> None:
    tag = site.etag.encode()
    assert_single_range(site.exchange(raw_get(b"If-Match: " + tag, b"Range: bytes=0-4")), 0, 5)
    assert_full(site.exchange(raw_get(b"If-Match: *")))
    weak = site.exchange(raw_get(b"If-Match: W/" + tag))
    assert weak.status == 412  # If-Match uses the strong comparison


@pytest.mark.parametrize(
    "if_range",
    [
        pytest.param(b'If-Range: "mismatch"', id="other-etag"),
        pytest.param(b"If-Range: W/ETAG", id="weak-etag-never-matches"),
        pytest.param(b"If-Range: Wed, 03 Jan 2024 03:04:05 GMT", id="later-date"),
        pytest.param(b"If-Range: Mon, 01 Jan 2024 03:04:05 GMT", id="earlier-date"),
    ],
)
def test_if_range_mismatch_sends_everything(site: Site, if_range: bytes) -> None:
    if_range = if_range.replace(b"ETAG", site.etag.encode())
    assert_full(site.exchange(raw_get(if_range, b"Range: bytes=0-9")))


@pytest.mark.parametrize(
    "if_range",
    [
        pytest.param(b"If-Range: ETAG", id="etag"),
        pytest.param(b"If-Range: " + LAST_MODIFIED.encode(), id="date"),
    ],
)
def test_if_range_match_sends_the_range(site: Site, if_range: bytes) -> None:
    if_range = if_range.replace(b"ETAG", site.etag.encode())
    assert_single_range(site.exchange(raw_get(if_range, b"Range: bytes=10-19")), 10, 20)


# -- keep-alive sequences -------------------------------------------------------------


def test_pipelined_mixture_stays_in_step(site: Site) -> None:
    """Several requests in one write: each response is framed exactly."""
    tag = site.etag.encode()
    base = b"GET /files/data.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    requests = [
        (base + b"Range: bytes=0-1\r\n\r\n", lambda r: assert_single_range(r, 0, 2)),
        (base + b"If-None-Match: " + tag + b"\r\n\r\n", lambda r: r.status == 304 or r),
        (base + b"Range: bytes=10000-\r\n\r\n", lambda r: r.status == 416 or r),
        (base + b'If-Match: "no"\r\n\r\n', lambda r: r.status == 412 or r),
        (base + b"Range: bytes=1-2,500-501\r\n\r\n", lambda r: len(parse_multipart(r)) == 2 or r),
        (base + b"\r\n", assert_full),
    ]
    with site.connect() as conn:
        conn.send(b"".join(raw for raw, _ in requests))
        for _, check in requests:
            result = check(conn.read_response())
            assert result in (None, True), result
