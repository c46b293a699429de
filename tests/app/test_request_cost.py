"""Work each request must not repeat: guards for the per-request cost of small answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Request, request
from werkzeug.routing import MapAdapter

from config import Settings
from service import create_app
from tests.app import BIG, build_tree


def test_the_url_is_matched_once_although_the_body_pushes_the_context_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(Settings(data_root=build_tree(tmp_path), chunk_size=4096))
    matches: list[str] = []
    real_match = MapAdapter.match

    def counting_match(self: MapAdapter, *args: Any, **kwargs: Any) -> Any:
        matches.append(self.path_info)
        return real_match(self, *args, **kwargs)

    monkeypatch.setattr(MapAdapter, "match", counting_match)
    seen_in_body: list[str] = []

    @app.teardown_request
    def note(error: BaseException | None) -> None:
        seen_in_body.append(request.path)  # the context is pushed again for the body

    response = app.test_client().get("/files/big.bin", headers={"Range": "bytes=10-20000"})
    assert response.status_code == 206
    assert response.data == BIG[10:20001]
    assert matches == ["/files/big.bin"]
    assert seen_in_body == ["/files/big.bin", "/files/big.bin"]


def test_a_request_without_a_query_never_parses_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(Settings(data_root=build_tree(tmp_path)))
    client = app.test_client()
    assert client.get("/files/big.bin?inline=1").headers["Content-Disposition"].startswith("inline")

    def no_args(self: Request) -> None:
        raise AssertionError("the query string was parsed")

    monkeypatch.setattr(Request, "args", property(no_args))
    response = client.get("/files/big.bin", headers={"Range": "bytes=0-9"})
    assert (response.status_code, response.data) == (206, BIG[:10])
    assert response.headers["Content-Disposition"].startswith("attachment")
