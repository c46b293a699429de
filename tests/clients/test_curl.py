"""curl -C -: resumes with ``Range: bytes=<local size>-`` and no validators."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.support import (
    ClientServer,
    describe,
    response_headers,
    run,
    sha256_file,
    show,
    write_prefix,
)
from tests.support.tools import require_tool

pytestmark = pytest.mark.clients

PREFIX = 123_456_789  # odd, and not on any block boundary


def test_curl_resumes_a_partial_download(client_server: ClientServer, out_dir: Path) -> None:
    curl = require_tool("curl")
    name = "curl-resume.bin"
    url = client_server.publish(name)
    out, dump = out_dir / name, out_dir / "headers.txt"
    write_prefix(client_server.source, out, PREFIX)

    result = run(
        [curl, "-sS", "-C", "-", "-D", str(dump), "-w", "%{http_code}", "-o", str(out), url]
    )

    size = client_server.size
    assert result.stdout == b"206", describe(result)
    (headers,) = response_headers(dump)
    assert ("content-range", f"bytes {PREFIX}-{size - 1}/{size}") in headers, headers
    assert ("content-length", str(size - PREFIX)) in headers, headers
    client_server.assert_resumed(name, out, PREFIX)


def test_curl_resume_of_a_complete_file_gets_416_and_keeps_it(
    client_server: ClientServer, out_dir: Path
) -> None:
    """``bytes=<size>-`` is unsatisfiable: 416 with ``Content-Range: bytes */<size>``.

    curl treats a 416 to its resume request as "nothing left to fetch": it exits 0
    and neither truncates the file nor appends the 416 body to it.
    """
    curl = require_tool("curl")
    name = "curl-complete.bin"
    url = client_server.publish(name)
    out, dump = out_dir / name, out_dir / "headers.txt"
    size = client_server.size
    write_prefix(client_server.source, out, size)

    result = run(
        [curl, "-sS", "-C", "-", "-D", str(dump), "-w", "%{http_code}", "-o", str(out), url]
    )

    assert result.stdout == b"416", describe(result)
    (headers,) = response_headers(dump)
    assert ("content-range", f"bytes */{size}") in headers, headers
    assert out.stat().st_size == size
    assert sha256_file(out) == client_server.sha256
    accesses = client_server.settled_accesses(name)
    assert [(a.method, a.range, a.status) for a in accesses] == [("GET", f"bytes={size}-", 416)], (
        show(accesses)
    )
