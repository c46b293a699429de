"""GET /healthz: 200 while the data root can be reached, 503 when it cannot."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from config import Settings
from service import create_app


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def app(root: Path) -> Flask:
    return create_app(Settings(data_root=root))


def probe(app: Flask, method: str = "GET") -> TestResponse:
    with app.test_client() as client, client.open("/healthz", method=method) as response:
        response.get_data()
    return response


def test_a_reachable_data_root_is_200_ok_and_never_cached(app: Flask) -> None:
    response = probe(app)
    assert response.status_code == 200
    assert response.data == b"ok\n"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_head_answers_the_same_without_a_body(app: Flask) -> None:
    response = probe(app, "HEAD")
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Cache-Control"] == "no-store"


def test_a_data_root_removed_after_start_is_503(app: Flask, root: Path) -> None:
    root.rmdir()
    response = probe(app)
    assert response.status_code == 503
    assert response.data == b"data root unavailable: No such file or directory\n"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_a_data_root_removed_with_its_files_is_503(root: Path) -> None:
    (root / "file.bin").write_bytes(b"x")
    app = create_app(Settings(data_root=root))
    shutil.rmtree(root)
    assert probe(app).status_code == 503


def test_health_recovers_when_the_data_root_comes_back(app: Flask, root: Path) -> None:
    root.rmdir()
    assert probe(app).status_code == 503
    root.mkdir()
    assert probe(app).status_code == 200


def test_an_unreadable_data_root_is_503(
    app: Flask, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_stat = os.stat

    def refuse(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path) == str(root):
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", refuse)
    assert probe(app).status_code == 503


def test_the_health_check_does_not_depend_on_the_files_routes(app: Flask, root: Path) -> None:
    # Listing a removed root fails (404), but health has its own, simpler answer.
    root.rmdir()
    with app.test_client() as client, client.get("/files/") as listing:
        assert listing.status_code == 404
    assert probe(app).status_code == 503


def test_other_methods_on_healthz_are_405(app: Flask) -> None:
    response = probe(app, "POST")
    assert response.status_code == 405
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
