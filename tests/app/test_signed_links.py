"""Signed links through Flask's test client: the 403 gate, what a valid link still allows,
signed listings, and the ``python -m service.sign`` command's URLs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from config import Settings
from service import create_app
from service.sansio.signing import Signer
from service.sign import main as sign_command
from service.web import links
from tests.app import BIG, BIG_SIZE, build_tree

KEY = "test-key-0123456789-abcdefghijklmnop"
OLD_KEY = "old-key-0123456789-abcdefghijklmnopq"
STRANGER_KEY = "stranger-0123456789-abcdefghijklmnop"
FORBIDDEN = b"Forbidden\n"
UNICODE_NAME = "dossier été/ü b#%.txt"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    build_tree(folder)
    (folder / "dossier été").mkdir()
    (folder / UNICODE_NAME).write_bytes(b"unicode body")
    return folder


def make_app(root: Path, keys: tuple[str, ...] = (KEY,), **settings: Any) -> Flask:
    return create_app(Settings(data_root=root, chunk_size=4096, signing_key=keys, **settings))


@pytest.fixture
def client(root: Path) -> Iterator[FlaskClient]:
    with make_app(root).test_client() as test_client:
        yield test_client


def signed(
    path: str,
    *,
    ttl: int = 600,
    keys: tuple[str, ...] = (KEY,),
    client: str | None = None,
) -> str:
    """``/files/<path>?expires=...&signature=...``, minted with ``keys`` as the server would."""
    signer = Signer(tuple(key.encode() for key in keys))
    return f"/files/{quote(path)}?{signer.query(path, int(time.time()) + ttl, client)}"


def fetch(client: FlaskClient, url: str, method: str = "GET", **kw: Any) -> TestResponse:
    """A fully read, closed response, asked as an API client: a listing is JSON."""
    kw["headers"] = {"Accept": "application/json", **kw.get("headers", {})}
    with client.open(url, method=method, **kw) as response:
        response.get_data()
    return response


def answer(response: TestResponse) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Everything a client can see, but the Date."""
    headers = sorted(
        (k, v) for k, v in response.headers.items() if k not in ("Date", "X-Request-Id")
    )
    return response.status_code, response.data, headers


def run_command(capsys: pytest.CaptureFixture[str], *argv: str, **environ: str) -> str:
    assert sign_command(list(argv), environ) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n")
    return out.strip()


# --- the gate: 403, and the same 403 whatever lies behind the path ------------------------


def _unsigned(path: str) -> str:
    return f"/files/{quote(path)}"


def _only_expires(path: str) -> str:
    return signed(path).partition("&")[0]


def _only_signature(path: str) -> str:
    url = signed(path)
    return url.partition("?")[0] + "?" + url.partition("&")[2]


def _forged(path: str) -> str:
    url = signed(path)
    return url[:-1] + ("A" if url[-1] != "A" else "B")


def _for_another_path(path: str) -> str:
    return _unsigned(path) + "?" + signed(path + "x").partition("?")[2]


def _expired(path: str) -> str:
    return signed(path, ttl=-1)


def _stranger_key(path: str) -> str:
    return signed(path, keys=(STRANGER_KEY,))


def _malformed(path: str) -> str:
    return _unsigned(path) + "?expires=soon&signature=please"


def _bound_elsewhere(path: str) -> str:
    return signed(path, client="192.0.2.1")


REFUSED = [
    _unsigned,
    _only_expires,
    _only_signature,
    _forged,
    _for_another_path,
    _expired,
    _stranger_key,
    _malformed,
    _bound_elsewhere,
]
# Existing and missing files, hidden ones, folders, listings and invalid paths alike.
PATHS = [
    "a.txt",
    "big.bin",
    "missing.txt",
    ".hidden",
    "sub/.env",
    "sub",
    "sub/",
    "",
    "missing/",
    "sub/../a.txt",
    UNICODE_NAME,
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("make_url", REFUSED, ids=lambda f: f.__name__.strip("_"))
def test_without_a_valid_signature_every_path_gets_the_same_403(
    client: FlaskClient, make_url: Any, method: str
) -> None:
    """Checked before the catalog is asked: an existing file, a missing one, a hidden one,
    a folder and an invalid path cannot be told apart."""
    answers = {path: answer(fetch(client, make_url(path), method)) for path in PATHS}
    expected = answers["missing.txt"]
    assert expected[0] == 403
    assert expected[1] == (FORBIDDEN if method == "GET" else b"")
    assert {path: a for path, a in answers.items() if a != expected} == {}


def test_a_signature_for_a_listing_does_not_open_what_is_in_it(client: FlaskClient) -> None:
    """A link covers its exact path, not a prefix: ``sub/`` gives no ``sub/b.txt`` and no
    ``sub/../a.txt``; and a file's link is not its folder-style twin's."""
    listing_query = signed("sub/").partition("?")[2]
    assert fetch(client, f"/files/sub/?{listing_query}").status_code == 200
    for path in ["sub/b.txt", "sub/../a.txt", "sub/deeper/", "sub"]:
        assert fetch(client, f"/files/{path}?{listing_query}").data == FORBIDDEN, path
    file_query = signed("a.txt").partition("?")[2]
    assert fetch(client, f"/files/a.txt?{file_query}").status_code == 200
    assert fetch(client, f"/files/a.txt/?{file_query}").data == FORBIDDEN


def test_a_link_stops_working_when_it_expires(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = signed("a.txt", ttl=60)
    assert fetch(client, url).status_code == 200
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    monkeypatch.setattr(links, "time", SimpleNamespace(time=lambda: expires - 0.5))
    assert fetch(client, url).status_code == 200
    monkeypatch.setattr(links, "time", SimpleNamespace(time=lambda: float(expires)))
    assert fetch(client, url).data == FORBIDDEN


def test_healthz_needs_no_signature(client: FlaskClient) -> None:
    assert fetch(client, "/files/").status_code == 403
    response = fetch(client, "/healthz")
    assert response.status_code == 200
    assert response.data == b"ok\n"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_for_existing_and_missing_files_alike(
    client: FlaskClient, method: str
) -> None:
    """Routing refuses these before any hook or catalog: nothing about the file leaks."""
    existing = answer(fetch(client, "/files/a.txt", method))
    assert existing[0] == 405
    assert answer(fetch(client, "/files/missing.txt", method)) == existing
    assert fetch(client, "/files/a.txt").status_code == 403


# --- a valid link: the file, ranges and conditionals as usual ------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_valid_link_serves_the_file(client: FlaskClient, method: str) -> None:
    response = fetch(client, signed("big.bin"), method)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(BIG_SIZE)
    assert response.data == (BIG if method == "GET" else b"")
    assert fetch(client, "/files/big.bin", method).status_code == 403


def test_a_valid_link_may_carry_other_query_parameters(client: FlaskClient) -> None:
    response = fetch(client, signed("video.mp4") + "&inline=1")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("inline;")
    assert fetch(client, "/files/video.mp4?inline=1").status_code == 403


def test_ranges_work_through_a_valid_link(client: FlaskClient) -> None:
    url = signed("big.bin")
    single = fetch(client, url, headers={"Range": "bytes=100-199"})
    assert single.status_code == 206
    assert single.headers["Content-Range"] == f"bytes 100-199/{BIG_SIZE}"
    assert single.data == BIG[100:200]
    multi = fetch(client, url, headers={"Range": "bytes=0-9,-10"})
    assert multi.status_code == 206
    assert multi.mimetype == "multipart/byteranges"
    assert BIG[:10] in multi.data
    assert BIG[-10:] in multi.data
    unsatisfiable = fetch(client, url, headers={"Range": f"bytes={BIG_SIZE}-"})
    assert unsatisfiable.status_code == 416
    assert fetch(client, "/files/big.bin", headers={"Range": "bytes=100-199"}).data == FORBIDDEN


def test_conditionals_work_through_a_valid_link(client: FlaskClient) -> None:
    url = signed("big.bin")
    etag = fetch(client, url, "HEAD").headers["ETag"]
    assert fetch(client, url, headers={"If-None-Match": etag}).status_code == 304
    assert fetch(client, url, headers={"If-Match": '"other"'}).status_code == 412
    resumed = fetch(client, url, headers={"Range": "bytes=-5", "If-Range": etag})
    assert (resumed.status_code, resumed.data) == (206, BIG[-5:])
    stale = fetch(client, url, headers={"Range": "bytes=-5", "If-Range": '"old"'})
    assert (stale.status_code, len(stale.data)) == (200, BIG_SIZE)
    # Without the signature the same validators earn a 403, never a 304 confirming the ETag.
    assert fetch(client, "/files/big.bin", headers={"If-None-Match": etag}).data == FORBIDDEN


def test_a_folder_link_without_its_slash_still_redirects(client: FlaskClient) -> None:
    """A link for ``sub`` reaches the catalog, which redirects; the listing needs its own
    link (``sub/``), so sign folders with their trailing slash."""
    response = fetch(client, signed("sub"))
    assert (response.status_code, response.headers["Location"]) == (301, "/files/sub/")
    assert fetch(client, "/files/sub").data == FORBIDDEN


# --- the decoded path: every percent-encoding of a name is one link ------------------------


def test_every_percent_encoding_of_the_signed_path_opens_it(client: FlaskClient) -> None:
    query = signed(UNICODE_NAME).partition("?")[2]
    spellings = [
        quote(UNICODE_NAME),  # upper-case hex, as the command prints it
        quote(UNICODE_NAME).lower(),  # lower-case hex
        quote(UNICODE_NAME, safe=""),  # the slash as %2F
        "%64ossier%20%C3%A9t%C3%A9/%C3%BC%20b%23%25.txt",  # an unreserved letter escaped
    ]
    for spelling in spellings:
        response = fetch(client, f"/files/{spelling}?{query}")
        assert (response.status_code, response.data) == (200, b"unicode body"), spelling
        assert fetch(client, f"/files/{spelling}").data == FORBIDDEN, spelling


def test_a_signature_over_the_encoded_spelling_opens_nothing(client: FlaskClient) -> None:
    """Signing ``r%C3%A9`` literally is a different name (sent as ``r%25C3%25A9``)."""
    encoded = quote(UNICODE_NAME)
    query = Signer((KEY.encode(),)).query(encoded, int(time.time()) + 60)
    assert fetch(client, f"/files/{encoded}?{query}").data == FORBIDDEN
    assert fetch(client, f"/files/{quote(encoded)}?{query}").status_code == 404


# --- listings: signed entries ---------------------------------------------------------------


def test_a_signed_listing_signs_its_entries_until_the_same_time(client: FlaskClient) -> None:
    url = signed("")
    listing = fetch(client, url)
    assert listing.status_code == 200
    expires = parse_qs(urlsplit(url).query)["expires"]
    entries = {entry["name"]: entry for entry in listing.get_json()["entries"]}
    assert entries
    for name, entry in entries.items():
        entry_url = urlsplit(entry["url"])
        assert parse_qs(entry_url.query)["expires"] == expires, name
        assert fetch(client, entry_url.path).data == FORBIDDEN, name
        response = fetch(client, entry["url"])
        assert response.status_code == 200, name
        if entry["type"] == "file":
            assert len(response.data) == entry["size"]
    assert fetch(client, entries["big.bin"]["url"]).data == BIG


def test_signed_entries_lead_down_the_tree(client: FlaskClient) -> None:
    root_entries = fetch(client, signed("")).get_json()["entries"]
    folder = next(e for e in root_entries if e["name"] == "dossier été")
    inner = fetch(client, folder["url"]).get_json()["entries"]
    assert [e["name"] for e in inner] == ["ü b#%.txt"]
    assert fetch(client, inner[0]["url"]).data == b"unicode body"
    assert fetch(client, urlsplit(folder["url"]).path).data == FORBIDDEN


# --- key rotation and client binding ---------------------------------------------------------


def test_after_rotation_links_from_the_old_key_still_open(root: Path) -> None:
    old_link = signed("a.txt", keys=(OLD_KEY,))
    with make_app(root, keys=(OLD_KEY,)).test_client() as before:
        assert fetch(before, old_link).status_code == 200
    with make_app(root, keys=(KEY, OLD_KEY)).test_client() as during:
        assert fetch(during, old_link).status_code == 200
        assert fetch(during, signed("a.txt", keys=(KEY,))).status_code == 200
        assert fetch(during, signed("a.txt", keys=(STRANGER_KEY,))).data == FORBIDDEN
    with make_app(root, keys=(KEY,)).test_client() as after:
        assert fetch(after, old_link).data == FORBIDDEN


def test_a_bound_link_opens_only_for_its_client(root: Path) -> None:
    elsewhere = {"REMOTE_ADDR": "192.0.2.9"}
    with make_app(root, signing_bind_client=True).test_client() as client:
        bound = signed("a.txt", client="127.0.0.1")  # the test client's address
        assert fetch(client, bound).status_code == 200
        assert fetch(client, bound, environ_overrides=elsewhere).data == FORBIDDEN
        assert fetch(client, signed("a.txt")).data == FORBIDDEN
        entries = fetch(client, signed("sub/", client="127.0.0.1")).get_json()["entries"]
        assert fetch(client, entries[0]["url"]).status_code == 200
        assert fetch(client, entries[0]["url"], environ_overrides=elsewhere).data == FORBIDDEN


def test_an_unknown_peer_address_cannot_use_a_bound_link(root: Path) -> None:
    """No address (a unix socket without a proxy header) fails closed."""
    with make_app(root, signing_bind_client=True).test_client() as client:
        no_peer = {"REMOTE_ADDR": ""}
        assert fetch(client, signed("a.txt"), environ_overrides=no_peer).data == FORBIDDEN


# --- python -m service.sign -----------------------------------------------------------------


def test_the_command_prints_a_url_that_opens_the_file(
    client: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    url = run_command(capsys, "sub/b.txt", DL_SIGNING_KEY=KEY)
    assert url.startswith("/files/sub/b.txt?expires=")
    response = fetch(client, url)
    assert (response.status_code, response.data) == (200, b"in a folder\n")
    assert fetch(client, "/files/sub/b.txt").data == FORBIDDEN


def test_the_command_signs_with_the_first_key_and_a_base_url(
    root: Path, client: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    url = run_command(
        capsys,
        UNICODE_NAME,
        "--base-url",
        "http://localhost/",
        DL_SIGNING_KEY=f"{KEY},{OLD_KEY}",
    )
    assert url.startswith("http://localhost/files/dossier%20%C3%A9t%C3%A9/%C3%BC%20b%23%25.txt?")
    assert fetch(client, url).data == b"unicode body"
    with make_app(root, keys=(OLD_KEY,)).test_client() as only_the_second_key:
        assert fetch(only_the_second_key, url).data == FORBIDDEN


def test_the_command_link_lives_for_the_ttl(
    client: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sign_command(["a.txt", "--ttl", "90"], {"DL_SIGNING_KEY": KEY}, now=1_000) == 0
    url = capsys.readouterr().out.strip()
    assert "?expires=1090&signature=" in url
    assert fetch(client, url).data == FORBIDDEN  # minted for 1970: long expired
    environ = {"DL_SIGNING_KEY": KEY, "DL_SIGNED_LINK_TTL": "30"}
    assert sign_command(["a.txt"], environ, now=1_000) == 0
    assert "?expires=1030&signature=" in capsys.readouterr().out
    assert sign_command(["a.txt"], {"DL_SIGNING_KEY": KEY}, now=1_000) == 0
    assert "?expires=4600&signature=" in capsys.readouterr().out


def test_the_command_signs_a_listing_and_its_entries_open(
    client: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = fetch(client, run_command(capsys, "sub/", DL_SIGNING_KEY=KEY))
    entries = listing.get_json()["entries"]
    assert fetch(client, entries[0]["url"]).data == b"in a folder\n"
    assert fetch(client, "/files/sub/").data == FORBIDDEN


def test_the_command_binds_a_link_to_a_client(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {"DL_SIGNING_KEY": KEY, "DL_SIGNING_BIND_CLIENT": "1"}
    url = run_command(capsys, "a.txt", "--client", "127.0.0.1", **environ)
    with make_app(root, signing_bind_client=True).test_client() as client:
        assert fetch(client, url).status_code == 200
        other = fetch(client, url, environ_overrides={"REMOTE_ADDR": "192.0.2.9"})
        assert other.data == FORBIDDEN


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["a.txt"], {}, "DL_SIGNING_KEY is not set"),
        (["a.txt"], {"DL_SIGNING_KEY": "tooshort"}, "DL_SIGNING_KEY: key 1 of 1 has 8 char"),
        (["a.txt"], {"DL_SIGNING_KEY": f"{KEY},tooshort"}, "DL_SIGNING_KEY: key 2 of 2"),
        (["/files/a.txt"], {"DL_SIGNING_KEY": KEY}, "without a leading slash"),
        (["a.txt", "--ttl", "0"], {"DL_SIGNING_KEY": KEY}, "--ttl: expected a positive"),
        (["a.txt", "--ttl", "-5"], {"DL_SIGNING_KEY": KEY}, "--ttl: expected a positive"),
        (["a.txt", "--ttl", str(10**13)], {"DL_SIGNING_KEY": KEY}, "--ttl: expected a positive"),
        (["a.txt"], {"DL_SIGNING_KEY": KEY, "DL_SIGNED_LINK_TTL": "x"}, "DL_SIGNED_LINK_TTL: "),
        (
            ["a.txt"],
            {"DL_SIGNING_KEY": KEY, "DL_SIGNING_BIND_CLIENT": "1"},
            "DL_SIGNING_BIND_CLIENT is on: pass --client ADDR",
        ),
        (["a.txt", "--client", "192.0.2.1"], {"DL_SIGNING_KEY": KEY}, "--client needs"),
        (
            ["a.txt", "--client", "two words"],
            {"DL_SIGNING_KEY": KEY, "DL_SIGNING_BIND_CLIENT": "1"},
            "--client: a client address must be",
        ),
    ],
)
def test_the_command_refuses_bad_input_without_printing_a_url_or_a_key(
    capsys: pytest.CaptureFixture[str], argv: list[str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        sign_command(argv, environ)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err
    assert KEY not in err
    assert "tooshort" not in err


# --- folder archives: their own path form --------------------------------------------------


def _signed_archive(folder: str, kind: str = "tar", **kw: Any) -> str:
    """``/files/<folder>?format=tar&expires=...&signature=...`` for ``folder?format=tar``."""
    signer = Signer((KEY.encode(),))
    query = signer.query(f"{folder}?format={kind}", int(time.time()) + 600, kw.get("client"))
    return f"/files/{quote(folder)}?format={kind}&{query}"


@pytest.mark.parametrize("folder", ["sub/", "dossier été/", ""])
def test_an_archive_opens_with_a_link_signed_for_the_archive(
    client: FlaskClient, folder: str
) -> None:
    response = fetch(client, _signed_archive(folder))
    assert response.status_code == 200
    assert response.mimetype == "application/x-tar"


def test_a_listings_link_does_not_open_the_folders_archive(client: FlaskClient) -> None:
    listing = signed("sub/")
    assert fetch(client, listing).status_code == 200
    as_archive = fetch(client, listing + "&format=tar")
    assert (as_archive.status_code, as_archive.data) == (403, FORBIDDEN)


def test_an_archives_link_does_not_open_the_listing_nor_a_file(client: FlaskClient) -> None:
    url = _signed_archive("sub/")
    query = url.partition("&")[2]  # the signature without format=tar
    assert fetch(client, f"/files/sub/?{query}").data == FORBIDDEN
    assert fetch(client, f"/files/sub/?format=json&{query}").data == FORBIDDEN
    assert fetch(client, f"/files/sub/b.txt?{query}").data == FORBIDDEN
    assert (
        fetch(client, _signed_archive("sub/deeper/").replace("sub/deeper/", "sub/")).data
        == FORBIDDEN
    )


def test_one_formats_signature_does_not_open_the_other(client: FlaskClient) -> None:
    tar = _signed_archive("sub/")
    assert fetch(client, tar.replace("format=tar", "format=zip")).data == FORBIDDEN
    zip_url = _signed_archive("sub/", "zip")
    assert fetch(client, zip_url.replace("format=zip", "format=tar")).data == FORBIDDEN
    assert fetch(client, zip_url).status_code == 503  # until its CRC-32s are known
    client.application.extensions["digests"].wait_idle(10)
    response = fetch(client, zip_url)
    assert (response.status_code, response.mimetype) == (200, "application/zip")


def test_a_signed_listing_names_its_archives_signed(client: FlaskClient) -> None:
    document = fetch(client, signed("sub/")).get_json()
    assert document["archives"]["zip"].startswith("/files/sub/?format=zip&expires=")
    url = document["archives"]["tar"]
    assert url.startswith("/files/sub/?format=tar&expires=")
    assert fetch(client, url).status_code == 200


def test_the_sign_command_prints_an_archive_link(
    client: FlaskClient, capsys: pytest.CaptureFixture[str]
) -> None:
    url = run_command(capsys, "dossier été/?format=tar", DL_SIGNING_KEY=KEY)
    assert url.startswith("/files/dossier%20%C3%A9t%C3%A9/?format=tar&expires=")
    response = fetch(client, url)
    assert (response.status_code, response.mimetype) == (200, "application/x-tar")
    capsys.readouterr()  # the access log's line of that request
    root_url = run_command(capsys, "?format=tar", DL_SIGNING_KEY=KEY)
    assert fetch(client, root_url).status_code == 200
    capsys.readouterr()
    zip_url = run_command(capsys, "sub/?format=zip", DL_SIGNING_KEY=KEY)
    assert zip_url.startswith("/files/sub/?format=zip&expires=")
    assert fetch(client, zip_url).status_code != 403


@pytest.mark.parametrize("path", ["a.txt?format=tar", "sub/?format=zip&x=1", "sub/?play=1"])
def test_the_sign_command_refuses_other_queries(
    capsys: pytest.CaptureFixture[str], path: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        sign_command([path], {"DL_SIGNING_KEY": KEY})
    assert exit_info.value.code == 2
    assert "only a folder's archive has a query" in capsys.readouterr().err
