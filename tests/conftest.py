"""Shared fixtures: a real gunicorn server over a temporary data root."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from service import digests
from tests.support.server import GunicornServer

settings.register_profile("ci", max_examples=500, deadline=None)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


#: The two ways the service moves bytes; every real-server test runs against both.
DELIVERIES = {"sendfile": {"DL_SENDFILE": "1"}, "copy": {"DL_SENDFILE": "0"}}


@pytest.fixture(scope="session", autouse=True)
def _session_digest_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """In-process apps keep their digest cache in the session's tmp, not in /dev/shm;
    each app its own, as SQLite keeps a file's descriptors open while another
    connection of the process uses it, which would blur descriptor-leak counts."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(digests, "default_cache_dir", lambda: tmp_path_factory.mktemp("digests"))
        yield


@pytest.fixture(scope="session", params=sorted(DELIVERIES))
def delivery(request: pytest.FixtureRequest) -> dict[str, str]:
    """Server environment selecting the delivery path (zero-copy sendfile or pread copy)."""
    return DELIVERIES[request.param]


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
