"""aria2c -x8 -s8: parallel closed ranges ``bytes=S-E``; each 206 must match exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.support import ClientServer, aria2c_command, run, sha256_file, show

pytestmark = pytest.mark.clients


def test_aria2c_split_download(client_server: ClientServer, out_dir: Path) -> None:
    name = "aria2-split.bin"
    url = client_server.publish(name)

    run(aria2c_command(url, out_dir, name))

    out = out_dir / name
    assert out.stat().st_size == client_server.size
    assert sha256_file(out) == client_server.sha256
    assert not (out_dir / f"{name}.aria2").exists()  # the control file goes on success
    accesses = client_server.settled_accesses(name, minimum=2)
    log = show(accesses)
    assert {a.status for a in accesses} <= {200, 206}, log
    ranged = [a for a in accesses if a.status == 206]
    assert len(ranged) >= 4, log
    for access in ranged:
        bounds = access.bounds
        assert bounds is not None, log
        first, last = bounds
        assert last is not None, f"aria2 asks for closed ranges:\n{log}"
        assert 0 <= first <= last < client_server.size, log
        assert access.sent <= last - first + 1, log
    assert not client_server.server_errors()
