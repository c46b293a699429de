"""Repeated slashes in a path are merged (service.web.slashes), as nginx does: the same
file or folder, the same bytes and validators, never anything outside the root."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from config import Settings
from service import create_app
from service.sansio.signing import Signer
from tests.app import build_tree, wsgi_call

KEY = "test-key-0123456789-abcdefghijklmnop"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "outside.txt").write_bytes(b"not for you")
    return build_tree(tmp_path / "data")


@pytest.fixture
def app(root: Path) -> Flask:
    return create_app(Settings(data_root=root))


def exchange(app: Flask, path: str, **extra: Any) -> tuple[str, dict[str, str], bytes]:
    """Status, header fields and body of ``path`` sent as PATH_INFO exactly."""
    started, body = wsgi_call(app, path, REMOTE_ADDR="127.0.0.1", **extra)
    try:
        data = b"".join(body)
    finally:
        body.close()
    status, headers = started
    return status, dict(headers), data


@pytest.mark.parametrize(
    ("spelled", "plain"),
    [
        ("/files//a.txt", "/files/a.txt"),
        ("//files/a.txt", "/files/a.txt"),
        ("/files///sub//b.txt", "/files/sub/b.txt"),
        ("/files/sub//deeper//c.txt", "/files/sub/deeper/c.txt"),
    ],
)
def test_a_file_behind_repeated_slashes_is_the_same_file(
    app: Flask, spelled: str, plain: str
) -> None:
    status, headers, data = exchange(app, spelled, HTTP_RANGE="bytes=1-4")
    expected_status, expected_headers, expected_data = exchange(app, plain, HTTP_RANGE="bytes=1-4")
    assert (status, data) == (expected_status, expected_data) == ("206 Partial Content", data)
    for field in ("ETag", "Content-Range", "Content-Disposition", "Last-Modified"):
        assert headers[field] == expected_headers[field], field


def test_a_folder_behind_repeated_slashes_lists_the_same_entries(app: Flask) -> None:
    for spelled, plain in (("/files//", "/files/"), ("/files//sub//", "/files/sub/")):
        status, _, data = exchange(app, spelled, QUERY_STRING="format=json")
        assert status == "200 OK"
        assert json.loads(data) == json.loads(exchange(app, plain, QUERY_STRING="format=json")[2])


@pytest.mark.parametrize(
    "path", ["/files//..//outside.txt", "/files/sub//..//..//outside.txt", "/files//.hidden"]
)
def test_merging_never_climbs_out_nor_reveals(app: Flask, path: str) -> None:
    status, _, data = exchange(app, path)
    assert status[:3] in ("400", "404"), status
    assert data in (b"Bad Request: invalid path\n", b"Not Found\n")


def test_a_signed_link_holds_for_its_path_however_slashed(root: Path) -> None:
    signed = create_app(Settings(data_root=root, signing_key=(KEY,)))
    query = Signer((KEY.encode(),)).query("sub/b.txt", int(time.time()) + 600, None)
    assert exchange(signed, "/files/sub//b.txt", QUERY_STRING=query)[0] == "200 OK"
    assert exchange(signed, "/files/sub//b.txt")[0].startswith("403")
    other = Signer((KEY.encode(),)).query("a.txt", int(time.time()) + 600, None)
    assert exchange(signed, "/files//sub/b.txt", QUERY_STRING=other)[0].startswith("403")


def test_the_access_log_keeps_the_target_as_sent(root: Path) -> None:
    app = create_app(Settings(data_root=root))
    lines: list[str] = []
    app.extensions["access_log"].write = lines.append
    exchange(app, "/files//a.txt", **{"wsgi.errors": io.StringIO()})
    assert [json.loads(line)["target"] for line in lines] == ["/files//a.txt"]
