"""Signed links on the real server: the same 403 for existing and missing files, and a URL
printed by ``python -m service.sign`` that ``curl -C -`` resumes byte-exact."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.integration import rawhttp
from tests.integration.conftest import ServerFactory
from tests.integration.helpers import MiB, assert_healthy, file_sha256, write_big_file
from tests.support.server import REPO, GunicornServer
from tests.support.tools import require_tool

pytestmark = pytest.mark.server

KEY = "integration-key-0123456789abcdefghij"
OLD_KEY = "integration-old-0123456789abcdefghij"
SIZE = 8 * MiB + 777
PREFIX = 3 * MiB + 5  # what an interrupted download left behind


def sign(server: GunicornServer, path: str, *, keys: str = KEY) -> str:
    """The command, run as an operator would: a fresh process, the key in its environment."""
    result = subprocess.run(
        [sys.executable, "-m", "service.sign", path, "--ttl", "300", "--base-url", server.url],
        cwd=REPO,
        env={**os.environ, "DL_SIGNING_KEY": keys},
        capture_output=True,
        check=True,
        timeout=30,
    )
    return result.stdout.decode().strip()


def target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_a_signed_url_from_the_command_resumes_with_curl_and_nothing_else_gets_in(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    curl = require_tool("curl")
    root = tmp_path / "data"
    (root / "iso").mkdir(parents=True)
    digest = write_big_file(root / "iso" / "big.bin", SIZE, seed=6)
    server = start_server(root, DL_SIGNING_KEY=f"{KEY},{OLD_KEY}")

    def get(path: str, *headers: tuple[str, str]) -> rawhttp.RawResponse:
        return rawhttp.get(server.host, server.port, path, [*headers, ("Connection", "close")])

    # Unsigned, forged, or signed for another path: one 403, whether the file exists or not.
    url = sign(server, "iso/big.bin")
    forged = target(url)[:-1] + ("A" if not url.endswith("A") else "B")
    refused = {
        path: get(path)
        for path in [
            "/files/iso/big.bin",
            "/files/iso/missing.bin",
            "/files/iso/",
            "/files/iso",
            forged,
            forged.replace("/iso/big.bin?", "/iso/missing.bin?"),
            target(url).replace("/iso/big.bin?", "/iso/big.bin/?"),
        ]
    }
    first = refused["/files/iso/missing.bin"]
    assert (first.status, first.body) == (403, b"Forbidden\n")
    assert {
        p: r for p, r in refused.items() if r.header_set("date") != first.header_set("date")
    } == {}
    assert {p: r.body for p, r in refused.items() if r.body != first.body} == {}
    assert_healthy(server)  # /healthz needs no signature

    # A link minted with the previous key still opens (rotation).
    old = get(target(sign(server, "iso/big.bin", keys=OLD_KEY)), ("Range", "bytes=0-9"))
    assert old.status == 206

    # curl -C - resumes the signed URL from the partial file's size, byte-exact.
    out = tmp_path / "big.bin"
    with open(root / "iso" / "big.bin", "rb") as source:
        out.write_bytes(source.read(PREFIX))
    result = subprocess.run(
        [curl, "-sS", "-C", "-", "-w", "%{http_code}", "-o", str(out), url],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, b"206"), result.stderr
    assert out.stat().st_size == SIZE
    assert file_sha256(out) == digest

    # The same resume without the signature is refused, and the partial file is not grown.
    partial = tmp_path / "unsigned.bin"
    partial.write_bytes(out.read_bytes()[:PREFIX])
    unsigned = url.partition("?")[0]
    result = subprocess.run(
        [curl, "-sS", "-f", "-C", "-", "-w", "%{http_code}", "-o", str(partial), unsigned],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.stdout == b"403"
    assert partial.stat().st_size == PREFIX
    assert "Traceback" not in server.log()
