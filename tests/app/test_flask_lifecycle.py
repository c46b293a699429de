"""The service's Flask class skips signals nobody hears and keeps no session; what it
skips must come back as soon as somebody asks for it (service.web.flaskapp)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, after_this_request, session, signals

from config import Settings
from service import create_app
from tests.app import BIG, build_tree, wsgi_call

SIGNALS = (
    "request_started",
    "request_finished",
    "request_tearing_down",
    "appcontext_pushed",
    "appcontext_popped",
    "appcontext_tearing_down",
)


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return create_app(Settings(data_root=build_tree(tmp_path), digests=False))


def ranged(app: Flask) -> tuple[str, bytes]:
    started, body = wsgi_call(
        app, "/files/big.bin", REMOTE_ADDR="127.0.0.1", HTTP_RANGE="bytes=10-19"
    )
    data = b"".join(body)
    body.close()
    return started[0], data


@pytest.fixture
def heard(app: Flask) -> Iterator[list[str]]:
    events: list[str] = []
    receivers = {}
    for name in SIGNALS:

        def receiver(sender: Any, _name: str = name, **extra: Any) -> None:
            assert sender is app
            events.append(_name)

        receivers[name] = receiver
        getattr(signals, name).connect(receiver, app)
    yield events
    for name, receiver in receivers.items():
        getattr(signals, name).disconnect(receiver, app)


def test_every_signal_reaches_a_connected_receiver(app: Flask, heard: list[str]) -> None:
    assert ranged(app) == ("206 Partial Content", BIG[10:20])
    # The view's context, then the body's (stream_with_context pushes it again).
    assert heard.count("request_started") == 1
    assert heard.count("request_finished") == 1
    assert heard.count("request_tearing_down") == 2
    assert heard.count("appcontext_pushed") == 2
    assert heard.count("appcontext_popped") == 2
    assert heard.count("appcontext_tearing_down") == 2
    assert heard.index("request_started") < heard.index("request_finished")


def test_teardown_functions_run_when_registered(app: Flask) -> None:
    seen: list[str] = []
    app.teardown_request(lambda exc: seen.append("request"))
    app.teardown_appcontext(lambda exc: seen.append("app"))
    assert ranged(app) == ("206 Partial Content", BIG[10:20])
    assert seen == ["request", "app", "request", "app"]


def test_answers_are_the_same_unheard(app: Flask) -> None:
    assert ranged(app) == ("206 Partial Content", BIG[10:20])


def test_the_session_is_shared_empty_and_refuses_writes(app: Flask) -> None:
    seen: list[Any] = []

    @app.before_request
    def look() -> None:
        seen.append(session._get_current_object())  # type: ignore[attr-defined]
        assert dict(session) == {}
        with pytest.raises(RuntimeError):
            session["user"] = "x"

    assert ranged(app) == ("206 Partial Content", BIG[10:20])
    assert ranged(app) == ("206 Partial Content", BIG[10:20])
    assert len(seen) == 2
    assert seen[0] is seen[1]
    started, body = wsgi_call(app, "/files/big.bin", REMOTE_ADDR="127.0.0.1")
    body.close()
    assert not any(name.lower() == "set-cookie" for name, _ in started[1])


def test_before_and_after_request_functions_run_when_registered(app: Flask) -> None:
    assert app.before_request_funcs == {}  # signing off: no gate registered
    assert app.after_request_funcs == {}
    seen: list[str] = []

    def tag(response: Any) -> Any:
        response.headers["X-Seen"] = "app"
        return response

    app.before_request(lambda: seen.append("app") and None)
    app.url_value_preprocessor(lambda endpoint, values: seen.append(f"values {endpoint}"))
    app.after_request(tag)
    started, body = wsgi_call(app, "/files/a.txt", REMOTE_ADDR="127.0.0.1")
    body.close()
    assert seen == ["values files.files", "app"]
    assert ("X-Seen", "app") in started[1]


def test_after_this_request_runs(app: Flask) -> None:
    view = app.view_functions["files.files"]

    def wrapped(**kwargs: Any) -> Any:
        @after_this_request
        def tag(response: Any) -> Any:
            response.headers["X-After"] = "this"
            return response

        return view(**kwargs)

    app.view_functions["files.files"] = wrapped
    started, body = wsgi_call(app, "/files/a.txt", REMOTE_ADDR="127.0.0.1")
    body.close()
    assert ("X-After", "this") in started[1]


def test_the_signed_link_gate_is_registered_only_with_signing_on(tmp_path: Path) -> None:
    signed = create_app(
        Settings(data_root=build_tree(tmp_path), digests=False, signing_key=("k" * 32,))
    )
    assert len(signed.before_request_funcs[None]) == 1
    started, body = wsgi_call(signed, "/files/big.bin", REMOTE_ADDR="127.0.0.1")
    body.close()
    assert started[0] == "403 Forbidden"
    started, body = wsgi_call(signed, "/healthz", REMOTE_ADDR="127.0.0.1")
    body.close()
    assert started[0] == "200 OK"  # outside the files blueprint: not guarded
