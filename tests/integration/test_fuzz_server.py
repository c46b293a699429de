"""Hypothesis sends raw hostile requests to the real gunicorn (gevent) server.

Arbitrary method tokens, percent-encoded (and raw, and over-long) targets, the
conditional and Range headers with any text, and headers gunicorn itself acts on
(Transfer-Encoding, Content-Length, Expect, Host, X-Forwarded-*) go over raw sockets
with timeouts, one connection per example. Every answer must be a well-formed HTTP/1.x
response: no 5xx, no byte of a secret outside the data root or of a hidden file, and for
200/206 exactly the file's bytes. Afterwards the same worker is still serving, /healthz
answers 200, and the server log has no traceback.

What gunicorn answers itself, before the app sees anything (found by running it):
400 for a bad method, target, version or header, 414/431 past its size limits, 417 for
an unknown expectation, and 501 for an unknown transfer coding (RFC 9112 §6.1). The
only 5xx allowed is that 501. A ``SCRIPT_NAME`` header is never generated: see
``test_a_script_name_header_is_not_a_server_error``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tests.integration import rawhttp
from tests.integration.conftest import ServerFactory
from tests.integration.helpers import assert_healthy, pseudo_random, the_worker
from tests.support import hostile_tree
from tests.support.hostile_tree import build_hostile_tree
from tests.support.server import GunicornServer

pytestmark = pytest.mark.server

SECRET = b"OUTSIDE-THE-ROOT-" + pseudo_random(24, seed=91).hex().encode()
HIDDEN = b"HIDDEN-DOTFILE-" + pseudo_random(24, seed=92).hex().encode()
MTIME_NS = 1_700_000_000_987_654_321
FILES = {
    "a.txt": b"hello, world\n",
    "big.bin": pseudo_random(300_000, seed=93),  # more than one chunk and PRIMER
    "empty.txt": b"",
    "sub/b.txt": b"in a sub-folder\n",
    "ünï cödé.txt": "unicode ✓✓\n".encode(),
}
assert len({len(data) for data in FILES.values()}) == len(FILES)  # one ETag per file
#: gunicorn's request-line limit (its default; see test_range_abuse for all three).
LINE_LIMIT = 4094
#: What the app answers (README) and what gunicorn answers for what it refuses.
APP_STATUSES = {200, 204, 206, 301, 304, 308, 400, 403, 404, 405, 412, 416}
GUNICORN_STATUSES = {400, 414, 417, 431, 501}
KNOWN_CODINGS = {"chunked", "identity", "gzip", "deflate", "compress"}


def etag_of(data: bytes) -> str:
    return hostile_tree.etag_of(data, MTIME_NS)


@dataclass
class Site:
    server: GunicornServer
    worker: int
    by_etag: dict[str, bytes] = field(repr=False)


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, module_server_factory: ServerFactory
) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("fuzz-server")
    root = build_hostile_tree(base, FILES, secret=SECRET, hidden=HIDDEN, mtime_ns=MTIME_NS)
    server = module_server_factory(root)
    site = Site(server, the_worker(server), {etag_of(data): data for data in FILES.values()})
    yield site
    assert_server_unharmed(site)


#: A traceback or an error-level line as gunicorn writes them, anchored at a line start:
#: the log quotes what clients send ("Invalid HTTP method: 'Traceback'"), so a plain
#: substring test would be fooled (hypothesis did send that method).
LOG_PROBLEM = re.compile(
    r"^(Traceback \(most recent call last\):|\[[^]\n]*\] \[\d+\] \[(ERROR|CRITICAL)\])",
    re.MULTILINE,
)


def assert_server_unharmed(site: Site) -> None:
    assert_healthy(site.server)
    assert the_worker(site.server) == site.worker, "the worker was replaced"
    log = site.server.log()
    problem = LOG_PROBLEM.search(log)
    assert problem is None, log[max(0, problem.start() - 500) : problem.start() + 2500]


# -- strategies -----------------------------------------------------------------------

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
METHODS = {
    "usual": st.sampled_from(["GET"] * 4 + ["HEAD"]),
    "other": st.sampled_from(
        [
            *("POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "PROPFIND", "CONNECT"),
            *("get", "Head", "GE", "GET#", "G" * 21, "GE\tT"),
        ]
    ),
    "token": st.text(TOKEN_CHARS, min_size=1, max_size=25),
}
#: Mostly GET/HEAD, so that most requests get past gunicorn's method check.
methods = st.sampled_from(["usual"] * 4 + ["other", "token"]).flatmap(METHODS.__getitem__)

SEGMENTS = [
    *{part for name in FILES for part in name.split("/")},
    *("files", "healthz", "escape", "escape-dir", "inner.txt", "secret.txt", "to-hidden"),
    *("pipe", ".hidden", ".env", "..", ".", "", "...", "~"),
]
segments = st.one_of(
    st.sampled_from([segment.encode() for segment in SEGMENTS]),
    st.sampled_from([b"\x00", b"\n", b"\r\n", b"\\", b"\xc0\xae", b"\xff", b" ", b"%", b"?", b"#"]),
    st.binary(max_size=10),
    st.text(max_size=6).map(lambda text: text.encode("utf-8", "surrogatepass")),
)


@st.composite
def encoded(draw: st.DrawFn, raw: bytes) -> str:
    """``raw`` percent-encoded one of several ways; all but the last are valid targets."""
    how = draw(st.sampled_from(["quote", "quote", "every-byte", "lower-hex", "raw"]))
    if how == "quote":
        return quote(raw, safe="")
    if how == "every-byte":
        return "".join(f"%{byte:02X}" for byte in raw)
    if how == "lower-hex":
        return "".join(f"%{byte:02x}" for byte in raw)
    return raw.decode("latin-1")  # raw bytes: gunicorn refuses what is not printable ASCII


@st.composite
def targets(draw: st.DrawFn) -> str:
    shape = draw(st.sampled_from(["files", "files", "files", "files", "odd", "long"]))
    if shape == "odd":
        return draw(
            st.sampled_from(
                [
                    *("*", "http://127.0.0.1/files/a.txt", "HTTP://x/files/big.bin", "x:80"),
                    *("/files/a.txt#frag", "/files/%zz", "/files/%", "/files/%2", "//files/a.txt"),
                    *("/files/..%2f..%2fsecret.txt", "/files/%2e%2e/secret.txt", "/%66iles/a.txt"),
                    *("/files/escape", "/files/escape-dir/inner.txt", "/files/sub/to-hidden"),
                    *("/files/%2e%68idden", "/files/sub%2f..%2f..%2fsecret.txt", "/healthz?x"),
                ]
            )
        )
    if shape == "long":
        unit = draw(st.sampled_from(["a/", "%2e%2e/", "x", "%C3%A9", "../"]))
        return "/files/" + unit * draw(st.integers(50, 5000 // len(unit)))
    parts = draw(st.lists(segments, max_size=5))
    path = "/files/" + "/".join(draw(encoded(part)) for part in parts)
    if draw(st.booleans()):
        path += "?" + draw(st.sampled_from(["inline=1", "inline=true", "a=%ff", "", "x=?&y=#"]))
    return path


def _http_date(offset: int) -> str:
    return formatdate(MTIME_NS // 10**9 + offset, usegmt=True)


#: Field values as bytes: anything but CR and LF (which would start another line).
field_bytes = st.binary(max_size=60).map(
    lambda value: value.replace(b"\r", b"").replace(b"\n", b"")
)
printable = st.binary(max_size=60).map(lambda value: bytes(32 + b % 95 for b in value))
long_values = st.builds(
    lambda unit, count: unit * count,
    st.sampled_from([b"0-", b"1-2,", b"9", b",", b'"x",', b"W/", b"a"]),
    st.integers(100, 4500),
)
etags = st.sampled_from([*(etag_of(data) for data in FILES.values()), '"nope"', "*", 'W/""'])
dates = st.one_of(
    st.integers(-(10**6), 10**6).map(_http_date),
    st.sampled_from([_http_date(0), "Sun Nov  6 08:49:37 1994", "Thu, 31 Feb 2024 00:00:00 GMT"]),
)
range_values = st.one_of(
    st.lists(
        st.one_of(
            st.builds(lambda a, n: f"{a}-{a + n}", st.integers(0, 400_000), st.integers(0, 300)),
            st.integers(0, 400_000).map(lambda a: f"{a}-"),
            st.integers(0, 400_000).map(lambda n: f"-{n}"),
        ),
        min_size=1,
        max_size=20,
    ).map(lambda specs: "bytes=" + ",".join(specs)),
    st.sampled_from(
        ["bytes=0-", "bytes=-0", "items=0-1", "bytes=5-1", "bytes=" + "9" * 5000 + "-"]
    ),
)
STRUCTURED = {
    "Range": range_values,
    "If-Range": st.one_of(etags, dates),
    "If-Match": etags,
    "If-None-Match": st.one_of(etags, st.lists(etags, max_size=4).map(", ".join)),
    "If-Modified-Since": dates,
    "If-Unmodified-Since": dates,
}
#: Headers gunicorn itself interprets, with values that make it refuse or accept.
GUNICORN_FIELDS = {
    "Transfer-Encoding": [
        "chunked",
        "gzip",
        "identity",
        "chunked, chunked",
        "foo",
        "gzip, chunked",
    ],
    "Content-Length": ["0", "5", "-1", "abc", "1e3", " 3", "99999999999999999999"],
    "Expect": ["100-continue", "foo", "100-Continue"],
    "Host": ["", "a b", "127.0.0.1:99999", "[::1]"],
    "X-Forwarded-Proto": ["https", "http", "gopher"],
    "X-Forwarded-Ssl": ["on", "off"],
    "X-Forwarded-For": ["1.2.3.4", "::1, x"],
    "Forwarded": ["for=1.2.3.4;proto=https", "garbage"],
    "Connection": ["keep-alive", "upgrade", "close, TE"],
    "Upgrade": ["h2c", "websocket"],
    "Accept-Encoding": ["gzip", "*;q=0"],
    "Content-Type": ["text/plain", "multipart/form-data; boundary=x"],
}
SCRIPT_NAME = re.compile(r"script_name", re.IGNORECASE)


@st.composite
def header_lines(draw: st.DrawFn) -> list[bytes]:
    lines: list[bytes] = []
    for name, structured in STRUCTURED.items():
        # Mostly absent or well-formed: any control byte is gunicorn's 400, before the app.
        kind = draw(st.sampled_from(["absent"] * 5 + ["structured"] * 4 + ["bytes", "long"]))
        if kind == "structured":
            lines.append(name.encode() + b": " + draw(structured).encode("latin-1"))
        elif kind == "bytes":
            lines.append(name.encode() + b": " + draw(field_bytes))
        elif kind == "long":
            lines.append(name.encode() + b": " + draw(long_values))
    for name in draw(st.lists(st.sampled_from(sorted(GUNICORN_FIELDS)), max_size=2, unique=True)):
        lines.append(f"{name}: {draw(st.sampled_from(GUNICORN_FIELDS[name]))}".encode())
    # Any other field name (underscores included: gunicorn drops those, but for one).
    names = st.text(TOKEN_CHARS, min_size=1, max_size=20).filter(
        lambda name: not SCRIPT_NAME.fullmatch(name)
    )
    for name in draw(st.lists(names, max_size=3)):
        lines.append(name.encode() + b": " + draw(st.one_of(printable, field_bytes)))
    return draw(st.permutations(lines))


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    lines: tuple[bytes, ...]

    @property
    def raw(self) -> bytes:
        head = [f"{self.method} {self.target} {self.version}".encode("latin-1")]
        head += [b"Host: 127.0.0.1", *self.lines, b"Connection: close"]
        if self.version == "HTTP/1.0" or any(
            line.lower().startswith(b"host:") for line in self.lines
        ):
            head.remove(b"Host: 127.0.0.1")
        return b"\r\n".join(head) + b"\r\n\r\n"

    def unknown_coding(self) -> bool:
        for line in self.lines:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"transfer-encoding":
                codings = {c.strip(b" \t").lower().decode("latin-1") for c in value.split(b",")}
                if codings - KNOWN_CODINGS:
                    return True
        return False


@st.composite
def requests(draw: st.DrawFn) -> Request:
    target = draw(targets())
    # Not HTTP/1.2: gunicorn serves it, echoing "HTTP/1.2 200 OK" (RFC 9110 §2.5 wants
    # HTTP/1.1, the highest minor version it implements), which rawhttp refuses to parse.
    versions = ["HTTP/1.1"] * 12 + ["HTTP/1.0"] * 3 + ["HTTP/2.0", "HTTP/0.9", "http/1.1"]
    version = draw(st.sampled_from(versions))
    lines = draw(header_lines())
    request = Request(draw(methods), target, version, tuple(lines))
    if len(request.raw.split(b"\r\n", 1)[0]) > LINE_LIMIT:
        # gunicorn stops reading at an over-long request line; keep the whole request in
        # its first read, or the unread rest turns its close into a reset that can
        # destroy the 414 before the client reads it.
        request = Request(request.method, target, version, ())
    return request


# -- the property ---------------------------------------------------------------------


def send(site: Site, request: Request) -> rawhttp.RawResponse:
    """One request on a fresh connection; interim 1xx answers are skipped."""
    with rawhttp.Connection(site.server.host, site.server.port, timeout=5.0) as conn:
        conn.send(request.raw)
        for _ in range(3):
            response = conn.read_response(request.method)
            if response.status >= 200:
                return response
        raise AssertionError("more than two interim responses")


def check(site: Site, request: Request, response: rawhttp.RawResponse) -> None:
    status = response.status
    if status == 501:
        assert request.unknown_coding(), "a 501 for anything but an unknown transfer coding"
    else:
        assert status < 500, response.head
    assert status in APP_STATUSES | GUNICORN_STATUSES, response.head
    for marker in (SECRET, HIDDEN):
        assert marker not in response.body
        assert marker not in response.head
    etag = response.get("ETag")
    if status not in (200, 206) or etag is None or request.method == "HEAD":
        return
    data = site.by_etag[etag]
    if status == 200:
        assert response.body == data
    elif not response["Content-Type"].startswith("multipart/byteranges"):
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", response["Content-Range"])
        assert match, response.head
        first, last, total = map(int, match.groups())
        assert total == len(data)
        assert response.body == data[first : last + 1]
    else:
        boundary = response["Content-Type"].split("boundary=", 1)[1].encode()
        pieces = response.body.split(b"--" + boundary)
        assert pieces[0] == b""
        assert pieces[-1] == b"--\r\n"
        for piece in pieces[1:-1]:
            head, _, rest = piece.partition(b"\r\n\r\n")
            match = re.search(rb"Content-Range: bytes (\d+)-(\d+)/(\d+)", head)
            assert match, head
            first, last, total = map(int, match.groups())
            assert total == len(data)
            assert rest.removesuffix(b"\r\n") == data[first : last + 1]


def _request(target: str, *lines: bytes, method: str = "GET") -> Request:
    return Request(method, target, "HTTP/1.1", lines)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests())
@example(request=_request("/files/../secret.txt"))
@example(request=_request("/files/%2e%2e/secret.txt"))
@example(request=_request("/files/escape"))
@example(request=_request("/files/escape-dir/inner.txt"))
@example(request=_request("/files/%2ehidden"))
@example(request=_request("/files/sub/to-hidden"))
@example(request=_request("/files/pipe"))
@example(request=_request("/files/big.bin", b"Range: bytes=0-0,-1,100-200,150-", method="GET"))
@example(request=_request("/files/a.txt", b"Transfer-Encoding: foo"))
@example(request=_request("/files/a.txt", b"Expect: 100-continue"))
@example(request=_request("/files/a.txt", b"Range: " + b"0-," * 2000))
def test_raw_hostile_requests_are_answered_safely(site: Site, request: Request) -> None:
    response = send(site, request)
    event(f"status {response.status}")
    check(site, request, response)


def test_the_worker_survived_the_fuzzing(site: Site) -> None:
    assert_server_unharmed(site)


def test_a_script_name_header_is_not_a_server_error(site: Site) -> None:
    response = send(site, _request("/files/a.txt", b"SCRIPT_NAME: /elsewhere"))
    assert response.status < 500, response.head
