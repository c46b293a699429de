"""Split downloads through HAProxy: byte-exact, and their ranges served by several nodes.

Each node logs the ranges it served (its JSON access log), so the spread of one download
over the nodes is read from the nodes themselves, not inferred from the balancer.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from tests.clients.support import (
    aria2c_command,
    response_headers,
    run,
    sha256_file,
    write_prefix,
)
from tests.multinode.cluster import Cluster, by_node
from tests.multinode.conftest import BigFile, ClusterFactory
from tests.support.tools import require_tool

pytestmark = [pytest.mark.multinode, pytest.mark.server]


@pytest.fixture(scope="module")
def cluster(module_cluster_factory: ClusterFactory, big_file: BigFile) -> Cluster:
    return module_cluster_factory(big_file.folder)


def _publish(cluster: Cluster, big_file: BigFile, name: str) -> str:
    """Serve the big file as ``name`` on every node (a hard link to each node's replica,
    so every node keeps its own inode and mtime); returns the node-relative target."""
    for node in cluster.nodes:
        target = node.root / name
        if not target.exists():
            target.hardlink_to(node.root / big_file.name)
    return f"/files/{quote(name)}"


def _assert_spread(cluster: Cluster, target: str, size: int) -> None:
    """Several nodes answered ranges (206) of this one download, together all of it
    (aria2c takes its first segment from a plain GET, cut off once it has it)."""
    accesses = cluster.settled_accesses(target, minimum=3)
    log = by_node(accesses)
    served = {name: [a for a in lines if a.status == 206] for name, lines in accesses.items()}
    busy = [name for name, lines in served.items() if lines]
    assert len(busy) >= 2, f"one node served the whole download:\n{log}"
    assert all(a.status in (200, 206) for lines in accesses.values() for a in lines), log
    assert sum(a.sent for lines in accesses.values() for a in lines) >= size, log


def test_aria2c_split_download_is_spread_over_nodes(
    cluster: Cluster, big_file: BigFile, out_dir: Path
) -> None:
    target = _publish(cluster, big_file, "aria2.bin")
    run(aria2c_command(cluster.haproxy.url + target, out_dir, "aria2.bin"))
    assert sha256_file(out_dir / "aria2.bin") == big_file.sha256
    _assert_spread(cluster, target, big_file.size)


def test_axel_split_download_is_spread_over_nodes(
    cluster: Cluster, big_file: BigFile, out_dir: Path
) -> None:
    axel = require_tool("axel")
    target = _publish(cluster, big_file, "axel.bin")
    out = out_dir / "axel.bin"
    run([axel, "-q", "-n", "8", "-o", str(out), cluster.haproxy.url + target], cwd=out_dir)
    assert sha256_file(out) == big_file.sha256
    _assert_spread(cluster, target, big_file.size)


def test_curl_resumes_on_another_node_with_if_range(
    cluster: Cluster, big_file: BigFile, out_dir: Path
) -> None:
    """The first part came from node1; ``curl -C -`` with node1's ETag in If-Range asks
    node2 for the rest, which must answer 206 (the validators agree) with the right bytes."""
    curl = require_tool("curl")
    target = _publish(cluster, big_file, "resume.bin")
    first, second = cluster.nodes[0], cluster.nodes[1]
    out = out_dir / "resume.bin"
    head = out_dir / "head.txt"
    run([curl, "-sS", "-f", "-I", "-o", str(head), first.server.url + target])
    etag = dict(response_headers(head)[0])["etag"]
    have = 77 * 2**20 + 12345
    write_prefix(big_file.path, out, have)

    dump = out_dir / "resume-headers.txt"
    run(
        [
            curl,
            "-sS",
            "-f",
            "-C",
            "-",
            "-H",
            f"If-Range: {etag}",
            "-D",
            str(dump),
            "-o",
            str(out),
            second.server.url + target,
        ]
    )
    answer = dict(response_headers(dump)[0])
    assert answer[":status"] == "206", answer
    assert answer["content-range"] == f"bytes {have}-{big_file.size - 1}/{big_file.size}"
    assert answer["etag"] == etag
    assert sha256_file(out) == big_file.sha256
    resumed = cluster.settled_accesses(target, minimum=2)[second.name]
    assert [(a.status, a.range) for a in resumed] == [(206, f"bytes={have}-")], resumed
