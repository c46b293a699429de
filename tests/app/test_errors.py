"""Every error is a short text/plain answer that never echoes the request or a traceback."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from config import Settings
from service import create_app
from service.storage.catalog import Catalog
from service.web.errors import (
    BadPathError,
    CatalogError,
    ForbiddenError,
    IsFolderError,
    NotFoundError,
    TruncatedFileError,
    text_response,
)
from tests.app import build_tree, open_fds

TEXT = "text/plain; charset=utf-8"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return build_tree(folder)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside.txt"
    path.write_bytes(b"not for you")
    return path


@pytest.fixture
def app(root: Path) -> Flask:
    return create_app(Settings(data_root=root))


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as test_client:
        yield test_client


def fetch(client: FlaskClient, path: str, method: str = "GET") -> TestResponse:
    # As an API client: a listing is JSON.
    with client.open(path, method=method, headers={"Accept": "application/json"}) as response:
        response.get_data()
    return response


def assert_short_text(response: TestResponse, status: int, body: bytes) -> None:
    assert response.status_code == status
    assert response.data == body
    assert response.headers["Content-Type"] == TEXT
    assert response.headers["Content-Length"] == str(len(body))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert b"Traceback" not in response.data


# --- the error classes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (BadPathError, 400, "Bad Request: invalid path"),
        (NotFoundError, 404, "Not Found"),
        (ForbiddenError, 403, "Forbidden"),
        (IsFolderError, 301, "Moved Permanently"),
        (CatalogError, 500, "Internal Server Error"),
    ],
)
def test_each_catalog_error_carries_its_status_and_a_one_line_message(
    error: type[CatalogError], status: int, message: str
) -> None:
    assert issubclass(error, CatalogError)
    assert (error.status, error.message) == (status, message)
    assert "\n" not in error.message


def test_a_truncated_file_is_not_a_catalog_error_so_no_handler_answers_it() -> None:
    # It must reach the server, which aborts the connection instead of sending a short body.
    assert not issubclass(TruncatedFileError, CatalogError)


def test_text_response_is_one_line_of_plain_text_with_nosniff(app: Flask) -> None:
    with app.test_request_context():
        response = text_response(418, "I'm a teapot")
    assert response.status_code == 418
    assert response.get_data() == b"I'm a teapot\n"
    assert response.headers["Content-Type"] == TEXT
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- 404 ---------------------------------------------------------------------------------


def unique_free(response: TestResponse) -> list[tuple[str, str]]:
    """The header fields without X-Request-Id, which is new for every request."""
    return [(k, v) for k, v in response.headers.items() if k != "X-Request-Id"]


def test_missing_hidden_outside_and_special_files_all_read_the_same(
    root: Path, outside: Path, client: FlaskClient
) -> None:
    (root / "escape.txt").symlink_to(outside)
    (root / "to-hidden").symlink_to(".hidden")
    (root / "dangling").symlink_to("nowhere")
    (root / "null").symlink_to("/dev/null")
    os.mkfifo(root / "pipe")
    paths = [
        "/files/missing.txt",
        "/files/.hidden",
        "/files/sub/.env",
        "/files/escape.txt",
        "/files/to-hidden",
        "/files/dangling",
        "/files/null",
        "/files/pipe",
        "/files/" + "x" * 300,
        "/files/" + "/".join(["abcdefgh"] * 600),
        "/files/a.txt/below",
    ]
    answers = [fetch(client, path) for path in paths]
    for response in answers:
        assert_short_text(response, 404, b"Not Found\n")
    # Identical but for the request's own id.
    assert len({tuple(sorted(unique_free(r))) for r in answers}) == 1


def test_a_device_node_is_404(root: Path, client: FlaskClient) -> None:
    try:
        os.mknod(root / "device", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except OSError as error:
        pytest.skip(f"cannot create a device node here: {error}")
    assert_short_text(fetch(client, "/files/device"), 404, b"Not Found\n")


def test_a_fifo_is_404_without_blocking_even_listed_from_its_folder(
    root: Path, client: FlaskClient
) -> None:
    os.mkfifo(root / "sub" / "pipe")
    assert_short_text(fetch(client, "/files/sub/pipe"), 404, b"Not Found\n")
    names = [e["name"] for e in fetch(client, "/files/sub/").get_json()["entries"]]
    assert "pipe" not in names


def test_an_outside_symlink_is_served_only_when_the_setting_allows_it(
    root: Path, outside: Path
) -> None:
    (root / "escape.txt").symlink_to(outside)
    allowed = create_app(Settings(data_root=root, allow_outside_symlinks=True))
    with allowed.test_client() as client:
        assert fetch(client, "/files/escape.txt").data == b"not for you"


def test_an_unknown_route_is_a_short_plain_404(client: FlaskClient) -> None:
    for path in ("/nothing", "/healthz/extra", "/index.html"):
        assert_short_text(fetch(client, path), 404, b"Not Found\n")


def test_error_bodies_never_echo_the_request_path(client: FlaskClient) -> None:
    marker = "zz-marker-zz"
    for path, method in [
        (f"/files/{marker}", "GET"),
        (f"/files/.{marker}", "GET"),
        (f"/files/../{marker}", "GET"),
        (f"/files/{marker}", "POST"),
        (f"/{marker}", "GET"),
    ]:
        response = fetch(client, path, method)
        assert response.status_code >= 400
        assert marker.encode() not in response.data
        assert all(marker not in value for _, value in response.headers.items())


# --- 400 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/files/..", "/files/sub/../../x", "/files/./x", "/files/a%00b", "/files/a%5Cb"]
)
def test_bad_paths_are_a_short_400(client: FlaskClient, path: str) -> None:
    assert_short_text(fetch(client, path), 400, b"Bad Request: invalid path\n")


# --- 403 ---------------------------------------------------------------------------------


def slow_path_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every open takes the catalog's full path, as for a name not in the kernel's
    dentry cache (the on-loop ``openat2`` path does not go through ``os.open``)."""
    monkeypatch.setattr(Catalog, "open_cached", lambda self, url_path: None)


def test_a_file_the_service_may_not_open_is_403(
    root: Path, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_path_opens(monkeypatch)
    real_open = os.open

    def refuse(path: object, *args: object, **kwargs: object) -> int:
        if str(path).startswith(str(root)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse)
    before = open_fds()
    assert_short_text(fetch(client, "/files/a.txt"), 403, b"Forbidden\n")
    assert open_fds() == before


def test_eacces_from_stat_is_403(
    root: Path, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_path_opens(monkeypatch)
    real_stat = os.stat

    def refuse(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path) == str(root / "sub" / "b.txt"):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", refuse)
    monkeypatch.setattr(os, "lstat", refuse)
    assert_short_text(fetch(client, "/files/sub/b.txt"), 403, b"Forbidden\n")


def test_a_folder_the_service_may_not_read_is_403(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> object:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "scandir", refuse)
    assert_short_text(fetch(client, "/files/sub/"), 403, b"Forbidden\n")


# --- 301 ---------------------------------------------------------------------------------


def test_the_folder_redirect_is_short_plain_text_with_a_relative_location(
    client: FlaskClient,
) -> None:
    response = fetch(client, "/files/sub")
    assert_short_text(response, 301, b"Moved Permanently\n")
    assert response.headers["Location"] == "/files/sub/"


def test_the_folder_redirect_location_is_percent_encoded(root: Path, client: FlaskClient) -> None:
    (root / "my dir é").mkdir()
    response = fetch(client, "/files/my%20dir%20%C3%A9")
    assert response.status_code == 301
    assert response.headers["Location"] == "/files/my%20dir%20%C3%A9/"
    assert fetch(client, response.headers["Location"]).status_code == 200


def test_the_data_root_url_is_its_listing_not_a_redirect(client: FlaskClient) -> None:
    assert fetch(client, "/files/").status_code == 200


# --- 405 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_a_refused_method_is_a_short_405_listing_get_head_and_options(
    client: FlaskClient, method: str
) -> None:
    response = fetch(client, "/files/a.txt", method)
    assert_short_text(response, 405, b"Method Not Allowed\n")
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_the_allow_header_is_the_same_in_every_process(client: FlaskClient) -> None:
    # Werkzeug builds it from a set, whose order depends on PYTHONHASHSEED: it is sorted.
    assert fetch(client, "/healthz", "POST").headers["Allow"] == "GET, HEAD, OPTIONS"


# --- 500 ---------------------------------------------------------------------------------


def test_an_unexpected_error_is_a_short_500_without_details(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: Catalog, url_path: str) -> object:
        raise RuntimeError("boom at /very/secret/path")

    monkeypatch.setattr(Catalog, "open_file", explode)
    slow_path_opens(monkeypatch)
    response = fetch(client, "/files/a.txt")
    assert_short_text(response, 500, b"Internal Server Error\n")
    assert b"secret" not in response.data
    assert b"boom" not in response.data


def test_a_failure_while_planning_closes_the_opened_file(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> object:
        raise RuntimeError("planning failed")

    fetch(client, "/files/a.txt")  # warm up
    assert client.application.extensions["digests"].wait_idle(10)  # hashed in the background
    monkeypatch.setattr("service.web.views.plan_response", explode)
    before = open_fds()
    for _ in range(20):
        assert fetch(client, "/files/a.txt").status_code == 500
    assert open_fds() == before
