"""GET/HEAD /files/<path> through Flask's test client: files, ranges, conditions, listings."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder, TestResponse

from config import Settings
from service import create_app
from service.web.errors import TruncatedFileError
from tests.app import BIG, BIG_SIZE, build_tree, open_fds

SHA256 = hashlib.sha256(BIG).hexdigest()

CHUNK = 4096


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return build_tree(folder)


def make_app(root: Path, **settings: Any) -> Flask:
    return create_app(Settings(data_root=root, chunk_size=CHUNK, **settings))


@pytest.fixture
def app(root: Path) -> Flask:
    return make_app(root)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as test_client:
        # Warm up: lazy imports and tables load on a first request, not in a leak count;
        # the digest thread opens its cache and hashes these files in the background.
        for path in ("/files/a.txt", "/files/big.bin"):
            with test_client.get(path) as response:
                response.get_data()
        assert app.extensions["digests"].wait_idle(10)
        yield test_client


def get(client: FlaskClient, path: str, method: str = "GET", **headers: str) -> TestResponse:
    """A fully read, closed response, asked as an API client: a listing is JSON."""
    headers = {"Accept": "application/json", **headers}
    with client.open(path, method=method, headers=headers) as response:
        response.get_data()
    return response


def etag_of(client: FlaskClient, path: str = "/files/big.bin") -> str:
    return get(client, path, "HEAD").headers["ETag"]


# --- 200 ---------------------------------------------------------------------------------


def test_a_file_is_sent_whole_with_its_representation_headers(client: FlaskClient) -> None:
    response = get(client, "/files/big.bin")
    assert response.status == "200 OK"
    assert response.data == BIG
    headers = response.headers
    assert headers["Content-Length"] == str(BIG_SIZE)
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["ETag"] == f'"{BIG_SIZE:x}-{1_700_000_000_000_000_000:x}"'
    assert headers["Last-Modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"] == (
        "attachment; filename=\"big.bin\"; filename*=UTF-8''big.bin"
    )
    assert "Transfer-Encoding" not in headers


def test_a_nested_file_is_served(client: FlaskClient) -> None:
    response = get(client, "/files/sub/deeper/c.txt")
    assert response.status_code == 200
    assert response.data == b"deeper\n"
    assert response.headers["Content-Type"] == "text/plain"


def test_the_content_type_follows_the_extension(client: FlaskClient) -> None:
    assert get(client, "/files/video.mp4").headers["Content-Type"] == "video/mp4"


def test_an_empty_file_is_a_200_with_length_zero_even_with_a_range(client: FlaskClient) -> None:
    for headers in ({}, {"Range": "bytes=0-0"}):
        response = get(client, "/files/empty.txt", **headers)
        assert response.status_code == 200
        assert response.data == b""
        assert response.headers["Content-Length"] == "0"


def test_a_unicode_name_is_served_with_an_rfc_8187_filename(
    root: Path, client: FlaskClient
) -> None:
    (root / "résumé.txt").write_bytes(b"cv")
    response = get(client, "/files/r%C3%A9sum%C3%A9.txt")
    assert response.status_code == 200
    assert response.data == b"cv"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"resume.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
    )


def test_the_body_streams_in_chunks_of_the_configured_size(client: FlaskClient) -> None:
    with client.get("/files/big.bin", buffered=False) as response:
        chunks = [chunk for chunk in response.response if chunk]
    assert b"".join(chunks) == BIG
    assert max(map(len, chunks)) == CHUNK
    assert len(chunks) == -(-BIG_SIZE // CHUNK)


# --- HEAD --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Range": "bytes=10-19"},
        {"Range": "bytes=999999-"},
        {"If-Match": '"nope"'},
        {"If-None-Match": "*"},
        {"Range": "bytes=0-0", "If-Range": '"other"'},
    ],
)
def test_head_has_exactly_the_header_fields_of_get_and_no_body(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    got = get(client, "/files/big.bin", **headers)
    head = get(client, "/files/big.bin", "HEAD", **headers)
    assert head.status == got.status

    def fields(response: TestResponse) -> list[tuple[str, str]]:
        # The digest is hashed in the background and may become known between the two.
        skip = {"X-Request-Id", "Repr-Digest"}
        return sorted((k, v) for k, v in response.headers.items() if k not in skip)

    assert fields(head) == fields(got)
    assert head.data == b""


def test_head_of_a_multipart_answer_matches_get_but_for_the_random_boundary(
    client: FlaskClient,
) -> None:
    ranges = {"Range": "bytes=0-9,5000-5009"}
    got = get(client, "/files/big.bin", **ranges)
    head = get(client, "/files/big.bin", "HEAD", **ranges)
    assert head.status == got.status == "206 Partial Content"
    assert head.headers["Content-Length"] == got.headers["Content-Length"]
    assert head.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert head.data == b""


def test_head_closes_the_file_at_once_without_reading_it(client: FlaskClient) -> None:
    before = open_fds()
    with client.head("/files/big.bin") as response:
        assert open_fds() == before  # not even held while the response is open
        assert response.get_data() == b""
        assert response.headers["Content-Length"] == str(BIG_SIZE)
    assert open_fds() == before


# --- 206 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=10-19", 10, 20),
        ("bytes=0-0", 0, 1),
        ("bytes=99990-", 99_990, BIG_SIZE),
        ("bytes=-25", BIG_SIZE - 25, BIG_SIZE),
        ("bytes=5000-999999999", 5000, BIG_SIZE),
        ("bytes=0-", 0, BIG_SIZE),
    ],
)
def test_a_single_range_is_206_with_its_content_range(
    client: FlaskClient, header: str, start: int, stop: int
) -> None:
    response = get(client, "/files/big.bin", Range=header)
    assert response.status == "206 Partial Content"
    assert response.data == BIG[start:stop]
    assert response.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{BIG_SIZE}"
    assert response.headers["Content-Length"] == str(stop - start)
    assert response.headers["Content-Type"] == "application/octet-stream"


def parse_multipart(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    delimiter = b"--" + boundary.encode()
    assert body.startswith(delimiter + b"\r\n")
    assert body.endswith(b"\r\n" + delimiter + b"--\r\n")
    inner = body[len(delimiter) + 2 : -(len(delimiter) + 6)]
    parts = []
    for raw in inner.split(b"\r\n" + delimiter + b"\r\n"):
        head, _, content = raw.partition(b"\r\n\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n"))
        parts.append((fields, content))
    return parts


def test_several_ranges_are_a_multipart_byteranges_body_in_request_order(
    client: FlaskClient,
) -> None:
    response = get(client, "/files/big.bin", Range="bytes=5000-5099, 0-9, -10")
    assert response.status == "206 Partial Content"
    assert "Content-Range" not in response.headers
    match = re.fullmatch(
        r"multipart/byteranges; boundary=([0-9a-f]{32})", response.headers["Content-Type"]
    )
    assert match
    assert int(response.headers["Content-Length"]) == len(response.data)
    parts = parse_multipart(response.data, match.group(1))
    assert [content for _, content in parts] == [BIG[5000:5100], BIG[:10], BIG[-10:]]
    assert [fields["Content-Range"] for fields, _ in parts] == [
        f"bytes 5000-5099/{BIG_SIZE}",
        f"bytes 0-9/{BIG_SIZE}",
        f"bytes {BIG_SIZE - 10}-{BIG_SIZE - 1}/{BIG_SIZE}",
    ]
    assert all(fields["Content-Type"] == "application/octet-stream" for fields, _ in parts)


def test_each_multipart_answer_has_a_fresh_boundary(client: FlaskClient) -> None:
    types = {
        get(client, "/files/big.bin", Range="bytes=0-1,9000-9001").headers["Content-Type"]
        for _ in range(3)
    }
    assert len(types) == 3


def test_nearby_ranges_are_merged_into_one_part(client: FlaskClient) -> None:
    response = get(client, "/files/big.bin", Range="bytes=0-9,20-29")
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 0-29/{BIG_SIZE}"
    assert response.data == BIG[:30]


def test_more_parts_than_max_ranges_get_the_whole_file(root: Path) -> None:
    with make_app(root, max_ranges=2).test_client() as client:
        response = get(client, "/files/big.bin", Range="bytes=0-0,1000-1000,2000-2000")
    assert response.status_code == 200
    assert response.data == BIG


def test_an_invalid_range_is_ignored_with_a_200(client: FlaskClient) -> None:
    for header in ("bytes=9-1", "items=0-1", "bytes=abc", "bytes="):
        response = get(client, "/files/a.txt", Range=header)
        assert response.status_code == 200
        assert response.data == b"hello, world\n"


# --- conditional requests ----------------------------------------------------------------


def test_a_matching_if_none_match_is_304_with_etag_and_cache_control(
    client: FlaskClient,
) -> None:
    etag = etag_of(client)
    response = get(client, "/files/big.bin", **{"If-None-Match": etag})
    assert response.status == "304 Not Modified"
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert response.headers["Cache-Control"] == "no-cache"
    assert "Content-Range" not in response.headers
    assert "Last-Modified" not in response.headers


def test_a_weak_if_none_match_and_an_if_modified_since_also_give_304(
    client: FlaskClient,
) -> None:
    etag = etag_of(client)
    assert get(client, "/files/big.bin", **{"If-None-Match": "W/" + etag}).status_code == 304
    since = {"If-Modified-Since": "Tue, 14 Nov 2023 22:13:20 GMT"}
    assert get(client, "/files/big.bin", **since).status_code == 304
    earlier = {"If-Modified-Since": "Tue, 14 Nov 2023 22:13:19 GMT"}
    assert get(client, "/files/big.bin", **earlier).status_code == 200


def test_a_failed_if_match_is_412_with_a_short_text_body(client: FlaskClient) -> None:
    response = get(client, "/files/big.bin", **{"If-Match": '"not-the-etag"'})
    assert response.status == "412 Precondition Failed"
    assert response.data == b"Precondition Failed\n"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Length"] == str(len(response.data))


def test_an_old_if_unmodified_since_is_412(client: FlaskClient) -> None:
    response = get(
        client, "/files/big.bin", **{"If-Unmodified-Since": "Mon, 13 Nov 2023 00:00:00 GMT"}
    )
    assert response.status_code == 412


def test_a_matching_if_match_lets_the_range_through(client: FlaskClient) -> None:
    etag = etag_of(client)
    response = get(client, "/files/big.bin", Range="bytes=0-3", **{"If-Match": etag})
    assert response.status_code == 206
    assert response.data == BIG[:4]


def test_if_range_with_the_current_etag_gives_206_and_a_stale_one_the_whole_file(
    client: FlaskClient,
) -> None:
    etag = etag_of(client)
    fresh = get(client, "/files/big.bin", Range="bytes=0-3", **{"If-Range": etag})
    assert fresh.status_code == 206
    stale = get(client, "/files/big.bin", Range="bytes=0-3", **{"If-Range": '"old"'})
    assert stale.status_code == 200
    assert stale.data == BIG


def test_an_unsatisfiable_range_is_416_with_the_current_length(client: FlaskClient) -> None:
    response = get(client, "/files/big.bin", Range=f"bytes={BIG_SIZE}-")
    assert response.status == "416 Range Not Satisfiable"
    assert response.headers["Content-Range"] == f"bytes */{BIG_SIZE}"
    assert response.data == b"Range Not Satisfiable\n"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_a_file_changed_after_the_etag_was_taken_no_longer_matches(
    root: Path, client: FlaskClient
) -> None:
    etag = etag_of(client, "/files/a.txt")
    (root / "a.txt").write_bytes(b"changed, and longer than before\n")
    response = get(client, "/files/a.txt", **{"If-None-Match": etag})
    assert response.status_code == 200
    assert response.data == b"changed, and longer than before\n"
    assert response.headers["ETag"] != etag


# --- listings ----------------------------------------------------------------------------


def test_the_root_listing_is_json_with_files_and_folders(client: FlaskClient) -> None:
    response = get(client, "/files/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-cache"
    document = response.get_json()
    assert document["path"] == "/files/"
    entries = {entry["name"]: entry for entry in document["entries"]}
    assert list(entries) == ["a.txt", "big.bin", "empty.txt", "sub", "video.mp4"]
    assert entries["sub"] == {
        "name": "sub",
        "type": "folder",
        "url": "/files/sub/",
        "mtime": entries["sub"]["mtime"],
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entries["sub"]["mtime"])
    assert entries["big.bin"].pop("sha256") == SHA256  # the client fixture had it hashed
    assert entries["big.bin"] == {
        "name": "big.bin",
        "type": "file",
        "url": "/files/big.bin",
        "mtime": "2023-11-14T22:13:20Z",
        "size": BIG_SIZE,
        "etag": etag_of(client),
        "meta4": "/files/big.bin?format=meta4",
    }


def test_a_sub_folder_listing_has_its_own_urls_and_leaves_dotfiles_out(
    client: FlaskClient,
) -> None:
    document = get(client, "/files/sub/").get_json()
    assert document["path"] == "/files/sub/"
    assert [(e["name"], e["type"], e["url"]) for e in document["entries"]] == [
        ("b.txt", "file", "/files/sub/b.txt"),
        ("deeper", "folder", "/files/sub/deeper/"),
    ]


def test_listing_urls_are_quoted_and_lead_back_to_the_file(root: Path, client: FlaskClient) -> None:
    (root / "a b#?%.txt").write_bytes(b"odd name")
    (root / "dossier été").mkdir()
    entries = {e["name"]: e for e in get(client, "/files/").get_json()["entries"]}
    assert entries["a b#?%.txt"]["url"] == "/files/a%20b%23%3F%25.txt"
    assert entries["dossier été"]["url"] == "/files/dossier%20%C3%A9t%C3%A9/"
    assert get(client, entries["a b#?%.txt"]["url"]).data == b"odd name"
    assert get(client, entries["dossier été"]["url"]).get_json()["entries"] == []


def test_the_listing_etag_is_the_files_etag(client: FlaskClient) -> None:
    for entry in get(client, "/files/").get_json()["entries"]:
        if entry["type"] == "file":
            assert entry["etag"] == etag_of(client, entry["url"])


def test_dotfiles_are_listed_and_served_with_serve_hidden(root: Path) -> None:
    with make_app(root, serve_hidden=True).test_client() as client:
        names = [e["name"] for e in get(client, "/files/").get_json()["entries"]]
        assert names[0] == ".hidden"
        assert get(client, "/files/.hidden").data == b"secret"
        assert get(client, "/files/sub/.env").data == b"TOKEN=1"


def test_head_of_a_listing_has_no_body(client: FlaskClient) -> None:
    response = get(client, "/files/sub/", "HEAD")
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Type"] == "application/json"


def test_a_file_asked_for_as_a_folder_is_404(client: FlaskClient) -> None:
    assert get(client, "/files/a.txt/").status_code == 404


@pytest.mark.parametrize("path", ["/files/.git/", "/files/missing/", "/files/sub/.env/"])
def test_listing_a_hidden_or_missing_folder_is_404(client: FlaskClient, path: str) -> None:
    assert get(client, path).status_code == 404


# --- redirects and errors ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_folder_without_its_slash_redirects_to_the_listing(
    client: FlaskClient, method: str
) -> None:
    response = get(client, "/files/sub", method)
    assert response.status_code == 301
    assert response.headers["Location"] == "/files/sub/"
    nested = get(client, "/files/sub/deeper", method)
    assert nested.headers["Location"] == "/files/sub/deeper/"


@pytest.mark.parametrize(
    "path",
    [
        "/files/../a.txt",
        "/files/sub/../a.txt",
        "/files/sub/..",
        "/files/./a.txt",
        "/files/a%00.txt",
        "/files/sub%5Cb.txt",
        "/files/../",
    ],
)
def test_traversal_and_odd_segments_are_400(client: FlaskClient, path: str) -> None:
    response = get(client, path)
    assert response.status_code == 400
    assert response.data == b"Bad Request: invalid path\n"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_a_missing_file_is_a_short_plain_404(client: FlaskClient) -> None:
    response = get(client, "/files/no-such-file.txt")
    assert response.status_code == 404
    assert response.data == b"Not Found\n"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert b"Traceback" not in response.data
    assert b"no-such-file" not in response.data


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "PROPFIND"])
@pytest.mark.parametrize("path", ["/files/a.txt", "/files/", "/files/sub/", "/files/missing"])
def test_other_methods_are_405_allowing_get_head_and_options(
    client: FlaskClient, method: str, path: str
) -> None:
    response = get(client, path, method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.data == b"Method Not Allowed\n"


# --- settings that shape the answer ------------------------------------------------------


@pytest.mark.parametrize(("query", "kind"), [("?inline=1", "inline"), ("?inline=true", "inline")])
def test_the_inline_query_asks_for_inline_disposition(
    client: FlaskClient, query: str, kind: str
) -> None:
    response = get(client, "/files/video.mp4" + query)
    assert response.headers["Content-Disposition"].startswith(kind + "; filename=")


@pytest.mark.parametrize("query", ["", "?inline=0", "?inline=no", "?inline="])
def test_without_a_true_inline_query_files_are_attachments(client: FlaskClient, query: str) -> None:
    response = get(client, "/files/video.mp4" + query)
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")


def test_the_inline_setting_makes_every_file_inline(root: Path) -> None:
    with make_app(root, inline=True).test_client() as client:
        for path in ("/files/video.mp4", "/files/a.txt", "/files/big.bin?inline=0"):
            assert get(client, path).headers["Content-Disposition"].startswith("inline;")


def test_cache_control_comes_from_the_settings(root: Path) -> None:
    with make_app(root, cache_control="public, max-age=3600").test_client() as client:
        etag = etag_of(client)
        answers = [
            get(client, "/files/big.bin"),
            get(client, "/files/big.bin", "HEAD"),
            get(client, "/files/big.bin", Range="bytes=0-0"),
            get(client, "/files/big.bin", **{"If-None-Match": etag}),
        ]
        assert [r.headers["Cache-Control"] for r in answers] == ["public, max-age=3600"] * 4
        # A listing changes with every upload: always revalidated.
        assert get(client, "/files/").headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, "200 OK"),
        ({"Range": "bytes=0-0"}, "206 Partial Content"),
        ({"Range": "bytes=0-0,9000-9000"}, "206 Partial Content"),
        ({"If-None-Match": "*"}, "304 Not Modified"),
        ({"If-Match": '"x"'}, "412 Precondition Failed"),
        ({"Range": "bytes=999999-"}, "416 Range Not Satisfiable"),
    ],
)
def test_the_status_line_carries_the_standard_reason_phrase(
    client: FlaskClient, headers: dict[str, str], status: str
) -> None:
    assert get(client, "/files/big.bin", **headers).status == status


def test_the_max_ranges_setting_is_honoured(root: Path) -> None:
    with make_app(root, max_ranges=3).test_client() as client:
        three = get(client, "/files/big.bin", Range="bytes=0-0,1000-1000,2000-2000")
        four = get(client, "/files/big.bin", Range="bytes=0-0,1000-1000,2000-2000,3000-3000")
    assert three.status_code == 206
    assert four.status_code == 200


# --- descriptors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        ("GET", {}, 200),
        ("GET", {"Range": "bytes=100-199"}, 206),
        ("GET", {"Range": "bytes=0-9,5000-5009"}, 206),
        ("GET", {"If-None-Match": "*"}, 304),
        ("GET", {"If-Match": '"x"'}, 412),
        ("GET", {"Range": "bytes=999999-"}, 416),
        ("HEAD", {}, 200),
        ("HEAD", {"Range": "bytes=0-0"}, 206),
    ],
)
def test_two_hundred_requests_leave_no_descriptor_open(
    client: FlaskClient, method: str, headers: dict[str, str], status: int
) -> None:
    before = open_fds()
    for _ in range(200):
        assert get(client, "/files/big.bin", method, **headers).status_code == status
    assert open_fds() == before


def test_errors_and_listings_leave_no_descriptor_open(client: FlaskClient) -> None:
    before = open_fds()
    for path in ["/files/", "/files/sub/", "/files/sub", "/files/missing", "/files/../x"]:
        for _ in range(20):
            get(client, path)
    assert open_fds() == before


def test_a_response_closed_before_its_body_is_read_closes_the_file(
    client: FlaskClient,
) -> None:
    before = open_fds()
    with client.get("/files/big.bin", buffered=False) as response:
        assert response.status_code == 200
        assert open_fds() == before + 1
    assert open_fds() == before


def test_a_body_the_server_closes_before_iterating_it_still_closes_the_file(
    app: Flask, client: FlaskClient
) -> None:
    """The test client always pulls a first chunk; a WSGI server need not (e.g. on a reset)."""
    statuses: list[str] = []
    environ = EnvironBuilder(path="/files/big.bin").get_environ()
    before = open_fds()
    app_iter = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    assert statuses == ["200 OK"]
    assert open_fds() == before + 1
    app_iter.close()  # type: ignore[attr-defined]
    assert open_fds() == before


def test_a_response_closed_after_part_of_its_body_closes_the_file(
    client: FlaskClient,
) -> None:
    before = open_fds()
    with client.get("/files/big.bin", buffered=False) as response:
        body = iter(response.response)
        received = b""
        while len(received) < 3 * CHUNK:
            received += next(body)
        assert received == BIG[: len(received)]
        assert open_fds() == before + 1
    assert open_fds() == before


def test_a_file_truncated_mid_download_raises_instead_of_sending_short(
    root: Path, client: FlaskClient
) -> None:
    before = open_fds()
    with client.get("/files/big.bin", buffered=False) as response:
        assert response.headers["Content-Length"] == str(BIG_SIZE)
        (root / "big.bin").write_bytes(BIG[:1000])
        with pytest.raises(TruncatedFileError):
            response.get_data()
    assert open_fds() == before


def test_a_file_replaced_after_the_headers_still_sends_the_opened_version(
    root: Path, client: FlaskClient
) -> None:
    with client.get("/files/big.bin", buffered=False) as response:
        replacement = root / "big.bin.tmp"
        replacement.write_bytes(b"new version")
        replacement.replace(root / "big.bin")
        assert response.get_data() == BIG
    assert get(client, "/files/big.bin").data == b"new version"


# --- mounted under a prefix (SCRIPT_NAME) ------------------------------------------------


def test_under_a_prefix_listing_urls_and_the_folder_redirect_keep_the_prefix(
    client: FlaskClient,
) -> None:
    with client.get("/files/sub", base_url="http://localhost/dl") as redirect:
        assert redirect.status_code == 301
        assert redirect.headers["Location"] == "/dl/files/sub/"
    with client.get("/files/sub/?format=json", base_url="http://localhost/dl") as listing:
        document = listing.get_json()
    assert document["path"] == "/dl/files/sub/"
    assert [e["url"] for e in document["entries"]] == [
        "/dl/files/sub/b.txt",
        "/dl/files/sub/deeper/",
    ]


def test_the_root_folder_without_its_slash_redirects_like_any_folder(
    client: FlaskClient,
) -> None:
    response = client.get("/files")
    assert response.status == "301 Moved Permanently"
    assert response.headers["Location"] == "/files/"
    assert response.data == b"Moved Permanently\n"
    assert response.mimetype == "text/plain"
