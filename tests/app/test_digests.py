"""Digests through the Flask app: absent until hashed, then on 200, 206, HEAD and 304;
the legacy field on request; the digest ETag; the sha256sum listing; turned off."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from config import Settings
from service import create_app
from service.sansio.digests import digest_etag
from tests.app import BIG, BIG_SIZE, MTIME_NS, build_tree

SHA = hashlib.sha256(BIG).digest()
REPR = f"sha-256=:{base64.b64encode(SHA).decode()}:"
LEGACY = f"SHA-256={base64.b64encode(SHA).decode()}"
MTIME_TAG = f'"{BIG_SIZE:x}-{MTIME_NS:x}"'
DIGEST_TAG = str(digest_etag(SHA))
ARIA2 = "SHA-512;q=1, SHA-256;q=1, SHA;q=0.1"


def make_app(tmp_path: Path, **settings: Any) -> Flask:
    root = tmp_path / "data"
    root.mkdir()
    return create_app(Settings(data_root=build_tree(root), **settings))


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(tmp_path)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as test_client:
        yield test_client


def get(client: FlaskClient, path: str, method: str = "GET", **headers: str) -> TestResponse:
    headers = {"Accept": "application/json", **headers}  # an API client: JSON listings
    with client.open(path, method=method, headers=headers) as response:
        response.get_data()
    return response


def settle(client: FlaskClient) -> None:
    assert client.application.extensions["digests"].wait_idle(10)


def test_the_digest_is_absent_first_then_on_every_answer(client: FlaskClient) -> None:
    first = get(client, "/files/big.bin")
    assert first.status_code == 200
    assert "Repr-Digest" not in first.headers  # absent until known, never late
    settle(client)
    assert get(client, "/files/big.bin").headers["Repr-Digest"] == REPR
    partial = get(client, "/files/big.bin", Range="bytes=10-19")
    assert partial.status_code == 206
    assert partial.headers["Repr-Digest"] == REPR  # the whole file's, not the part's
    multipart = get(client, "/files/big.bin", Range="bytes=0-1,500-501")
    assert multipart.headers["Repr-Digest"] == REPR
    head = get(client, "/files/big.bin", "HEAD")
    assert head.headers["Repr-Digest"] == REPR
    not_modified = get(client, "/files/big.bin", **{"If-None-Match": MTIME_TAG})
    assert not_modified.status_code == 304
    assert not_modified.headers["Repr-Digest"] == REPR
    assert "Digest" not in head.headers  # the legacy field only when asked for


def test_want_digest_gets_the_legacy_field(client: FlaskClient) -> None:
    get(client, "/files/big.bin")
    settle(client)
    response = get(client, "/files/big.bin", **{"Want-Digest": ARIA2})
    assert response.headers["Digest"] == LEGACY
    refused = get(client, "/files/big.bin", **{"Want-Repr-Digest": "sha-256=0"})
    assert "Repr-Digest" not in refused.headers


def test_the_digest_etag_replaces_the_mtime_tag_once_known(tmp_path: Path) -> None:
    app = make_app(tmp_path, etag="digest")
    with app.test_client() as client:
        assert get(client, "/files/big.bin").headers["ETag"] == MTIME_TAG
        settle(client)
        assert get(client, "/files/big.bin").headers["ETag"] == DIGEST_TAG
        # A resume that began before the digest was known still gets its range.
        resumed = get(client, "/files/big.bin", Range="bytes=100-", **{"If-Range": MTIME_TAG})
        assert resumed.status_code == 206
        assert resumed.data == BIG[100:]
        assert get(client, "/files/big.bin", **{"If-Match": MTIME_TAG}).status_code == 200
        cached = get(client, "/files/big.bin", **{"If-None-Match": MTIME_TAG})
        assert cached.status_code == 304
        assert cached.headers["ETag"] == DIGEST_TAG


def test_the_default_etag_stays_the_mtime_tag(client: FlaskClient) -> None:
    get(client, "/files/big.bin")
    settle(client)
    response = get(client, "/files/big.bin", Range="bytes=0-9", **{"If-Range": DIGEST_TAG})
    assert response.headers["ETag"] == MTIME_TAG
    assert response.status_code == 206  # the digest tag names these bytes too


def test_the_sha256_listing_names_pending_files_in_comments(client: FlaskClient) -> None:
    first = get(client, "/files/?format=sha256")
    assert first.status_code == 200
    assert first.mimetype == "text/plain"
    lines = first.get_data(as_text=True).splitlines()
    assert all(line.startswith("# ") for line in lines)
    assert {line.rsplit(": ", 1)[1] for line in lines} == {
        "a.txt",
        "big.bin",
        "empty.txt",
        "video.mp4",
    }
    settle(client)
    listing = get(client, "/files/?format=sha256").get_data(as_text=True)
    assert f"{SHA.hex()}  big.bin\n" in listing
    assert f"{hashlib.sha256(b'').hexdigest()}  empty.txt\n" in listing
    assert "#" not in listing
    assert ".hidden" not in listing
    assert "sub" not in listing  # folders are not listed


def test_a_subfolder_listing_uses_names_relative_to_it(client: FlaskClient) -> None:
    get(client, "/files/sub/?format=sha256")
    settle(client)
    body = get(client, "/files/sub/?format=sha256").get_data(as_text=True)
    assert body == hashlib.sha256(b"in a folder\n").hexdigest() + "  b.txt\n"
    # Keys match file requests: the listing's hash serves /files/sub/b.txt too.
    assert "Repr-Digest" in get(client, "/files/sub/b.txt").headers


def json_entries(client: FlaskClient, folder: str) -> dict[str, dict[str, Any]]:
    listing = get(client, folder, Accept="application/json").get_json()
    return {entry["name"]: entry for entry in listing["entries"]}


@pytest.mark.parametrize("etag", ["mtime", "digest"])
def test_the_json_listing_gives_known_digests_and_the_files_own_etag(
    tmp_path: Path, etag: str
) -> None:
    with make_app(tmp_path, etag=etag).test_client() as client:
        before = json_entries(client, "/files/")["big.bin"]
        assert "sha256" not in before
        assert before["etag"] == MTIME_TAG
        assert client.application.extensions["digests"].queue_length() == 0  # not queued
        get(client, "/files/big.bin")
        get(client, "/files/sub/b.txt")
        settle(client)
        after = json_entries(client, "/files/")["big.bin"]
        assert after["sha256"] == SHA.hex()
        assert after["etag"] == get(client, "/files/big.bin", "HEAD").headers["ETag"]
        assert after["etag"] == (DIGEST_TAG if etag == "digest" else MTIME_TAG)
        inner = json_entries(client, "/files/sub/")["b.txt"]
        assert inner["sha256"] == hashlib.sha256(b"in a folder\n").hexdigest()


def test_digests_can_be_turned_off(tmp_path: Path) -> None:
    app = make_app(tmp_path, digests=False)
    assert app.extensions["digests"] is None
    with app.test_client() as client:
        get(client, "/files/big.bin")
        response = get(client, "/files/big.bin", **{"Want-Digest": ARIA2})
        assert "Repr-Digest" not in response.headers
        assert "Digest" not in response.headers
        assert get(client, "/files/?format=sha256").status_code == 404
        assert get(client, "/files/").is_json  # the JSON listing is unchanged
