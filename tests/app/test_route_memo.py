"""Routing from memory (service.web.flaskapp): a request bound or matched from a memo
gets exactly what Werkzeug would give it, whatever came before it."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, request, url_for
from werkzeug.test import Client

from service.web import flaskapp
from service.web.flaskapp import DownloadFlask


def build(kind: type[Flask]) -> Flask:
    app = kind(__name__, static_folder=None)

    @app.get("/files/<path:name>")
    def file(name: str) -> dict[str, Any]:
        args = request.view_args or {}
        seen = dict(args)
        args["name"] = "edited by the view"  # must not reach the next request
        return {
            "name": name,
            "seen": seen,
            "host": request.host,
            "self": url_for("file", name=name, _external=True),
            "rule": str(request.url_rule),
        }

    @app.get("/folder/")
    def folder() -> str:
        return "folder"

    return app


@pytest.fixture
def app() -> Flask:
    return build(DownloadFlask)


def get(app: Flask, path: str, **environ: Any) -> Any:
    return Client(app).get(path, environ_overrides=environ)


def test_a_remembered_match_gives_each_request_its_own_view_args(app: Flask) -> None:
    for _ in range(3):
        answer = get(app, "/files/a%20b/c.bin").get_json()
        assert answer["name"] == "a b/c.bin"
        assert answer["seen"] == {"name": "a b/c.bin"}
        assert answer["rule"] == "/files/<path:name>"
    assert len(app._matches) == 1  # type: ignore[attr-defined]


BINDINGS = [
    {"HTTP_HOST": "one.example:8000"},
    {"HTTP_HOST": "Two.Example"},
    {"HTTP_HOST": "two.example:80"},
    {"HTTP_HOST": "two.example:443", "wsgi.url_scheme": "https"},
    {"HTTP_HOST": "two.example"},
    {"HTTP_HOST": "two.example", "wsgi.url_scheme": "https"},
    {"HTTP_HOST": "two.example", "SCRIPT_NAME": "/dl"},
    {"HTTP_HOST": "b\xc3\xbccher.example"},  # UTF-8 bytes, as a WSGI server passes them
    {"SERVER_NAME": "by-name.example", "SERVER_PORT": "8080"},
]


def test_the_binding_follows_host_scheme_and_script_root(app: Flask) -> None:
    """Answer for answer what Flask's own binding gives, before and after the memo."""
    plain = build(Flask)
    for _ in range(2):  # the second round is bound from memory
        for environ in BINDINGS:
            path = "/files/x%C3%A9"
            answer = get(app, path, **environ)
            expected = get(plain, path, **environ)
            assert (answer.status, answer.get_data()) == (expected.status, expected.get_data())
    mounted = get(app, "/files/x", HTTP_HOST="two.example", SCRIPT_NAME="/dl").get_json()
    assert mounted["self"] == "http://two.example/dl/files/x"


def test_a_failed_match_is_never_remembered(app: Flask) -> None:
    for _ in range(2):
        assert get(app, "/nowhere").status_code == 404
        moved = get(app, "/folder", HTTP_HOST="h.example")
        assert (moved.status_code, moved.headers["Location"]) == (308, "http://h.example/folder/")
        assert Client(app).post("/files/x").status_code == 405
    assert app._matches == {}  # type: ignore[attr-defined]


def test_an_untrusted_host_is_refused_every_time(app: Flask) -> None:
    app.config["TRUSTED_HOSTS"] = ["good.example"]
    for _ in range(2):
        assert get(app, "/files/x", HTTP_HOST="good.example").status_code == 200
        assert get(app, "/files/x", HTTP_HOST="evil.example").status_code == 400


def test_the_memos_are_bounded(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flaskapp, "ROUTE_MEMO_SIZE", 8)
    for n in range(50):
        answer = get(app, f"/files/{n}", HTTP_HOST=f"h{n}.example").get_json()
        assert (answer["name"], answer["host"]) == (str(n), f"h{n}.example")
        assert len(app._matches) <= 8  # type: ignore[attr-defined]
        assert len(app._bindings) <= 8  # type: ignore[attr-defined]
