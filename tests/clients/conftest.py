"""Session fixtures: one big random file and one gunicorn server over it."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.support import ClientServer
from tests.support.server import GunicornServer

# 300 MiB plus an odd tail, so no client's segment arithmetic comes out even.
BIG_FILE_SIZE = 300 * 2**20 + 4321
_BLOCK = 2**20


def _write_random_file(path: Path, size: int) -> str:
    """Random bytes (each 1 MiB block fresh from os.urandom, never periodic); returns SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as file:
        remaining = size
        while remaining:
            block = os.urandom(min(_BLOCK, remaining))
            digest.update(block)
            file.write(block)
            remaining -= len(block)
    return digest.hexdigest()


@pytest.fixture(scope="session")
def client_server(
    tmp_path_factory: pytest.TempPathFactory, delivery: dict[str, str]
) -> Iterator[ClientServer]:
    base = tmp_path_factory.mktemp("clients")
    root = base / "data"
    root.mkdir()
    source = base / "big.bin"
    digest = _write_random_file(source, BIG_FILE_SIZE)
    server = GunicornServer(root, base / "gunicorn.log", delivery)
    server.start()
    try:
        zero_copy = delivery["DL_SENDFILE"] == "1"
        yield ClientServer(server, root, source, BIG_FILE_SIZE, digest, zero_copy)
    finally:
        server.stop()
        # Hundreds of MB per link target; pytest keeps the last few runs' tmp dirs.
        shutil.rmtree(root, ignore_errors=True)
        source.unlink(missing_ok=True)


@pytest.fixture
def out_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder for one test's downloads, removed afterwards (the files are big)."""
    path = tmp_path / "downloads"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)
