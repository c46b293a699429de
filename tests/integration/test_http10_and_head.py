"""HTTP/1.0 framing (exact Content-Length, never chunked, then close) and HEAD parity."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration import rawhttp
from tests.integration.conftest import ServerFactory
from tests.integration.helpers import MiB, assert_healthy, etag_of, pseudo_random, sha256
from tests.support.server import GunicornServer

pytestmark = pytest.mark.server

SIZE = 3 * MiB + 17  # larger than a chunk, so the body is streamed in several writes
DATA = pseudo_random(SIZE, seed=2)


@dataclass
class Site:
    server: GunicornServer
    root: Path
    etag: str

    def connect(self) -> rawhttp.Connection:
        return rawhttp.Connection(self.server.host, self.server.port)


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, module_server_factory: ServerFactory
) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("http10") / "data"
    (root / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(DATA)
    (root / "sub" / "small.txt").write_bytes(b"small\n")
    (root / "empty.bin").write_bytes(b"")
    server = module_server_factory(root)
    yield Site(server, root, etag_of(root / "big.bin"))
    assert_healthy(server)


# -- HTTP/1.0 --------------------------------------------------------------------------


def http10(site: Site, *lines: bytes, target: bytes = b"/files/big.bin", host: bool = False):  # type: ignore[no-untyped-def]
    """Send an HTTP/1.0 request; return the response and whether the server then closed."""
    raw = b"GET " + target + b" HTTP/1.0\r\n"
    if host:
        raw += b"Host: 127.0.0.1\r\n"
    raw += b"".join(line + b"\r\n" for line in lines) + b"\r\n"
    with site.connect() as conn:
        conn.send(raw)
        response = conn.read_response()
        closed = conn.closed_by_peer(wait=3.0)
    return response, closed


def assert_http10_framing(response: rawhttp.RawResponse, closed: bool) -> None:
    assert response.framing == "length", response
    assert response.get("Transfer-Encoding") is None
    assert int(response["Content-Length"]) == len(response.body)
    assert closed, "the server kept an HTTP/1.0 connection open"
    assert (response.get("Connection") or "close").lower() == "close"


@pytest.mark.parametrize("host", [False, True], ids=["no-host", "host"])
def test_http10_full_body(site: Site, host: bool) -> None:
    response, closed = http10(site, host=host)
    assert response.status == 200, response
    assert_http10_framing(response, closed)
    assert response["Content-Length"] == str(SIZE)
    assert sha256(response.body) == sha256(DATA)


@pytest.mark.parametrize(
    ("line", "start", "stop"),
    [
        (b"Range: bytes=1-", 1, SIZE),  # axel's old probe
        (b"Range: bytes=0-", 0, SIZE),
        (b"Range: bytes=100-1048675", 100, 1048676),
        (b"Range: bytes=-5", SIZE - 5, SIZE),
    ],
)
def test_http10_single_range(site: Site, line: bytes, start: int, stop: int) -> None:
    response, closed = http10(site, line)
    assert response.status == 206, response
    assert_http10_framing(response, closed)
    assert response["Content-Range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert sha256(response.body) == sha256(DATA[start:stop])


def test_http10_multipart_has_exact_length(site: Site) -> None:
    response, closed = http10(site, b"Range: bytes=0-9,2097152-2097161")
    assert response.status == 206, response
    assert_http10_framing(response, closed)
    assert response["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert DATA[0:10] in response.body
    assert DATA[2097152:2097162] in response.body
    assert response.body.endswith(b"--\r\n")


@pytest.mark.parametrize(
    ("target", "lines", "status", "body"),
    [
        (b"/files/big.bin", [b"Range: bytes=99999999-"], 416, b"Range Not Satisfiable\n"),
        (b"/files/big.bin", [b'If-Match: "nope"'], 412, b"Precondition Failed\n"),
        (b"/files/missing.bin", [], 404, b"Not Found\n"),
        (b"/files/empty.bin", [b"Range: bytes=0-"], 200, b""),
        (b"/files/sub/small.txt", [], 200, b"small\n"),
    ],
)
def test_http10_short_answers(
    site: Site, target: bytes, lines: list[bytes], status: int, body: bytes
) -> None:
    response, closed = http10(site, *lines, target=target)
    assert response.status == status, response
    assert_http10_framing(response, closed)
    assert response.body == body


def test_http10_listing_and_not_modified(site: Site) -> None:
    listing, closed = http10(site, target=b"/files/sub/")
    assert listing.status == 200, listing
    assert_http10_framing(listing, closed)
    assert b'"small.txt"' in listing.body

    not_modified, closed = http10(site, b"If-None-Match: " + site.etag.encode())
    assert not_modified.status == 304, not_modified
    assert not_modified.body == b""
    assert closed


# -- HEAD --------------------------------------------------------------------------------

HEAD_CASES = [
    pytest.param("/files/big.bin", [], id="full"),
    pytest.param("/files/big.bin", ["Range: bytes=5-104"], id="single-range"),
    pytest.param("/files/big.bin", ["Range: bytes=-1"], id="suffix"),
    pytest.param("/files/big.bin", ["Range: bytes=0-9,1000-1009"], id="multipart"),
    pytest.param("/files/big.bin", ["Range: bytes=99999999-"], id="416"),
    pytest.param("/files/big.bin", ["Range: items=0-1"], id="unknown-unit"),
    pytest.param("/files/big.bin", ['If-Match: "nope"'], id="412"),
    pytest.param("/files/big.bin", ["If-None-Match: ETAG"], id="304"),
    pytest.param("/files/big.bin", ['If-Range: "old"', "Range: bytes=0-9"], id="if-range-false"),
    pytest.param("/files/big.bin?inline=1", [], id="inline"),
    pytest.param("/files/empty.bin", [], id="empty-file"),
    pytest.param("/files/missing.bin", [], id="404"),
    pytest.param("/files/sub", [], id="301"),
    pytest.param("/files/sub/", [], id="listing"),
    pytest.param("/files/%2e%2e/x", [], id="400"),
]


def _normalise(response: rawhttp.RawResponse) -> list[tuple[str, str]]:
    # The digest is hashed in the background and may become known between the two.
    headers = response.header_set("Date", "Repr-Digest")
    # A multipart boundary and the index page's script nonce are fresh per response (of
    # the same length): compare their shape only.
    return [
        (
            name,
            re.sub(
                r"'nonce-[\w-]{22}'",
                "'nonce-N'",
                re.sub(r"boundary=[0-9a-f]{32}$", "boundary=B", value),
            ),
        )
        for name, value in headers
    ]


@pytest.mark.parametrize(("target", "headers"), HEAD_CASES)
def test_head_matches_get_and_sends_no_body(site: Site, target: str, headers: list[str]) -> None:
    lines = [line.replace("ETAG", site.etag).encode() for line in headers]
    head = rawhttp.build_request("HEAD", target, lines)
    get = rawhttp.build_request("GET", target, lines)
    with site.connect() as conn:
        # Pipelined: if HEAD leaked a single body byte, the GET's status line would break.
        conn.send(head + get)
        head_response = conn.read_response("HEAD")
        get_response = conn.read_response("GET")
        assert head_response.status == get_response.status
        assert _normalise(head_response) == _normalise(get_response)
        assert head_response.get("Content-Length") == get_response.get("Content-Length")
        if get_response.get("Content-Length") is not None:
            assert int(get_response["Content-Length"]) == len(get_response.body)
        # Nothing else is pending after the GET body either.
        conn.send(rawhttp.build_request("HEAD", "/files/sub/small.txt"))
        tail = conn.read_response("HEAD")
        assert tail.status == 200
        assert tail["Content-Length"] == "6"
        conn.send(rawhttp.build_request("GET", "/files/sub/small.txt", ["Range: bytes=1-2"]))
        last = conn.read_response()
        assert (last.status, last.body) == (206, b"ma")
