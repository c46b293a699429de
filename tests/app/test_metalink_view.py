"""``GET``/``HEAD /files/<file>?format=meta4`` through Flask's test client: the file's
Metalink once its hashes are known, and an answer like any file's around it."""

from __future__ import annotations

import hashlib
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from config import Settings
from service import create_app
from service.sansio.metalink import NAMESPACE
from service.sansio.mirrors import parse_mirrors
from service.sansio.signing import Signer
from tests.app import BIG, MTIME_NS, build_tree

NS = {"m": NAMESPACE}
PIECE = 64 * 1024
KEY = "test-key-0123456789-abcdefghijklmnop"
ODD = 'it\'s "<b>&amp;" ü #?%.iso'


def make(root: Path, cache: Path, **settings: object) -> Flask:
    return create_app(Settings(data_root=root, digest_cache=cache, piece_size=PIECE, **settings))  # type: ignore[arg-type]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    tree = build_tree(tmp_path / "data")
    (tree / ODD).write_bytes(b"odd" * 40_000)
    os.utime(tree / ODD, ns=(MTIME_NS, MTIME_NS))
    return tree


@pytest.fixture
def client(root: Path, tmp_path: Path) -> Iterator[FlaskClient]:
    with make(root, tmp_path / "cache").test_client() as test_client:
        yield test_client


def meta4(client: FlaskClient, url: str, **headers: str) -> TestResponse:
    """The document once the digest pass knows the file: 503 with Retry-After before."""
    deadline = time.monotonic() + 30
    while True:
        response = client.get(url, headers=headers)
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        assert int(response.headers["Retry-After"]) >= 1
        assert b"hashes are being computed" in response.data
        time.sleep(0.02)


def pieces_of(content: bytes) -> list[str]:
    return [
        hashlib.sha256(content[at : at + PIECE]).hexdigest() for at in range(0, len(content), PIECE)
    ]


def test_the_metalink_describes_the_file_and_its_own_url(client: FlaskClient) -> None:
    first = client.get("/files/big.bin?format=meta4")
    assert first.status_code == 503  # asked before any hash: queued, not computed here
    response = meta4(client, "/files/big.bin?format=meta4")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/metalink4+xml"
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="big.bin.meta4"'
    )
    assert response.headers["ETag"].startswith('"meta4-')
    assert response.headers["Last-Modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert int(response.headers["Content-Length"]) == len(response.data)
    file = ET.fromstring(response.data).find("m:file", NS)
    assert file is not None
    assert file.get("name") == "big.bin"
    assert file.findtext("m:size", namespaces=NS) == str(len(BIG))
    assert file.findtext("m:hash", namespaces=NS) == hashlib.sha256(BIG).hexdigest()
    assert [h.text for h in file.findall("m:pieces/m:hash", NS)] == pieces_of(BIG)
    urls = file.findall("m:url", NS)
    assert [(u.get("priority"), u.text) for u in urls] == [("1", "http://localhost/files/big.bin")]


def test_a_hostile_name_is_the_documents_name_and_its_url_is_encoded(
    client: FlaskClient,
) -> None:
    url = "/files/" + quote(ODD) + "?format=meta4"
    response = meta4(client, url)
    assert response.status_code == 200
    file = ET.fromstring(response.data).find("m:file", NS)
    assert file is not None
    assert file.get("name") == ODD
    own = file.findtext("m:url", namespaces=NS) or ""
    assert unquote(urlsplit(own).path) == "/files/" + ODD  # "#", "?", "%" encoded
    assert client.get(urlsplit(own).path).data == b"odd" * 40_000


def test_head_conditions_and_ranges_work_as_for_any_file(client: FlaskClient) -> None:
    url = "/files/big.bin?format=meta4"
    full = meta4(client, url)
    head = client.head(url)
    assert head.status_code == 200
    assert head.data == b""
    assert {k: v for k, v in head.headers if k != "X-Request-Id"} == {
        k: v for k, v in full.headers if k != "X-Request-Id"
    }
    etag = full.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(url, headers={"If-Match": '"other"'}).status_code == 412
    part = client.get(url, headers={"Range": "bytes=0-37"})
    assert (part.status_code, part.data) == (206, full.data[:38])


def test_a_new_version_gets_a_new_document_and_tag(client: FlaskClient, root: Path) -> None:
    url = "/files/a.txt?format=meta4"
    before = meta4(client, url)
    (root / "a.txt").write_bytes(b"changed\n")
    os.utime(root / "a.txt", ns=(MTIME_NS + 10**9, MTIME_NS + 10**9))
    after = meta4(client, url)
    assert after.status_code == 200
    assert after.headers["ETag"] != before.headers["ETag"]
    hashed = ET.fromstring(after.data).findtext("m:file/m:hash", namespaces=NS)
    assert hashed == hashlib.sha256(b"changed\n").hexdigest()
    assert client.get(url, headers={"If-None-Match": before.headers["ETag"]}).status_code == 200


def test_an_empty_file_has_a_document_without_pieces(client: FlaskClient) -> None:
    response = meta4(client, "/files/empty.txt?format=meta4")
    assert response.status_code == 200
    file = ET.fromstring(response.data).find("m:file", NS)
    assert file is not None
    assert file.find("m:pieces", NS) is None
    assert file.findtext("m:hash", namespaces=NS) == hashlib.sha256(b"").hexdigest()


def test_without_digests_there_is_no_metalink(root: Path, tmp_path: Path) -> None:
    client = make(root, tmp_path / "cache", digests=False).test_client()
    assert client.get("/files/big.bin?format=meta4").status_code == 404
    assert client.get("/files/big.bin").data == BIG  # the file itself, as ever


def test_missing_files_and_folders_answer_as_without_the_query(client: FlaskClient) -> None:
    assert client.get("/files/nothing.iso?format=meta4").status_code == 404
    assert client.get("/files/.hidden?format=meta4").status_code == 404
    folder = client.get("/files/sub/?format=meta4")
    assert folder.status_code == 200
    assert folder.headers["Content-Type"].startswith("text/html")  # its listing


def test_a_signed_link_opens_the_metalink_whose_url_is_signed_alike(
    root: Path, tmp_path: Path
) -> None:
    client = make(root, tmp_path / "cache", signing_key=(KEY,)).test_client()
    query = Signer((KEY.encode(),)).query("big.bin", int(time.time()) + 600, None)
    assert client.get("/files/big.bin?format=meta4").status_code == 403
    response = meta4(client, f"/files/big.bin?format=meta4&{query}")
    assert response.status_code == 200
    own = ET.fromstring(response.data).findtext("m:file/m:url", namespaces=NS) or ""
    parts = urlsplit(own)
    assert parts.query == query  # the link's own signature, no format
    assert client.get(f"{parts.path}?{parts.query}").data == BIG


def test_the_json_listing_names_each_files_metalink(root: Path, tmp_path: Path) -> None:
    client = make(root, tmp_path / "cache", signing_key=(KEY,)).test_client()
    query = Signer((KEY.encode(),)).query("", int(time.time()) + 600, None)
    listing = client.get(f"/files/?format=json&{query}").get_json()
    entries = {entry["name"]: entry for entry in listing["entries"]}
    assert "meta4" not in entries["sub"]  # a folder has none
    signed = entries["big.bin"]["meta4"]
    assert signed.startswith("/files/big.bin?")
    assert signed.endswith("&format=meta4")
    response = meta4(client, signed)  # the entry's own signature opens it
    assert response.status_code == 200
    assert ET.fromstring(response.data).findtext("m:file/m:size", namespaces=NS) == str(len(BIG))
    plain = make(root, tmp_path / "other", digests=False).test_client()
    entries = {e["name"]: e for e in plain.get("/files/?format=json").get_json()["entries"]}
    assert "meta4" not in entries["big.bin"]


def links_of(response: TestResponse) -> list[str]:
    return response.headers.getlist("Link")


def test_file_answers_link_their_metalink_once_every_hash_is_known(
    root: Path, tmp_path: Path
) -> None:
    client = make(root, tmp_path / "cache").test_client()
    assert links_of(client.get("/files/big.bin")) == []  # queued now, not known yet
    assert meta4(client, "/files/big.bin?format=meta4").status_code == 200
    described = '</files/big.bin?format=meta4>; rel=describedby; type="application/metalink4+xml"'
    etag = client.head("/files/big.bin").headers["ETag"]
    answers = {
        "200": {},
        "HEAD": {"method": "HEAD"},
        "206": {"headers": {"Range": "bytes=0-9"}},
        "multipart 206": {"headers": {"Range": "bytes=0-0,5-9"}},
        "304": {"headers": {"If-None-Match": etag}},
    }
    for kind, request in answers.items():
        response = client.open("/files/big.bin", **request)  # type: ignore[arg-type]
        assert links_of(response) == [described], kind
        response.close()  # before the next request: each pops its own context
    target = described[1 : described.index(">")]
    assert client.get(target).data == meta4(client, "/files/big.bin?format=meta4").data
    assert meta4(client, f"/files/{quote(ODD)}?format=meta4").status_code == 200
    odd = client.head("/files/" + quote(ODD))  # its link is encoded like its URL
    assert links_of(odd)[0].startswith(f"</files/{quote(ODD)}?format=meta4>; rel=describedby")


def test_mirrors_are_linked_as_duplicates_and_listed_in_the_metalink(
    root: Path, tmp_path: Path
) -> None:
    mirrors = parse_mirrors(
        "http://b.test/files/;geo=de, http://c.test/pub/;pri=9, http://d.test/files/;pri=1"
    )
    client = make(root, tmp_path / "cache", mirrors=mirrors, mirror_links=2).test_client()
    name = quote(ODD)
    assert links_of(client.head("/files/" + name)) == [
        f"<http://d.test/files/{name}>; rel=duplicate; pri=1",
        f"<http://b.test/files/{name}>; rel=duplicate; pri=2; geo=de",
    ]  # the best two (DL_MIRROR_LINKS); no describedby before the hashes are known
    assert links_of(client.get("/files/sub/")) == []  # a listing is no file
    document = ET.fromstring(meta4(client, f"/files/{name}?format=meta4").data)
    urls = [
        (url.text, url.get("priority"), url.get("location"))
        for url in document.iterfind("m:file/m:url", NS)
    ]
    own, priority, _ = urls[0]
    assert (unquote(own or ""), priority) == (f"http://localhost/files/{ODD}", "1")
    assert urls[1:] == [
        (f"http://d.test/files/{name}", "1", None),
        (f"http://b.test/files/{name}", "2", "de"),
        (f"http://c.test/pub/{name}", "9", None),  # the document lists every mirror
    ]
    assert len(links_of(client.head("/files/" + name))) == 3  # describedby, now known


def test_a_signed_link_carries_its_signature_to_the_mirrors_and_the_metalink(
    root: Path, tmp_path: Path
) -> None:
    mirrors = parse_mirrors("https://b.test/files/")
    app = make(root, tmp_path / "cache", signing_key=(KEY,), mirrors=mirrors)
    client = app.test_client()
    query = Signer((KEY.encode(),)).query("big.bin", int(time.time()) + 600, None)
    assert meta4(client, f"/files/big.bin?format=meta4&{query}").status_code == 200
    links = links_of(client.get(f"/files/big.bin?inline=1&{query}"))
    assert links == [
        f'</files/big.bin?{query}&format=meta4>; rel=describedby; type="application/metalink4+xml"',
        f"<https://b.test/files/big.bin?{query}>; rel=duplicate; pri=2",
    ]  # the signature only: not the request's other parameters
    described = links[0][1 : links[0].index(">")]
    assert client.get(described).status_code == 200
