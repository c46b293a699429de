"""axel -n 4: HTTP/1.0 requests, a ``bytes=0-`` probe, then closed ranges per connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.support import ClientServer, run, sha256_file, show
from tests.support.tools import require_tool

pytestmark = pytest.mark.clients


def test_axel_four_connections(client_server: ClientServer, out_dir: Path) -> None:
    axel = require_tool("axel")
    name = "axel-split.bin"
    url = client_server.publish(name)
    out = out_dir / name

    run([axel, "-n", "4", "-o", str(out), url], cwd=out_dir)

    assert out.stat().st_size == client_server.size
    assert sha256_file(out) == client_server.sha256
    assert not out.with_name(f"{name}.st").exists()  # the state file goes on success
    accesses = client_server.settled_accesses(name, minimum=2)
    log = show(accesses)
    assert {a.version for a in accesses} == {"HTTP/1.0"}, log
    assert {a.status for a in accesses} == {206}, log
    ranges = [a.bounds for a in accesses]
    assert (0, None) in ranges, f"axel probes with bytes=0-:\n{log}"
    closed = [b for b in ranges if b is not None and b[1] is not None]
    assert len(closed) >= 2, log
    assert max(last for _, last in closed if last is not None) == client_server.size - 1, log
    assert not client_server.server_errors()
