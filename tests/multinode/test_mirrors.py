"""Nodes behind HAProxy that name each other as mirrors (``deploy.render --mirrors``): one
aria2c reaching the balancer takes the rest of the file from the other nodes directly.

Each node's access log says what it sent; aria2c's own log says which URL each request
went to, so "directly" is read from the client, not guessed from the spread.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deploy.render import mirrors_env, node_mirrors
from service.sansio.mirrors import parse_mirrors
from tests.clients.support import aria2c_command, run, sha256_file
from tests.multinode.cluster import Cluster, by_node
from tests.multinode.conftest import BigFile, ClusterFactory

pytestmark = [pytest.mark.multinode, pytest.mark.server]


@pytest.fixture(scope="module")
def cluster(module_cluster_factory: ClusterFactory, big_file: BigFile) -> Cluster:
    # DL_ETAG=digest, as docs/scaling.md advises for mirrors: one tag on every node.
    return module_cluster_factory(big_file.folder, env={"DL_ETAG": "digest"}, mirrors=True)


def test_each_node_lists_every_other_node_starting_with_the_next() -> None:
    urls = ["http://10.0.0.11:8000", "http://10.0.0.12:8000/", "https://n3.example.org"]
    values = node_mirrors(urls)
    assert values == [
        "http://10.0.0.12:8000/files/,https://n3.example.org/files/",
        "https://n3.example.org/files/,http://10.0.0.11:8000/files/",
        "http://10.0.0.11:8000/files/,http://10.0.0.12:8000/files/",
    ]
    assert [m.priority for m in parse_mirrors(values[0])] == [2, 3]
    assert mirrors_env(urls[:2]).splitlines() == [
        "# node1: http://10.0.0.11:8000",
        "DL_MIRRORS=http://10.0.0.12:8000/files/",
        "# node2: http://10.0.0.12:8000/",
        "DL_MIRRORS=http://10.0.0.11:8000/files/",
    ]
    with pytest.raises(ValueError, match="given twice"):
        node_mirrors(["http://a:1", "http://a:1/"])
    with pytest.raises(ValueError, match="is not an http"):
        node_mirrors(["http://a:1", "ftp://b"])


def test_aria2c_through_the_balancer_fetches_from_every_node_directly(
    cluster: Cluster, big_file: BigFile, out_dir: Path, tmp_path: Path
) -> None:
    target = f"/files/{big_file.name}"
    log = tmp_path / "aria2.log"
    extra = ["--disable-ipv6=true", "--log-level=debug", f"--log={log}"]
    run(aria2c_command(cluster.haproxy.url + target, out_dir, "big.bin", split=6, extra=extra))
    assert sha256_file(out_dir / "big.bin") == big_file.sha256

    accesses = cluster.settled_accesses(target, minimum=3)
    sent = {name: sum(a.sent for a in lines) for name, lines in accesses.items()}
    assert all(sent.values()), f"a node sent nothing:\n{by_node(accesses)}"
    assert sum(sent.values()) >= big_file.size
    text = log.read_text(errors="replace")
    direct = set(re.findall(r"Host: localhost:(\d+)", text))  # requests past the balancer
    first = next(n for n in cluster.nodes if any(a.status == 200 for a in accesses[n.name]))
    others = {str(n.server.port) for n in cluster.nodes if n is not first}
    assert others <= direct, f"{others} not all reached directly: {direct}"
