"""Traversal, odd files and bad input against the real server; and folder listings."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.integration import rawhttp
from tests.integration.conftest import ServerFactory
from tests.integration.helpers import assert_healthy, etag_of, pseudo_random, the_worker
from tests.support.server import GunicornServer

pytestmark = pytest.mark.server

SECRET = b"TOP-SECRET-" + pseudo_random(64, seed=12).hex().encode() + b"\n"
DATA = pseudo_random(4096, seed=13)
UNICODE_NAME = "ünïcödé 文件.txt"
UNICODE_DIR = "dössier 目录"
# Names a filesystem allows but a URL path handles awkwardly. The last is not UTF-8.
ODD_NAMES = [
    "back\\slash.txt",
    "new\nline.txt",
    "cr\rhere.txt",
    "tab\there.txt",
    'quo"te.txt',
    "100%.txt",
    "semi;colon,comma.txt",
    "emoji 😀.txt",
    os.fsdecode(b"\xff-not-utf8.bin"),
]


@dataclass
class Tree:
    base: Path
    root: Path
    secret: Path
    has_device: bool


@dataclass
class Site:
    server: GunicornServer
    tree: Tree

    def get(
        self, target: str | bytes, headers: rawhttp.Headers | None = None, *, method: str = "GET"
    ) -> rawhttp.RawResponse:
        raw = rawhttp.build_request(method, target, [*(headers or []), ("Connection", "close")])
        return rawhttp.exchange(self.server.host, self.server.port, raw, method=method)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    base = tmp_path_factory.mktemp("paths")
    secret = base / "secret.txt"
    secret.write_bytes(SECRET)
    (base / "outside-dir").mkdir()
    (base / "outside-dir" / "inner.txt").write_bytes(SECRET)
    root = base / "data"
    root.mkdir()
    (root / "data.bin").write_bytes(DATA)
    (root / "sub" / "nested").mkdir(parents=True)
    (root / "sub" / "with space.txt").write_bytes(b"space\n")
    (root / "sub" / UNICODE_NAME).write_bytes("unicode ✓\n".encode())
    (root / "sub" / ".hidden-in-sub").write_bytes(SECRET)
    (root / "sub" / "nested" / "deep.txt").write_bytes(b"deep\n")
    (root / "my dir").mkdir()
    (root / UNICODE_DIR).mkdir()
    (root / ".hidden").write_bytes(b"hidden file\n")
    (root / ".hiddendir").mkdir()
    (root / ".hiddendir" / "inside.txt").write_bytes(b"inside hidden dir\n")
    (root / "link-out").symlink_to(secret)
    (root / "link-out-dir").symlink_to(base / "outside-dir")
    (root / "link-in").symlink_to("data.bin")
    (root / "link-in-dir").symlink_to("sub")
    (root / "link-hidden").symlink_to(".hidden")
    (root / "zero-link").symlink_to("/dev/zero")
    (root / "loop").symlink_to("loop")
    (root / "dangling").symlink_to("does-not-exist")
    (root / "odd").mkdir()
    for name in ODD_NAMES:
        (root / "odd" / name).write_bytes(name.encode("utf-8", "surrogateescape") + b"\n")
    os.mkfifo(root / "fifo")
    (root / "fifo-link").symlink_to("fifo")
    try:
        os.mknod(root / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        has_device = True
    except PermissionError:
        has_device = False
    return Tree(base, root, secret, has_device)


@pytest.fixture(scope="module")
def strict(tree: Tree, module_server_factory: ServerFactory) -> Iterator[Site]:
    server = module_server_factory(tree.root)
    yield Site(server, tree)
    assert_healthy(server)


@pytest.fixture(scope="module")
def permissive(tree: Tree, module_server_factory: ServerFactory) -> Iterator[Site]:
    server = module_server_factory(tree.root, DL_ALLOW_OUTSIDE_SYMLINKS="1", DL_SERVE_HIDDEN="1")
    yield Site(server, tree)
    assert_healthy(server)


@pytest.fixture(params=["strict", "permissive"])
def any_site(request: pytest.FixtureRequest, delivery: dict[str, str]) -> Site:
    # ``delivery`` is named so the servers' parametrisation is known before the lookup.
    return request.getfixturevalue(request.param)


def assert_refused(response: rawhttp.RawResponse) -> None:
    """4xx, a short text body, and nothing from outside the root."""
    assert 400 <= response.status < 500, response
    assert SECRET not in response.body
    assert b"TOP-SECRET" not in response.body
    assert b"root:" not in response.body
    assert len(response.body) < 200


# -- traversal and bad input ------------------------------------------------------------

TRAVERSALS = [
    "/files/../secret.txt",
    "/files/sub/../../secret.txt",
    "/files/../../../../../../etc/passwd",
    "/files/%2e%2e/secret.txt",
    "/files/%2E%2E/secret.txt",
    "/files/.%2e/secret.txt",
    "/files/%2e%2e%2fsecret.txt",
    "/files/%2E%2E%2Fsecret.txt",
    "/files/sub/%2E%2E%2F%2E%2E%2Fsecret.txt",
    "/files/sub%2f..%2f..%2fsecret.txt",
    "/files/%252e%252e/secret.txt",
    "/files/%252e%252e%252fsecret.txt",
    "/files/%c0%ae%c0%ae/secret.txt",
    "/files/secret.txt%00",
    "/files/data.bin%00.txt",
    "/files/%00",
    "/files/%00/../secret.txt",
    "/files/%5c..%5csecret.txt",
    "/files/..%5csecret.txt",
    "/files/sub%5c..%5c..%5csecret.txt",
    "//etc/passwd",
    "/files//etc/passwd",
    "/files/%2fetc%2fpasswd",
    "/files/%2Fetc/passwd",
    "/../secret.txt",
    "/files/./data.bin",
    "/files/sub/./with%20space.txt",
    "/files/.",
    "/files/sub/..",
    "/files/link-out-dir/../secret.txt",
    "http://127.0.0.1/files/../secret.txt",
    "/files/data.bin/",
    "/files/data.bin/..",
    "/files/%ff%fe",
    "/files/%",
    "/files/%zz",
    "/files/~/secret.txt",
    "/files/" + "a" * 300,
    "/files/" + "/".join(["b" * 99] * 40),
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_and_bad_paths_are_refused(any_site: Site, target: str) -> None:
    response = any_site.get(target)
    assert_refused(response)


def test_encoded_slash_inside_the_root_stays_inside(any_site: Site) -> None:
    """%2f decodes to "/" before routing: at most it names another file inside the root."""
    response = any_site.get("/files/sub%2fwith%20space.txt")
    assert response.status in (200, 400, 404), response
    if response.status == 200:
        assert response.body == b"space\n"


def test_absolute_secret_path_is_refused(any_site: Site) -> None:
    target = "/files/" + str(any_site.tree.secret)
    assert_refused(any_site.get(target))
    assert_refused(any_site.get("/files/" + quote(str(any_site.tree.secret), safe="")))


def test_the_worker_survives_bad_input(any_site: Site) -> None:
    worker = the_worker(any_site.server)
    for target in TRAVERSALS:
        assert_refused(any_site.get(target))
    raw_lines = [
        b"GET /files/\x00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /files/\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /files/a b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /files/" + b"c" * 5000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /files/data.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: " + b"9" * 5000 + b"\r\n\r\n",
        b"GARBAGE\r\n\r\n",
    ]
    for raw in raw_lines:
        with rawhttp.Connection(any_site.server.host, any_site.server.port) as conn:
            conn.send(raw)
            try:
                response = conn.read_response()
            except (rawhttp.ProtocolError, ConnectionResetError):
                continue  # the server may just hang up on garbage
            assert response.status != 500, (raw[:60], response)
            assert SECRET not in response.body
    assert_healthy(any_site.server)
    assert the_worker(any_site.server) == worker


# -- symlinks, hidden files, special files ------------------------------------------------


def test_symlink_pointing_outside_is_404_by_default(strict: Site) -> None:
    for target in ("/files/link-out", "/files/link-out-dir/inner.txt", "/files/link-out-dir/"):
        response = strict.get(target)
        assert response.status == 404, (target, response)
        assert_refused(response)


def test_symlink_pointing_outside_is_served_when_allowed(permissive: Site) -> None:
    for target in ("/files/link-out", "/files/link-out-dir/inner.txt"):
        response = permissive.get(target)
        assert response.status == 200, (target, response)
        assert response.body == SECRET
    listing = permissive.get("/files/link-out-dir/", [("Accept", "application/json")])
    assert listing.status == 200
    assert [e["name"] for e in json.loads(listing.body)["entries"]] == ["inner.txt"]


def test_symlink_pointing_inside_is_served(any_site: Site) -> None:
    response = any_site.get("/files/link-in")
    assert response.status == 200, response
    assert response.body == DATA
    # The name in Content-Disposition is the target's, the ETag the file's own.
    assert response["ETag"] == etag_of(any_site.tree.root / "data.bin")
    nested = any_site.get("/files/link-in-dir/nested/deep.txt")
    assert (nested.status, nested.body) == (200, b"deep\n")


@pytest.mark.parametrize(
    "target",
    [
        "/files/.hidden",
        "/files/.hiddendir/inside.txt",
        "/files/sub/.hidden-in-sub",
        "/files/link-hidden",
        "/files/.hiddendir/",
        "/files/%2ehidden",
    ],
)
def test_hidden_names_are_404_by_default(strict: Site, target: str) -> None:
    response = strict.get(target)
    assert response.status == 404, response
    assert response.body == b"Not Found\n"  # the same text as a missing file


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("/files/.hidden", b"hidden file\n"),
        ("/files/.hiddendir/inside.txt", b"inside hidden dir\n"),
        ("/files/sub/.hidden-in-sub", SECRET),
        ("/files/link-hidden", b"hidden file\n"),
    ],
)
def test_hidden_names_are_served_when_enabled(permissive: Site, target: str, body: bytes) -> None:
    response = permissive.get(target)
    assert (response.status, response.body) == (200, body)


@pytest.mark.parametrize("target", ["/files/fifo", "/files/fifo-link", "/files/fifo/"])
def test_fifo_is_404_promptly_and_does_not_block_the_worker(any_site: Site, target: str) -> None:
    started = time.monotonic()
    response = any_site.get(target)
    assert time.monotonic() - started < 2.0
    assert response.status == 404, response
    started = time.monotonic()
    after = any_site.get("/files/data.bin", ["Range: bytes=0-9"])
    assert time.monotonic() - started < 2.0
    assert (after.status, after.body) == (206, DATA[:10])


def test_fifo_with_a_waiting_writer_is_still_404(strict: Site) -> None:
    # A writer that is blocked opening the FIFO would be released by a reader; make sure
    # the server never becomes that reader (O_NONBLOCK writer open fails without one).
    fifo = strict.tree.root / "fifo"
    response = strict.get("/files/fifo")
    assert response.status == 404
    with pytest.raises(OSError, match="No such device"):  # ENXIO: no reader holds it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.parametrize("target", ["/files/null", "/files/zero-link"])
def test_character_devices_are_404(any_site: Site, target: str) -> None:
    if target == "/files/null" and not any_site.tree.has_device:
        pytest.skip("mknod of a character device needs CAP_MKNOD")
    started = time.monotonic()
    response = any_site.get(target)
    assert time.monotonic() - started < 2.0
    assert response.status == 404, response
    assert response.body == b"Not Found\n"


@pytest.mark.parametrize("target", ["/files/loop", "/files/dangling", "/files/nope.bin"])
def test_broken_links_and_missing_files_are_404(any_site: Site, target: str) -> None:
    response = any_site.get(target)
    assert (response.status, response.body) == (404, b"Not Found\n")


# -- folders ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/files/sub", "/files/sub/"),
        ("/files/sub/nested", "/files/sub/nested/"),
        ("/files/my%20dir", "/files/my%20dir/"),
        ("/files/" + quote(UNICODE_DIR), "/files/" + quote(UNICODE_DIR) + "/"),
        ("/files/link-in-dir", "/files/link-in-dir/"),
    ],
)
def test_folder_without_slash_redirects(any_site: Site, target: str, location: str) -> None:
    response = any_site.get(target)
    assert response.status == 301, response
    assert response["Location"] == location
    followed = any_site.get(location)
    assert followed.status == 200
    assert followed["Content-Type"] == "text/html; charset=utf-8"  # the index page


def listing(site: Site, target: str) -> dict[str, object]:
    response = site.get(target, [("Accept", "application/json")])
    assert response.status == 200, response
    assert response["Content-Type"] == "application/json"
    assert int(response["Content-Length"]) == len(response.body)
    document = json.loads(response.body)
    assert document["path"] == target
    return document


def test_root_listing(strict: Site) -> None:
    document = listing(strict, "/files/")
    entries = {e["name"]: e for e in document["entries"]}  # type: ignore[attr-defined]
    assert sorted(entries) == sorted(
        ["data.bin", "link-in", "link-in-dir", "my dir", "odd", "sub", UNICODE_DIR]
    )
    assert [e["name"] for e in document["entries"]] == sorted(entries)  # type: ignore[attr-defined]
    assert entries["sub"]["type"] == "folder"
    assert entries["sub"]["url"] == "/files/sub/"
    assert "size" not in entries["sub"]
    assert entries["my dir"]["url"] == "/files/my%20dir/"
    assert entries[UNICODE_DIR]["url"] == "/files/" + quote(UNICODE_DIR) + "/"
    assert entries["data.bin"] == {
        "name": "data.bin",
        "type": "file",
        "url": "/files/data.bin",
        "mtime": entries["data.bin"]["mtime"],
        "size": len(DATA),
        "etag": etag_of(strict.tree.root / "data.bin"),
        "meta4": "/files/data.bin?format=meta4",
        # Listed once known: the background hashing may or may not have finished.
        **({"sha256": hashlib.sha256(DATA).hexdigest()} if "sha256" in entries["data.bin"] else {}),
    }


def test_permissive_root_listing_shows_hidden_and_outside(permissive: Site) -> None:
    names = [e["name"] for e in listing(permissive, "/files/")["entries"]]  # type: ignore[attr-defined]
    for name in (".hidden", ".hiddendir", "link-out", "link-out-dir", "link-hidden"):
        assert name in names
    for name in ("fifo", "fifo-link", "null", "zero-link", "loop", "dangling"):
        assert name not in names


def test_sub_listing_urls_are_encoded_and_fetchable(any_site: Site) -> None:
    document = listing(any_site, "/files/sub/")
    entries = {e["name"]: e for e in document["entries"]}  # type: ignore[attr-defined]
    expected = {"nested", "with space.txt", UNICODE_NAME}
    if any_site is not None and any_site.server.env.get("DL_SERVE_HIDDEN") == "1":
        expected.add(".hidden-in-sub")
    assert set(entries) == expected
    assert entries["nested"] == {**entries["nested"], "type": "folder", "url": "/files/sub/nested/"}
    assert entries["with space.txt"]["url"] == "/files/sub/with%20space.txt"
    assert entries[UNICODE_NAME]["url"] == "/files/sub/" + quote(UNICODE_NAME)
    assert entries[UNICODE_NAME]["url"].isascii()
    for name, entry in entries.items():
        if entry["type"] != "file":
            continue
        response = any_site.get(entry["url"])
        assert response.status == 200, (name, response)
        assert response.body == (any_site.tree.root / "sub" / name).read_bytes()
        assert response["ETag"] == entry["etag"]
        assert int(response["Content-Length"]) == entry["size"]


def test_every_listed_file_can_be_downloaded(any_site: Site) -> None:
    """A listing only offers URLs that work; names no URL can reach are left out."""
    document = listing(any_site, "/files/odd/")
    names = [e["name"] for e in document["entries"]]  # type: ignore[attr-defined]
    assert os.fsdecode(b"\xff-not-utf8.bin") not in names
    for name in ("100%.txt", 'quo"te.txt', "emoji 😀.txt", "semi;colon,comma.txt"):
        assert name in names
    failures = []
    for entry in document["entries"]:  # type: ignore[attr-defined]
        response = any_site.get(entry["url"])
        if response.status != 200 or response.body != entry["name"].encode() + b"\n":
            failures.append((entry["name"], entry["url"], response.status))
    assert failures == []


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_names_never_500_or_break_the_head(any_site: Site, name: str) -> None:
    target = "/files/odd/" + quote(name.encode("utf-8", "surrogateescape"))
    response = any_site.get(target)  # parse_head rejects any malformed header line
    assert response.status in (200, 400, 404), response
    if response.status == 200:
        assert response.body == name.encode("utf-8", "surrogateescape") + b"\n"


# -- methods -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "TRACE"])
@pytest.mark.parametrize("target", ["/files/data.bin", "/files/", "/files/sub/"])
def test_other_methods_are_405(strict: Site, method: str, target: str) -> None:
    with rawhttp.Connection(strict.server.host, strict.server.port) as conn:
        conn.send(rawhttp.build_request(method, target, ["Content-Length: 3"], body=b"x=1"))
        response = conn.read_response()
        assert response.status == 405, response
        assert response["Allow"] == "GET, HEAD, OPTIONS"
        assert DATA[:32] not in response.body
        assert len(response.body) < 100
        # The request body was consumed: the connection is still in step.
        conn.send(rawhttp.build_request("GET", "/files/data.bin", ["Range: bytes=-3"]))
        after = conn.read_response()
        assert (after.status, after.body) == (206, DATA[-3:])


@pytest.mark.parametrize("target", ["/files/data.bin", "/files/", "/files/missing.bin", "/"])
def test_options_is_204_with_allow_and_keeps_the_connection_in_step(
    strict: Site, target: str
) -> None:
    with rawhttp.Connection(strict.server.host, strict.server.port) as conn:
        conn.send(rawhttp.build_request("OPTIONS", target, ["Content-Length: 3"], body=b"x=1"))
        response = conn.read_response()
        assert (response.status, response["Allow"], response.body) == (
            204,
            "GET, HEAD, OPTIONS",
            b"",
        )
        assert response.get("Content-Length") is None  # RFC 9110 §8.6
        conn.send(rawhttp.build_request("GET", "/files/data.bin", ["Range: bytes=-3"]))
        after = conn.read_response()
        assert (after.status, after.body) == (206, DATA[-3:])
