"""wget -c: resumes with ``Range: bytes=<local size>-``; a 416 means "already complete"."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.support import ClientServer, describe, run, sha256_file, show, write_prefix
from tests.support.tools import require_tool

pytestmark = pytest.mark.clients

PREFIX = 98_765_431  # odd, and not on any block boundary


def test_wget_continues_a_partial_download(client_server: ClientServer, out_dir: Path) -> None:
    wget = require_tool("wget")
    name = "wget-resume.bin"
    url = client_server.publish(name)
    out = out_dir / name
    write_prefix(client_server.source, out, PREFIX)

    run([wget, "--no-verbose", "--no-config", "-c", url], cwd=out_dir)

    assert sorted(p.name for p in out_dir.iterdir()) == [name]  # no "name.1"
    client_server.assert_resumed(name, out, PREFIX)


def test_wget_continue_of_a_complete_file_does_nothing(
    client_server: ClientServer, out_dir: Path
) -> None:
    wget = require_tool("wget")
    name = "wget-complete.bin"
    url = client_server.publish(name)
    out = out_dir / name
    write_prefix(client_server.source, out, client_server.size)
    before = out.stat()

    result = run([wget, "--no-config", "-c", url], cwd=out_dir)

    assert b"The file is already fully retrieved; nothing to do." in result.stderr, describe(result)
    after = out.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert sha256_file(out) == client_server.sha256
    accesses = client_server.settled_accesses(name)
    assert [(a.method, a.range, a.status) for a in accesses] == [
        ("GET", f"bytes={client_server.size}-", 416)
    ], show(accesses)
