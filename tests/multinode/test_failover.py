"""A node dies mid-download, or loses its data: HAProxy's /healthz checks take it out,
and the client's resume completes byte-exact through the other nodes."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.clients.support import response_headers, run, sha256_file
from tests.integration import rawhttp
from tests.multinode.cluster import Cluster, Node, by_node
from tests.multinode.conftest import BigFile, ClusterFactory
from tests.support.tools import require_tool

pytestmark = [pytest.mark.multinode, pytest.mark.server]

RATE = "25M"  # bytes/s: the 200 MiB download lasts about 8 s, long enough to cut it
CUT_AFTER = 16 * 2**20


def _serving_node(cluster: Cluster, process: subprocess.Popen[bytes], out: Path) -> Node:
    """The node with the one transfer in flight, once ``out`` holds CUT_AFTER bytes."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the download ended before it could be cut"
        if out.exists() and out.stat().st_size >= CUT_AFTER:
            current = {name: int(row["scur"]) for name, row in cluster.haproxy.servers().items()}
            busy = [name for name, count in current.items() if count]
            assert len(busy) == 1, current
            return cluster.node(busy[0])
        time.sleep(0.05)
    raise AssertionError("the download did not start")


def test_node_killed_mid_download_resume_completes_elsewhere(
    cluster_factory: ClusterFactory, big_file: BigFile, out_dir: Path
) -> None:
    curl = require_tool("curl")
    cluster = cluster_factory(big_file.folder)
    url = f"{cluster.haproxy.url}/files/{big_file.name}"
    target = f"/files/{big_file.name}"
    out = out_dir / big_file.name
    argv = [curl, "-sS", "--limit-rate", RATE, "-o", str(out), url]
    with open(out_dir / "curl.err", "wb") as errors:
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errors)
    try:
        victim = _serving_node(cluster, process, out)
        victim.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode != 0, "curl reported success for a download cut mid-way"
    have = out.stat().st_size
    assert CUT_AFTER <= have < big_file.size

    # The health checks (GET /healthz) find the dead node and take it out.
    states = cluster.haproxy.wait_states({victim.name: "DOWN"}, timeout=15)
    survivors = [node for node in cluster.nodes if node is not victim]
    assert all(states[node.name] == "UP" for node in survivors), states
    check = cluster.haproxy.servers()[victim.name]["check_status"]
    assert check.startswith("L4"), check  # the connection to /healthz is refused

    dump = out_dir / "headers.txt"
    run([curl, "-sS", "-f", "-C", "-", "-D", str(dump), "-o", str(out), url])
    answer = dict(response_headers(dump)[0])
    assert answer[":status"] == "206", answer
    assert answer["content-range"] == f"bytes {have}-{big_file.size - 1}/{big_file.size}"
    assert sha256_file(out) == big_file.sha256

    accesses = cluster.settled_accesses(target, minimum=1)
    resumed = [
        (name, a.status)
        for name, lines in accesses.items()
        for a in lines
        if a.range == f"bytes={have}-"
    ]
    assert len(resumed) == 1, by_node(accesses)
    assert resumed[0][0] != victim.name, by_node(accesses)
    assert resumed[0][1] == 206, by_node(accesses)


def test_node_without_its_data_is_taken_out_and_back(
    cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    """/healthz answers 503 while the data root is gone: HAProxy marks the node DOWN,
    sends it nothing, and takes it back once the data is there again."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "small.txt").write_bytes(b"small file\n")
    cluster = cluster_factory(source)
    node = cluster.nodes[2]
    moved = node.root.with_name("moved")
    os.rename(node.root, moved)
    try:
        cluster.haproxy.wait_states({node.name: "DOWN"}, timeout=15)
        row = cluster.haproxy.servers()[node.name]
        assert (row["check_status"], row["check_code"]) == ("L7STS", "503"), row
        for _ in range(6):
            answer = rawhttp.get(cluster.haproxy.host, cluster.haproxy.port, "/files/small.txt")
            assert (answer.status, answer.body) == (200, b"small file\n"), answer
    finally:
        os.rename(moved, node.root)
    accesses = cluster.settled_accesses("/files/small.txt", minimum=6)
    assert not accesses[node.name], by_node(accesses)
    assert sum(len(lines) for lines in accesses.values()) == 6, by_node(accesses)
    cluster.haproxy.wait_states({node.name: "UP"}, timeout=15)
