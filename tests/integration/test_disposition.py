"""Content-Disposition on the wire: attachment/inline, and names that try to break it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from tests.integration import rawhttp
from tests.integration.conftest import ServerFactory
from tests.integration.helpers import assert_healthy
from tests.support.server import GunicornServer

pytestmark = pytest.mark.server

# RFC 6266 / RFC 8187: a quoted ASCII fallback without '"', '\' or '%', then ext-value.
_DISPOSITION = re.compile(
    r"(attachment|inline); filename=\"([\x20\x21\x23-\x24\x26-\x5b\x5d-\x7e]*)\"; "
    r"filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]*)"
)

NAMES = [
    "plain.bin",
    'quo"te.txt',
    '""".txt',
    "back\\slash.txt",
    "100% sure.txt",
    "%41%42.txt",
    "résumé 中文.txt",
    "emoji 😀.pdf",
    "semi;colon, comma.txt",
    "apostrophe's.txt",
    "tab\there.txt",
    "cr\rhere.txt",
    "new\nline.txt",
    "crlf\r\nX-Injected: 1.txt",
    "=?utf-8?q?encoded?=.txt",
    "ﬁ ligature.txt",
]


@dataclass
class Site:
    server: GunicornServer
    root: Path
    created: dict[str, bool]

    def get(self, target: str, *, method: str = "GET") -> rawhttp.RawResponse:
        raw = rawhttp.build_request(method, target, [("Connection", "close")])
        return rawhttp.exchange(self.server.host, self.server.port, raw, method=method)


def body_for(name: str) -> bytes:
    return b"content of " + name.encode("utf-8") + b"\n"


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, module_server_factory: ServerFactory
) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("disposition") / "data"
    root.mkdir()
    created = {}
    for name in NAMES:
        try:
            (root / name).write_bytes(body_for(name))
            created[name] = True
        except OSError:
            created[name] = False  # the filesystem refused the name
    server = module_server_factory(root)
    yield Site(server, root, created)
    assert_healthy(server)


def target_for(name: str, query: str = "") -> str:
    return "/files/" + quote(name, safe="") + query


def parse_disposition(response: rawhttp.RawResponse) -> tuple[str, str, str]:
    """(kind, fallback, decoded filename*) from the single Content-Disposition line."""
    lines = [
        line
        for line in response.head.split(b"\r\n")
        if line.lower().startswith(b"content-disposition:")
    ]
    assert len(lines) == 1, response.head
    assert response.get("X-Injected") is None
    value = response["Content-Disposition"]
    match = _DISPOSITION.fullmatch(value)
    assert match, value
    kind, fallback, encoded = match.groups()
    return kind, fallback, unquote(encoded, encoding="utf-8", errors="strict")


def test_attachment_by_default(site: Site) -> None:
    response = site.get("/files/plain.bin")
    assert response.status == 200
    assert response["Content-Disposition"] == (
        "attachment; filename=\"plain.bin\"; filename*=UTF-8''plain.bin"
    )
    assert response.body == body_for("plain.bin")


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("?inline=1", "inline"),
        ("?inline=true", "inline"),
        ("?inline=0", "attachment"),
        ("?inline=", "attachment"),
        ("?other=1", "attachment"),
    ],
)
def test_inline_query(site: Site, query: str, kind: str) -> None:
    for method in ("GET", "HEAD"):
        response = site.get("/files/plain.bin" + query, method=method)
        assert response.status == 200
        assert parse_disposition(response) == (kind, "plain.bin", "plain.bin")


def test_inline_applies_to_ranges(site: Site) -> None:
    raw = rawhttp.build_request("GET", "/files/plain.bin?inline=1", ["Range: bytes=0-6"])
    response = rawhttp.exchange(site.server.host, site.server.port, raw)
    assert response.status == 206
    assert parse_disposition(response)[0] == "inline"
    assert response.body == body_for("plain.bin")[:7]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("query", ["", "?inline=1"])
def test_awkward_names_never_break_the_header(site: Site, name: str, query: str) -> None:
    if not site.created[name]:
        pytest.skip(f"the filesystem does not allow the name {name!r}")
    response = site.get(target_for(name, query))  # rawhttp rejects any malformed line
    assert response.status != 500, response
    assert b"X-Injected" not in response.head
    if response.status != 200:
        # Names no URL can reach (a backslash is refused as a path segment; the router
        # never matches a line feed) get a short error, with a well-formed head.
        assert "\\" in name or "\n" in name, (name, response)
        assert response.status in (400, 404)
        assert response.get("Content-Disposition") is None
        return
    kind, fallback, decoded = parse_disposition(response)
    assert kind == ("inline" if query else "attachment")
    assert decoded == name  # filename* carries the exact name
    assert fallback.isascii()
    assert not set(fallback) & set('"\\%\r\n')
    assert fallback.strip("_ ") or fallback == "download"
    assert response.body == body_for(name)


def test_non_ascii_fallback_keeps_the_ascii_parts(site: Site) -> None:
    kind, fallback, decoded = parse_disposition(site.get(target_for("résumé 中文.txt")))
    assert (kind, decoded) == ("attachment", "résumé 中文.txt")
    assert fallback == "resume __.txt"
    kind, fallback, decoded = parse_disposition(site.get(target_for('quo"te.txt')))
    assert fallback == "quo_te.txt"


def test_undecodable_name_is_not_reachable_and_not_listed(site: Site) -> None:
    raw_name = b"\xff\xfe-latin1.bin"
    with open(os.path.join(os.fsencode(site.root), raw_name), "wb") as f:
        f.write(b"bytes\n")
    response = site.get("/files/%FF%FE-latin1.bin")
    assert response.status == 404
    assert response.get("Content-Disposition") is None
    listing = site.get("/files/")
    assert listing.status == 200
    assert b"latin1" not in listing.body
