"""Shared fixtures: a real gunicorn server over a temporary data root."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from service import digests
from tests.support.access_log import AccessLines
from tests.support.server import GunicornServer

settings.register_profile("ci", max_examples=500, deadline=None)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


#: The two ways the service moves bytes; every real-server test runs against both.
DELIVERIES = {"sendfile": {"DL_SENDFILE": "1"}, "copy": {"DL_SENDFILE": "0"}}


@pytest.fixture(scope="session", autouse=True)
def _session_digest_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """In-process apps keep their digest cache in the session's tmp, not in ~/.cache;
    each app its own, as SQLite keeps a file's descriptors open while another
    connection of the process uses it, which would blur descriptor-leak counts."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(digests, "default_cache_dirs", lambda: [tmp_path_factory.mktemp("digests")])
        yield


@pytest.fixture(autouse=True)
def _digest_stores_end_with_their_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every digest store an in-process app opens is closed when its test ends, so no
    hashing thread of one test still holds descriptors while the next one counts them.
    (A module-scoped app's store closes after the module's first test: later lookups
    find no digest and queue nothing, which the tests sharing such an app never need.)"""
    opened: list[digests.DigestStore] = []
    real_open_store = digests.open_store

    def open_store(*args: Any, **kwargs: Any) -> digests.DigestStore | None:
        store = real_open_store(*args, **kwargs)
        if store is not None:
            opened.append(store)
        return store

    monkeypatch.setattr(digests, "open_store", open_store)
    yield
    for store in opened:
        store.close()


@pytest.fixture(scope="session", params=sorted(DELIVERIES))
def delivery(request: pytest.FixtureRequest) -> dict[str, str]:
    """Server environment selecting the delivery path (zero-copy sendfile or pread copy)."""
    return DELIVERIES[request.param]


@pytest.fixture
def access_lines(capsys: pytest.CaptureFixture[str]) -> AccessLines:
    """The access log's lines an in-process app wrote during the test."""
    return AccessLines(capsys)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def start_server(tmp_path: Path, delivery: dict[str, str]) -> Iterator[object]:
    """Factory: ``start_server(data_root, **env)`` -> a running GunicornServer."""
    servers: list[GunicornServer] = []

    def start(root: Path, **env: str) -> GunicornServer:
        log = tmp_path / f"gunicorn-{len(servers)}.log"
        server = GunicornServer(root, log, {**delivery, **env})
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
