"""The CORS core: origin parsing, and the fields of answers and preflights, as tables."""

from __future__ import annotations

import pytest

from service.sansio.cors import (
    ALLOW_HEADERS,
    EXPOSE_HEADERS,
    CorsPolicy,
    OriginError,
    normalize_origin,
)

LISTED = CorsPolicy.parse("https://app.example.org, http://127.0.0.1:8080", max_age=600)
ANY = CorsPolicy.parse("*")


@pytest.mark.parametrize(
    ("configured", "origin"),
    [
        ("https://app.example.org", "https://app.example.org"),
        ("HTTPS://App.Example.ORG", "https://app.example.org"),
        ("https://app.example.org/", "https://app.example.org"),
        ("https://app.example.org:443", "https://app.example.org"),
        ("http://app.example.org:80", "http://app.example.org"),
        ("https://app.example.org:8443", "https://app.example.org:8443"),
        ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
    ],
)
def test_origins_are_normalized_as_browsers_serialize_them(configured: str, origin: str) -> None:
    assert normalize_origin(configured) == origin


@pytest.mark.parametrize(
    "configured",
    [
        "null",
        "app.example.org",
        "https://app.example.org/path",
        "https://*.example.org",
        "https://user@app.example.org",
        "https://app.example.org?x=1",
        "ftp://files.example.org",
        "https://bücher.example",
        "https://app.example.org:0",
        "https://app.example.org:70000",
        "https://",
    ],
)
def test_anything_but_an_origin_is_refused(configured: str) -> None:
    with pytest.raises(OriginError):
        normalize_origin(configured)


def test_empty_means_no_cors_and_a_star_must_stand_alone() -> None:
    assert CorsPolicy.parse("") is None
    assert CorsPolicy.parse(" , ") is None
    assert CorsPolicy.parse(" * ") == CorsPolicy(None)
    with pytest.raises(OriginError, match="alone"):
        CorsPolicy.parse("*, https://app.example.org")


def test_a_listed_origin_is_echoed_with_vary_and_the_exposed_fields() -> None:
    assert LISTED is not None
    fields = dict(LISTED.response_fields("http://127.0.0.1:8080"))
    assert fields["Access-Control-Allow-Origin"] == "http://127.0.0.1:8080"
    assert fields["Vary"] == "Origin"
    exposed = [name.strip() for name in fields["Access-Control-Expose-Headers"].split(",")]
    assert exposed == list(EXPOSE_HEADERS)
    for needed in ("Content-Range", "Content-Length", "ETag", "Accept-Ranges", "Last-Modified",
                   "Content-Disposition", "Repr-Digest", "Digest", "Link"):  # fmt: skip
        assert needed in exposed
    assert "Access-Control-Allow-Credentials" not in fields


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "https://evil.example",
        "https://app.example.org.evil.example",
        "null",
        "https://APP.example.org",
        "http://127.0.0.1:8081",
    ],
)
def test_an_unlisted_origin_gets_only_vary(origin: str | None) -> None:
    assert LISTED is not None
    assert LISTED.response_fields(origin) == [("Vary", "Origin")]
    assert LISTED.preflight_fields(origin) == [("Vary", "Origin")]


def test_any_origin_gets_a_star_and_no_vary() -> None:
    assert ANY is not None
    fields = ANY.response_fields("https://anyone.example")
    assert ("Access-Control-Allow-Origin", "*") in fields
    assert all(name != "Vary" for name, _ in fields)
    assert ANY.response_fields(None) == []  # not a CORS request: nothing to add
    assert ("Access-Control-Allow-Origin", "*") in ANY.response_fields("null")


def test_a_preflight_names_the_methods_the_range_headers_and_the_max_age() -> None:
    assert LISTED is not None
    fields = dict(LISTED.preflight_fields("https://app.example.org"))
    assert fields["Access-Control-Allow-Origin"] == "https://app.example.org"
    assert fields["Access-Control-Allow-Methods"] == "GET, HEAD"
    allowed = {name.strip().lower() for name in fields["Access-Control-Allow-Headers"].split(",")}
    assert allowed == {name.lower() for name in ALLOW_HEADERS}
    for needed in ("range", "if-range", "if-match", "if-none-match", "if-modified-since",
                   "if-unmodified-since", "want-digest", "want-repr-digest"):  # fmt: skip
        assert needed in allowed
    assert fields["Access-Control-Max-Age"] == "600"
    assert fields["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in fields
