"""OPTIONS and CORS through the app: every kind of answer carries the policy's fields."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from config import Settings
from service import create_app
from service.sansio.signing import Signer
from tests.app import BIG, BIG_SIZE, build_tree, wsgi_call

APP_ORIGIN = "https://app.example.org"
FOREIGN = "https://elsewhere.example"
KEY = "k" * 40
PREFLIGHT = {"Origin": APP_ORIGIN, "Access-Control-Request-Method": "GET"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return build_tree(folder)


def make_app(root: Path, **settings: Any) -> Flask:
    return create_app(Settings(data_root=root, chunk_size=4096, **settings))


@pytest.fixture
def client(root: Path) -> Iterator[FlaskClient]:
    app = make_app(root, cors_origins=(APP_ORIGIN,), cors_max_age=900)
    with app.test_client() as test_client:
        yield test_client


def fetch(client: FlaskClient, url: str, method: str = "GET", **headers: str) -> TestResponse:
    with client.open(url, method=method, headers=headers) as response:
        response.get_data()
    return response


def vary(response: TestResponse) -> list[str]:
    return [item.strip() for item in response.headers.get("Vary", "").split(",") if item.strip()]


def exposed(response: TestResponse) -> set[str]:
    value = response.headers.get("Access-Control-Expose-Headers", "")
    return {item.strip() for item in value.split(",")}


def etag_of(client: FlaskClient) -> str:
    return fetch(client, "/files/big.bin", "HEAD").headers["ETag"]


def answers(client: FlaskClient) -> dict[str, tuple[TestResponse, int]]:
    """One request per kind of answer a reader may get, each from the allowed origin."""
    etag = etag_of(client)
    cases: dict[str, tuple[dict[str, str], str, str, int]] = {
        "200": ({}, "GET", "/files/big.bin", 200),
        "206": ({"Range": "bytes=-100"}, "GET", "/files/big.bin", 206),
        "multipart 206": ({"Range": "bytes=0-9,-10"}, "GET", "/files/big.bin", 206),
        "HEAD": ({}, "HEAD", "/files/big.bin", 200),
        "304": ({"If-None-Match": etag}, "GET", "/files/big.bin", 304),
        "412": ({"If-Match": '"other"'}, "GET", "/files/big.bin", 412),
        "416": ({"Range": f"bytes={BIG_SIZE}-"}, "GET", "/files/big.bin", 416),
        "404": ({}, "GET", "/files/missing.bin", 404),
        "hidden": ({}, "GET", "/files/.hidden", 404),
        "listing": ({"Accept": "application/json"}, "GET", "/files/", 200),
        "405": ({}, "POST", "/files/big.bin", 405),
    }
    return {
        name: (fetch(client, url, method, Origin=APP_ORIGIN, **headers), status)
        for name, (headers, method, url, status) in cases.items()
    }


def test_every_kind_of_answer_to_an_allowed_origin_carries_the_cors_fields(
    client: FlaskClient,
) -> None:
    for name, (response, status) in answers(client).items():
        assert response.status_code == status, name
        assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN, name
        assert {"Content-Range", "ETag", "Content-Length", "Repr-Digest"} <= exposed(response)
        assert "Origin" in vary(response), name
        assert "Access-Control-Allow-Credentials" not in response.headers


def test_the_range_answers_keep_their_bytes_with_cors_on(client: FlaskClient) -> None:
    response = fetch(client, "/files/big.bin", Origin=APP_ORIGIN, Range="bytes=-100")
    assert response.headers["Content-Range"] == f"bytes {BIG_SIZE - 100}-{BIG_SIZE - 1}/{BIG_SIZE}"
    assert response.get_data() == BIG[-100:]


def test_a_listing_varies_on_accept_and_origin_in_one_field(client: FlaskClient) -> None:
    response = fetch(client, "/files/", Origin=APP_ORIGIN)
    assert response.headers.getlist("Vary") == ["Accept, Origin"]


def test_a_foreign_origin_gets_the_bytes_but_no_cors_fields(client: FlaskClient) -> None:
    response = fetch(client, "/files/big.bin", Origin=FOREIGN)
    assert response.status_code == 200
    assert response.get_data() == BIG
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Expose-Headers" not in response.headers
    assert vary(response) == ["Origin"]  # a cache must not give it to the allowed origin


def test_an_answer_without_origin_still_varies_on_it(client: FlaskClient) -> None:
    response = fetch(client, "/files/big.bin")
    assert "Access-Control-Allow-Origin" not in response.headers
    assert vary(response) == ["Origin"]


def test_a_preflight_from_an_allowed_origin_is_204_with_methods_headers_and_max_age(
    client: FlaskClient,
) -> None:
    response = fetch(
        client,
        "/files/big.bin",
        "OPTIONS",
        **PREFLIGHT,
        **{"Access-Control-Request-Headers": "range, if-none-match"},
    )
    assert response.status_code == 204
    assert response.get_data() == b""
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert response.headers["Access-Control-Allow-Methods"] == "GET, HEAD"
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "range" in allowed
    assert "if-none-match" in allowed
    assert response.headers["Access-Control-Max-Age"] == "900"
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert "Content-Length" not in response.headers  # RFC 9110 §8.6: never on a 204


@pytest.mark.parametrize("path", ["/", "/files", "/files/", "/files/sub/", "/files/missing.bin"])
def test_a_preflight_is_answered_on_every_route_of_the_tree(client: FlaskClient, path: str) -> None:
    response = fetch(client, path, "OPTIONS", **PREFLIGHT)
    assert (response.status_code, response.headers["Access-Control-Allow-Origin"]) == (
        204,
        APP_ORIGIN,
    )


def test_a_preflight_from_a_foreign_origin_gets_no_cors_fields(client: FlaskClient) -> None:
    response = fetch(
        client,
        "/files/big.bin",
        "OPTIONS",
        Origin=FOREIGN,
        **{"Access-Control-Request-Method": "GET"},
    )
    assert response.status_code == 204
    assert not [name for name, _ in response.headers if name.startswith("Access-Control-")]


def test_a_plain_options_is_204_with_allow_and_no_cors_fields(client: FlaskClient) -> None:
    response = fetch(client, "/files/big.bin", "OPTIONS", Origin=APP_ORIGIN)
    assert response.status_code == 204
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert not [name for name, _ in response.headers if name.startswith("Access-Control-")]


def test_without_the_setting_there_is_no_cors_field_but_options_still_works(root: Path) -> None:
    with make_app(root).test_client() as plain:
        got = fetch(plain, "/files/big.bin", Origin=APP_ORIGIN, Range="bytes=-5")
        preflight = fetch(plain, "/files/big.bin", "OPTIONS", **PREFLIGHT)
        refused = fetch(plain, "/files/big.bin", "DELETE")
    assert got.status_code == 206
    assert "Vary" not in got.headers
    for response in (got, preflight):
        assert not [name for name, _ in response.headers if name.startswith("Access-")]
    assert (preflight.status_code, preflight.headers["Allow"]) == (204, "GET, HEAD, OPTIONS")
    assert (refused.status_code, refused.headers["Allow"]) == (405, "GET, HEAD, OPTIONS")


def test_any_origin_gets_a_star(root: Path) -> None:
    with make_app(root, cors_origins=("*",)).test_client() as open_client:
        response = fetch(open_client, "/files/big.bin", Origin=FOREIGN, Range="bytes=0-0")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in response.headers


def test_signed_links_need_no_signature_for_a_preflight_and_keep_cors_on_their_403(
    root: Path,
) -> None:
    app = make_app(root, cors_origins=(APP_ORIGIN,), signing_key=(KEY,))
    signer = Signer((KEY.encode(),))
    url = f"/files/{quote('big.bin')}?{signer.query('big.bin', int(time.time()) + 600, None)}"
    with app.test_client() as signed_client:
        preflight = fetch(signed_client, "/files/big.bin", "OPTIONS", **PREFLIGHT)
        unsigned = fetch(signed_client, "/files/big.bin", Origin=APP_ORIGIN)
        good = fetch(signed_client, url, Origin=APP_ORIGIN, Range="bytes=-10")
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert unsigned.status_code == 403
    assert unsigned.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert (good.status_code, good.get_data()) == (206, BIG[-10:])
    assert good.headers["Access-Control-Allow-Origin"] == APP_ORIGIN


def test_a_refused_download_429_carries_the_cors_fields(root: Path) -> None:
    app = make_app(root, cors_origins=(APP_ORIGIN,), max_downloads_per_client=1)
    _started, first = wsgi_call(app, "/files/big.bin", REMOTE_ADDR="192.0.2.1")
    try:
        started, body = wsgi_call(
            app, "/files/big.bin", REMOTE_ADDR="192.0.2.1", HTTP_ORIGIN=APP_ORIGIN
        )
        body.close()
    finally:
        first.close()
    status, headers = started
    fields = dict(headers)
    assert status.startswith("429")
    assert fields["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "Retry-After" in fields["Access-Control-Expose-Headers"]
