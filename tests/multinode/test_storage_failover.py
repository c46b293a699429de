"""A node whose storage fails for a file answers 503 before any byte; HAProxy retries the
request on another node, so the client gets the file, byte-exact, and never the 503."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import rawhttp
from tests.multinode.cluster import HAProxy, replicate
from tests.support.faultmount import FaultMount, require_fuse
from tests.support.server import GunicornServer

pytestmark = [pytest.mark.multinode, pytest.mark.server]

SIZE = 3 * 2**20
REQUESTS = 12


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[FaultMount, list[GunicornServer]]]:
    """node1 serves its replica through faultfs; node2 and node3 from local disk."""
    require_fuse()
    source = tmp_path / "source"
    source.mkdir()
    (source / "file.bin").write_bytes(hashlib.shake_256(b"failover").digest(SIZE))
    mount = FaultMount(
        replicate(source, tmp_path / "node1" / "replica"),
        tmp_path / "node1" / "mnt",
        tmp_path / "node1" / "faults.json",
        tmp_path / "node1" / "faultfs.log",
    ).start()
    servers: list[GunicornServer] = []
    try:
        roots = [mount.mountpoint] + [
            replicate(source, tmp_path / f"node{n}" / "data") for n in (2, 3)
        ]
        for number, root in enumerate(roots, 1):
            log = tmp_path / f"node{number}" / "gunicorn.log"
            servers.append(GunicornServer(root, log).start())
        yield mount, servers
    finally:
        for server in servers:
            server.stop()
        mount.stop()


def test_a_storage_503_is_retried_on_another_node(
    nodes: tuple[FaultMount, list[GunicornServer]], haproxy_bin: str, tmp_path: Path
) -> None:
    mount, servers = nodes
    expected = (tmp_path / "source" / "file.bin").read_bytes()
    proxy = HAProxy(haproxy_bin, [f"{s.host}:{s.port}" for s in servers], tmp_path).start()
    try:
        proxy.wait_states({"node1": "UP", "node2": "UP", "node3": "UP"})
        mount.set({"path": "/file.bin", "op": "read", "errno": "EIO"})
        for _ in range(REQUESTS):
            response = rawhttp.get(
                proxy.host, proxy.port, "/files/file.bin", [("Connection", "close")]
            )
            assert response.status == 200
            assert hashlib.sha256(response.body).digest() == hashlib.sha256(expected).digest()
        faulty = [
            json.loads(line) for line in servers[0].log().splitlines() if line.startswith("{")
        ]
        refused = [r for r in faulty if r["target"] == "/files/file.bin"]
        assert refused, "HAProxy never sent the file's request to the failing node"
        assert {(r["status"], r["outcome"]) for r in refused} == {(503, "storage_error")}
        assert proxy.servers()["node1"]["status"].startswith("UP")  # its other files are fine
    finally:
        proxy.stop()
