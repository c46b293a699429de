"""DL_OFFLOAD=x-accel behind a real nginx, rendered from deploy/nginx/'s template.

Every request of the table goes both to the service without offload and through nginx
to the service with offload; status, key header fields and the body's SHA-256 must agree
(multipart bodies part by part: the boundary is nginx's). The table also says which
answers nginx delivers (the app's access log then shows an empty body) and which the
app still streams itself. Both run with CORS on and each request comes from a page's
origin (the allowed one unless the case says otherwise): the CORS fields must reach the
client through nginx as the service alone sends them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from deploy.render import NGINX_OFFLOAD_TEMPLATE
from service.sansio.validators import format_http_date
from tests.integration import rawhttp
from tests.integration.helpers import MiB, etag_of, sha256, write_big_file
from tests.support.nginx import NginxServer
from tests.support.server import GunicornServer
from tests.support.tools import require_tool

pytestmark = pytest.mark.server

SIZE = 4 * MiB + 123
MTIME = 1_704_164_645  # Tue, 02 Jan 2024 03:04:05 GMT: long before Date, a strong validator
LM = format_http_date(MTIME)
KEY_FIELDS = (
    "content-type",
    "content-length",
    "content-range",
    "etag",
    "last-modified",
    "accept-ranges",
    "cache-control",
    "content-disposition",
    "x-content-type-options",
    "retry-after",
    "vary",
    "allow",
    "access-control-allow-origin",
    "access-control-expose-headers",
    "repr-digest",
    "digest",
    "link",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
)
APP_ORIGIN = "http://app.example.test:8080"
# Mirrors too: their Link fields must pass nginx as the app wrote them.
CORS = {"DL_CORS_ORIGINS": APP_ORIGIN, "DL_MIRRORS": "http://mirror.example.test/files/"}


@dataclass
class Pair:
    direct: GunicornServer
    app: GunicornServer
    nginx: NginxServer
    root: Path
    digest: str


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("offload-data")
    digest = write_big_file(root / "big.bin", SIZE, seed=21)
    (root / "ünï cödé ?#%.txt").write_bytes(b"odd name\n" * 100)
    (root / ".hidden").write_bytes(b"secret")
    (root / "empty.bin").write_bytes(b"")
    for name in ("big.bin", "ünï cödé ?#%.txt"):
        os.utime(root / name, ns=(MTIME * 10**9, MTIME * 10**9 + 123_456_789))
    logs = tmp_path_factory.mktemp("offload-logs")
    servers: list[GunicornServer | NginxServer] = []
    try:
        direct = GunicornServer(root, logs / "direct.log", CORS).start()
        servers.append(direct)
        app = GunicornServer(root, logs / "app.log", {"DL_OFFLOAD": "x-accel", **CORS}).start()
        servers.append(app)
        nginx = NginxServer(root, f"127.0.0.1:{app.port}", logs / "nginx").start()
        servers.append(nginx)
        for server in (direct, app):  # digests known to both: the same fields every time
            for name in ("big.bin", "ünï cödé ?#%.txt"):
                wait_for_metalink(server, "/files/" + quote(name))
        yield Pair(direct, app, nginx, root, digest)
    finally:
        for server in reversed(servers):
            server.stop()


def wait_for_metalink(server: GunicornServer, target: str, timeout: float = 30.0) -> None:
    """Until ``server`` links the file's Metalink: its digest and piece hashes known. A
    HEAD, which is never offloaded: a GET to the app alone gets the X-Accel answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = [("Connection", "close")]
        response = rawhttp.get(server.host, server.port, target, fields, method="HEAD")
        if any("rel=describedby" in link for link in response.get_all("Link")):
            return
        time.sleep(0.05)
    pytest.fail(f"{target}: no Metalink link within {timeout}s")


@dataclass(frozen=True)
class Answer:
    status: int
    fields: tuple[tuple[str, str], ...]
    body: str  # SHA-256, or the parts of a multipart body
    request_id: str


def ask(host: str, port: int, method: str, target: str, headers: list[tuple[str, str]]) -> Answer:
    request_id = uuid.uuid4().hex
    if not any(name == "Origin" for name, _ in headers):
        headers = [*headers, ("Origin", APP_ORIGIN)]
    headers = [(name, value) for name, value in headers if (name, value) != ("Origin", "")]
    response = rawhttp.get(
        host,
        port,
        target,
        [*headers, ("X-Request-Id", request_id), ("Connection", "close")],
        method=method,
    )
    content_type = response.get("Content-Type") or ""
    multipart = content_type.startswith("multipart/byteranges")
    skip = {"content-type", "content-length"} if multipart else set()
    fields = tuple(
        (name, value)
        for name, value in response.header_set()
        if name in KEY_FIELDS and name not in skip
    )
    body = parts_digest(response.body, content_type) if multipart else sha256(response.body)
    return Answer(response.status, fields, body, request_id)


def parts_digest(body: bytes, content_type: str) -> str:
    """The parts of a multipart/byteranges body: their header fields and data digests."""
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    parts = []
    for chunk in body.split(b"--" + boundary)[1:-1]:
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        fields = sorted(line.lower() for line in head.split(b"\r\n"))
        parts.append((fields, sha256(data.removesuffix(b"\r\n"))))
    assert body.split(b"--" + boundary)[-1].startswith(b"--"), "no closing delimiter"
    return repr(parts)


def app_bytes(server: GunicornServer, request_id: str) -> int:
    """Body bytes the app itself sent for a request (its JSON access log line)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in server.log().splitlines():
            if request_id in line and line.startswith("{"):
                return int(json.loads(line)["bytes"])
        time.sleep(0.05)
    raise AssertionError(f"no access log line for {request_id}")


def _etag(pair: Pair) -> str:
    return etag_of(pair.root / "big.bin")


STALE = '"1-2"'
BIG = "/files/big.bin"
#: id, method, target, headers (callables get the current ETag), offloaded through nginx
CASES = [
    ("full", "GET", BIG, [], True),
    ("single", "GET", BIG, [("Range", "bytes=0-99")], True),
    ("one-byte-probe", "GET", BIG, [("Range", "bytes=0-1")], True),
    ("suffix", "GET", BIG, [("Range", "bytes=-500")], True),
    ("suffix-longer-than-file", "GET", BIG, [("Range", f"bytes=-{SIZE + 10}")], True),
    ("open-ended", "GET", BIG, [("Range", "bytes=1000000-")], True),
    ("last-pos-clipped", "GET", BIG, [("Range", f"bytes=100-{SIZE * 2}")], True),
    ("multi-range", "GET", BIG, [("Range", "bytes=0-99,2000-2099,-100")], True),
    ("multi-range-partly-unsatisfiable", "GET", BIG, [("Range", f"bytes=0-9,{SIZE}-")], True),
    ("multi-range-coalesced-by-app", "GET", BIG, [("Range", "bytes=0-9,20-29")], False),
    ("multi-range-out-of-order", "GET", BIG, [("Range", "bytes=5000-5099,0-99")], True),
    ("overlapping-ranges", "GET", BIG, [("Range", "bytes=0-999,500-1499")], False),
    ("416", "GET", BIG, [("Range", f"bytes={SIZE}-")], False),
    ("416-zero-suffix", "GET", BIG, [("Range", "bytes=-0")], False),
    ("invalid-range-ignored", "GET", BIG, [("Range", "bytes=abc")], True),
    ("empty-element", "GET", BIG, [("Range", "bytes=0-9,,20-29")], False),
    ("unknown-unit", "GET", BIG, [("Range", "items=0-9")], True),
    ("spaces-around-equals", "GET", BIG, [("Range", "bytes = 0-9")], False),
    ("if-none-match-304", "GET", BIG, [("If-None-Match", _etag)], False),
    ("if-none-match-star-304", "GET", BIG, [("If-None-Match", "*")], False),
    ("if-none-match-other", "GET", BIG, [("If-None-Match", STALE)], True),
    (
        "if-none-match-304-beats-range",
        "GET",
        BIG,
        [("If-None-Match", _etag), ("Range", "bytes=0-9")],
        False,
    ),
    ("if-match-412", "GET", BIG, [("If-Match", STALE)], False),
    ("if-match-ok-streamed-by-app", "GET", BIG, [("If-Match", _etag)], False),
    ("if-match-star", "GET", BIG, [("If-Match", "*"), ("Range", "bytes=0-9")], True),
    (
        "if-unmodified-since-412",
        "GET",
        BIG,
        [("If-Unmodified-Since", format_http_date(MTIME - 1))],
        False,
    ),
    ("if-unmodified-since-ok", "GET", BIG, [("If-Unmodified-Since", LM)], False),
    ("if-unmodified-since-invalid", "GET", BIG, [("If-Unmodified-Since", "yesterday")], False),
    (
        "if-match-beats-ius",
        "GET",
        BIG,
        [("If-Match", _etag), ("If-Unmodified-Since", format_http_date(MTIME - 1))],
        False,
    ),
    ("if-modified-since-equal-304", "GET", BIG, [("If-Modified-Since", LM)], False),
    (
        "if-modified-since-later-304",
        "GET",
        BIG,
        [("If-Modified-Since", format_http_date(MTIME + 60))],
        False,
    ),
    (
        "if-modified-since-earlier",
        "GET",
        BIG,
        [("If-Modified-Since", format_http_date(MTIME - 60))],
        True,
    ),
    ("if-range-match-206", "GET", BIG, [("If-Range", _etag), ("Range", "bytes=10-19")], True),
    ("if-range-stale-200", "GET", BIG, [("If-Range", STALE), ("Range", "bytes=10-19")], True),
    (
        "if-range-weak-200",
        "GET",
        BIG,
        [("If-Range", lambda p: "W/" + _etag(p)), ("Range", "bytes=10-19")],
        True,
    ),
    ("if-range-date-206", "GET", BIG, [("If-Range", LM), ("Range", "bytes=10-19")], True),
    (
        "if-range-other-date-200",
        "GET",
        BIG,
        [("If-Range", format_http_date(MTIME + 1)), ("Range", "bytes=10-19")],
        True,
    ),
    ("want-digest", "GET", BIG, [("Want-Digest", "SHA-256")], True),
    ("head", "HEAD", BIG, [], False),
    ("head-range", "HEAD", BIG, [("Range", "bytes=0-99")], False),
    ("empty-file", "GET", "/files/empty.bin", [("Range", "bytes=0-9")], False),
    (
        "odd-name",
        "GET",
        "/files/%C3%BCn%C3%AF%20c%C3%B6d%C3%A9%20%3F%23%25.txt",
        [
            ("Range", "bytes=9-"),
        ],
        True,
    ),
    ("missing-404", "GET", "/files/nope.bin", [], False),
    ("hidden-404", "GET", "/files/.hidden", [], False),
    ("traversal-400", "GET", "/files/../big.bin", [], False),
    ("encoded-traversal-400", "GET", "/files/%2e%2e/big.bin", [], False),
    ("folder-301", "GET", "/files", [], False),
    ("foreign-origin", "GET", BIG, [("Origin", "http://elsewhere.test")], True),
    ("foreign-origin-range", "GET", BIG, [("Origin", "null"), ("Range", "bytes=5-9")], True),
    (
        "preflight",
        "OPTIONS",
        BIG,
        [("Access-Control-Request-Method", "GET"), ("Access-Control-Request-Headers", "range")],
        False,
    ),
    ("plain-options", "OPTIONS", BIG, [("Origin", "")], False),
]


@pytest.mark.parametrize(
    ("method", "target", "headers", "offloaded"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_nginx_offload_answers_as_the_service_alone(
    pair: Pair, method: str, target: str, headers: list, offloaded: bool
) -> None:
    fields = [(name, value(pair) if callable(value) else value) for name, value in headers]
    direct = ask(pair.direct.host, pair.direct.port, method, target, fields)
    through = ask(pair.nginx.host, pair.nginx.port, method, target, fields)
    assert (through.status, through.fields, through.body) == (
        direct.status,
        direct.fields,
        direct.body,
    )
    origin = dict(fields).get("Origin", APP_ORIGIN)
    allowed = dict(through.fields).get("access-control-allow-origin")
    expected = APP_ORIGIN if origin == APP_ORIGIN else None
    if method == "OPTIONS" and "Access-Control-Request-Method" not in dict(fields):
        expected = None  # a plain OPTIONS: no CORS fields
    assert allowed == expected, through.fields
    if through.status in (200, 206, 304) and target != "/files/empty.bin":
        links = [value for name, value in through.fields if name == "link"]
        assert [link.partition(">;")[2] for link in links] == [
            ' rel=describedby; type="application/metalink4+xml"',
            " rel=duplicate; pri=2",
        ]  # through nginx as from the app alone: the Metalink, then the mirror
        assert "repr-digest" in dict(through.fields)
    if through.status in (200, 206) and method == "GET" and target != "/files/empty.bin":
        sent_by_app = app_bytes(pair.app, through.request_id)
        assert (sent_by_app == 0) is offloaded, f"the app sent {sent_by_app} bytes itself"


def test_a_full_download_through_nginx_is_byte_exact(pair: Pair) -> None:
    response = rawhttp.get(pair.nginx.host, pair.nginx.port, BIG, [("Connection", "close")])
    assert response.status == 200
    assert sha256(response.body) == pair.digest
    assert response["ETag"] == etag_of(pair.root / "big.bin")


def test_the_internal_locations_are_not_reachable_from_outside(pair: Pair) -> None:
    """Directly, or by a path that nginx normalises into them: always nginx's 404."""
    for target in (
        "/_offload/full/big.bin",
        "/_offload/ranges/big.bin",
        "/_offload/done",
        "/_offload/",
        "/files/../_offload/full/big.bin",
        "/%5Foffload/full/big.bin",
        "//_offload/full/big.bin",
    ):
        response = rawhttp.get(
            pair.nginx.host,
            pair.nginx.port,
            target,
            [("Connection", "close"), ("X-Offload-Done", "1")],
        )
        assert response.status == 404, (target, response.status)
        assert pair.digest not in sha256(response.body)
        assert len(response.body) < 1000


def test_curl_resumes_through_nginx_byte_exact(pair: Pair, tmp_path: Path) -> None:
    curl = require_tool("curl")
    partial = tmp_path / "big.bin"
    partial.write_bytes((pair.root / "big.bin").read_bytes()[: 1 * MiB + 7])
    subprocess.run(
        [curl, "-sS", "-f", "-C", "-", "-o", str(partial), pair.nginx.url + BIG],
        check=True,
        timeout=60,
    )
    assert hashlib.sha256(partial.read_bytes()).hexdigest() == pair.digest


def test_a_changed_file_is_described_by_the_app_and_sent_whole_by_nginx(pair: Pair) -> None:
    """Replacing a file (rename over it) between two requests: the next answer carries the
    new validators and the new bytes; the old ETag no longer matches If-Range."""
    path = pair.root / "swap.bin"
    path.write_bytes(b"old" * 1000)
    old = rawhttp.get(
        pair.nginx.host, pair.nginx.port, "/files/swap.bin", [("Connection", "close")]
    )
    new_path = pair.root / "swap.tmp"
    new_path.write_bytes(b"new!" * 1000)
    os.utime(new_path, ns=(MTIME * 10**9, MTIME * 10**9 + 5))
    new_path.replace(path)
    resumed = rawhttp.get(
        pair.nginx.host,
        pair.nginx.port,
        "/files/swap.bin",
        [("Range", "bytes=100-"), ("If-Range", old["ETag"]), ("Connection", "close")],
    )
    assert resumed.status == 200
    assert resumed.body == b"new!" * 1000
    assert resumed["ETag"] == etag_of(path) != old["ETag"]


def test_nginx_config_keeps_one_template_for_deployment_and_tests() -> None:
    template = NGINX_OFFLOAD_TEMPLATE.read_text()
    placeholders = set(re.findall(r"@(\w+)@", template))
    assert placeholders == {"listen", "upstream", "data_root"}
