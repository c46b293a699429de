"""Module-scoped real servers, so most tests share one gunicorn start."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.server import GunicornServer

ServerFactory = Callable[..., GunicornServer]


@pytest.fixture(scope="module")
def module_server_factory(
    tmp_path_factory: pytest.TempPathFactory, delivery: dict[str, str]
) -> Iterator[ServerFactory]:
    """``start(root, **env)`` -> a GunicornServer that lives for the whole module."""
    servers: list[GunicornServer] = []
    logs = tmp_path_factory.mktemp("logs")

    def start(root: Path, **env: str) -> GunicornServer:
        server = GunicornServer(root, logs / f"gunicorn-{len(servers)}.log", {**delivery, **env})
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
