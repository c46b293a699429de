"""Validators agree across replicas: every node sends the same ETag and Last-Modified
for the same file, so a validator from one node works on any other (If-None-Match 304,
If-Range 206), whichever node a balancer or a cache's slice requests reach.

The nodes' ETag mode is this module's parameter: another mode (such as ETags from a
stored SHA-256) is one more ``ETAG_MODES`` entry, and every test here runs against it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration import rawhttp
from tests.integration.helpers import etag_of
from tests.multinode.cluster import Cluster, Node, replicate
from tests.multinode.conftest import ClusterFactory

pytestmark = [pytest.mark.multinode, pytest.mark.server]


@dataclass(frozen=True)
class EtagMode:
    """How the nodes are started, and the ETag they must all send for a source file."""

    expected: Callable[[Path], str]
    env: dict[str, str] = field(default_factory=dict)


def digest_etag_of(path: Path) -> str:
    """``DL_ETAG=digest``: the file's SHA-256, base64url without padding, once known."""
    sha256 = hashlib.sha256(path.read_bytes()).digest()
    return '"sha256-' + base64.urlsafe_b64encode(sha256).decode().rstrip("=") + '"'


ETAG_MODES = {
    "mtime": EtagMode(expected=etag_of),
    "digest": EtagMode(expected=digest_etag_of, env={"DL_ETAG": "digest"}),
}

# Distinct sub-second mtimes, in the past (If-Range with a date needs Last-Modified at
# least a second before Date).
FILES = {
    "a.txt": (b"alpha\n" * 1000, 1_600_000_000_000_000_001),
    "sub/b.bin": (bytes(range(256)) * 4096, 1_650_000_000_987_654_321),
    "empty": (b"", 1_700_000_000_500_000_000),
}


@pytest.fixture(scope="module", params=sorted(ETAG_MODES))
def etag_mode(request: pytest.FixtureRequest) -> EtagMode:
    return ETAG_MODES[request.param]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("validators")
    for name, (data, mtime_ns) in FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return folder


@pytest.fixture(scope="module")
def cluster(module_cluster_factory: ClusterFactory, source: Path, etag_mode: EtagMode) -> Cluster:
    cluster = module_cluster_factory(source, env=etag_mode.env)
    wait_for_etags(cluster.nodes, source, etag_mode)
    return cluster


def wait_for_etags(nodes: list[Node], source: Path, mode: EtagMode, timeout: float = 30.0) -> None:
    """Until every node sends the mode's ETag for every file: a digest ETag appears once
    the node's background hashing has seen the file (the first request queues it)."""
    deadline = time.monotonic() + timeout
    for node in nodes:
        for name in FILES:
            expected = mode.expected(source / name)
            while (etag := _get(node, name, method="HEAD")["ETag"]) != expected:
                assert time.monotonic() < deadline, (node.name, name, etag, expected)
                time.sleep(0.1)


def _get(
    node: Node, name: str, headers: rawhttp.Headers = (), method: str = "GET"
) -> rawhttp.RawResponse:
    return rawhttp.get(node.server.host, node.server.port, f"/files/{name}", headers, method=method)


def test_replicas_are_separate_files_with_the_same_mtime(cluster: Cluster, source: Path) -> None:
    """The setting of every test here: different inodes, nanosecond-equal mtimes."""
    for name in FILES:
        facts = [os.stat(node.root / name) for node in cluster.nodes]
        assert len({(f.st_dev, f.st_ino) for f in facts}) == len(cluster.nodes)
        assert {f.st_mtime_ns for f in facts} == {os.stat(source / name).st_mtime_ns}


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_node_sends_the_same_validators(
    cluster: Cluster, source: Path, etag_mode: EtagMode, name: str
) -> None:
    for method in ("HEAD", "GET"):
        answers = [_get(node, name, method=method) for node in cluster.nodes]
        assert {a.status for a in answers} == {200}, answers
        assert {a["ETag"] for a in answers} == {etag_mode.expected(source / name)}, answers
        assert len({a["Last-Modified"] for a in answers}) == 1, answers


@pytest.mark.parametrize("name", sorted(FILES))
def test_if_none_match_from_one_node_is_304_on_the_others(cluster: Cluster, name: str) -> None:
    for origin in cluster.nodes:
        etag = _get(origin, name, method="HEAD")["ETag"]
        for other in cluster.nodes:
            if other is origin:
                continue
            answer = _get(other, name, [("If-None-Match", etag)])
            assert answer.status == 304, (origin.name, other.name, answer)
            assert answer["ETag"] == etag
            # A validator this node never issued is not a match.
            answer = _get(other, name, [("If-None-Match", '"0-0"')])
            assert answer.status == 200, (origin.name, other.name, answer)


@pytest.mark.parametrize("validator", ["ETag", "Last-Modified"])
def test_if_range_from_one_node_is_206_on_the_others(cluster: Cluster, validator: str) -> None:
    """A download begun on one node resumes on another: Range + If-Range (the first
    node's ETag, or its Last-Modified date) gets 206 with exactly the missing bytes."""
    name = "sub/b.bin"
    data = FILES[name][0]
    have = 300_001
    for origin in cluster.nodes:
        first = _get(origin, name, [("Range", f"bytes=0-{have - 1}")])
        assert (first.status, first.body) == (206, data[:have]), first
        for other in cluster.nodes:
            if other is origin:
                continue
            headers = [("Range", f"bytes={have}-"), ("If-Range", first[validator])]
            rest = _get(other, name, headers)
            assert rest.status == 206, (origin.name, other.name, rest)
            assert rest["Content-Range"] == f"bytes {have}-{len(data) - 1}/{len(data)}"
            assert first.body + rest.body == data


def test_validators_agree_through_the_balancer(cluster: Cluster, source: Path) -> None:
    """Repeated requests through HAProxy reach several nodes and see one ETag."""
    proxy = cluster.haproxy
    etags = set()
    for _ in range(9):
        answer = rawhttp.get(proxy.host, proxy.port, "/files/a.txt", method="HEAD")
        assert answer.status == 200, answer
        etags.add(answer["ETag"])
    assert len(etags) == 1, etags
    served = [node.name for node in cluster.nodes if node.accesses("/files/a.txt")]
    assert len(served) >= 2, served


def test_copies_without_preserved_mtimes_would_disagree(tmp_path: Path, source: Path) -> None:
    """Why replicas are copied with their mtimes (``cp -p``, ``rsync -t``): without them
    the mtime-based ETag differs per replica and no validator works across nodes."""
    careless = tmp_path / "careless"
    careless.mkdir()
    for name in FILES:
        (careless / name).parent.mkdir(parents=True, exist_ok=True)
        (careless / name).write_bytes((source / name).read_bytes())
    careful = replicate(source, tmp_path / "careful")
    for name in FILES:
        assert etag_of(careful / name) == etag_of(source / name)
        assert etag_of(careless / name) != etag_of(source / name)


def test_digest_etags_agree_where_mtimes_differ(
    cluster_factory: ClusterFactory, source: Path
) -> None:
    """What ``DL_ETAG=digest`` is for: replicas whose mtimes were not kept still send one
    ETag per content, so If-None-Match and If-Range work across them."""
    mode = ETAG_MODES["digest"]
    cluster = cluster_factory(source, count=2, env=mode.env)
    first, second = cluster.nodes
    for name in FILES:
        os.utime(second.root / name, ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    wait_for_etags(cluster.nodes, source, mode)
    name = "sub/b.bin"
    size = len(FILES[name][0])
    one, other = _get(first, name, method="HEAD"), _get(second, name, method="HEAD")
    assert one["Last-Modified"] != other["Last-Modified"]
    assert one["ETag"] == other["ETag"] == mode.expected(source / name)
    assert _get(second, name, [("If-None-Match", one["ETag"])]).status == 304
    resumed = _get(second, name, [("Range", "bytes=1000-"), ("If-Range", one["ETag"])])
    assert resumed.status == 206, resumed
    assert resumed["Content-Range"] == f"bytes 1000-{size - 1}/{size}"
    assert resumed.body == FILES[name][0][1000:]
