"""The client's address behind HAProxy: the nodes (``DL_BEHIND_PROXY``) believe the
``X-Real-IP`` that HAProxy sets from the connection, never one a client sent, so
download caps, client-bound signed links and the access log see the real client. The
same holds for the scheme in ``X-Forwarded-Proto`` that the browse page's URLs use."""

from __future__ import annotations

import html
import json
import os
import time
import uuid
from pathlib import Path

import pytest

from tests.integration import rawhttp
from tests.multinode.cluster import Cluster
from tests.multinode.conftest import ClusterFactory

pytestmark = [pytest.mark.multinode, pytest.mark.server]

SPOOFED = "203.0.113.9"


@pytest.fixture(scope="module")
def cluster(
    module_cluster_factory: ClusterFactory, tmp_path_factory: pytest.TempPathFactory
) -> Cluster:
    source = tmp_path_factory.mktemp("address-source")
    (source / "a.bin").write_bytes(os.urandom(10_000))
    return module_cluster_factory(source, count=2, env={"DL_BEHIND_PROXY": "1"})


def _client_logged(cluster: Cluster, marker: str) -> str:
    """The ``client`` of the access-log line, on whichever node, whose target has
    ``marker`` (HAProxy replaces X-Request-Id with its own, so the query tells)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for node in cluster.nodes:
            for line in node.server.log().splitlines():
                if line.startswith("{") and marker in line:
                    record = json.loads(line)
                    if record["target"].endswith(marker):
                        return str(record["client"])
        time.sleep(0.05)
    raise AssertionError(f"no access-log line for {marker}")


def _get(host: str, port: int, real_ip: str) -> str:
    marker = f"probe={uuid.uuid4().hex}"
    headers = [("X-Real-IP", real_ip), ("Connection", "close")]
    response = rawhttp.get(host, port, f"/files/a.bin?{marker}", headers)
    assert response.status == 200, response
    return marker


def test_a_client_cannot_name_its_own_address_through_haproxy(cluster: Cluster) -> None:
    host, port = cluster.haproxy.host, cluster.haproxy.port
    marker = _get(host, port, SPOOFED)
    assert _client_logged(cluster, marker) == "127.0.0.1"  # HAProxy's view of the client


def test_a_node_believes_the_address_its_trusted_proxy_names(cluster: Cluster) -> None:
    """The control: the nodes do take X-Real-IP from a trusted peer (here the test
    itself, on loopback), so the test above shows HAProxy overwriting the header."""
    node = cluster.nodes[0].server
    marker = _get(node.host, node.port, SPOOFED)
    assert _client_logged(cluster, marker) == SPOOFED


def _page_urls(host: str, port: int, proto: str) -> list[str]:
    headers = [("Accept", "text/html"), ("X-Forwarded-Proto", proto), ("Connection", "close")]
    # The page of a.bin's commands, as the row's "commands" button opens it.
    response = rawhttp.get(host, port, "/files/?file=a.bin", headers)
    assert response.status == 200, response
    page = html.unescape(response.body.decode())  # as shown: "://" is written "&#47;&#47;"
    return [word for word in page.split() if "/files/a.bin" in word and "://" in word]


def test_a_client_cannot_name_its_own_scheme_through_haproxy(cluster: Cluster) -> None:
    urls = _page_urls(cluster.haproxy.host, cluster.haproxy.port, "https")
    assert urls
    assert all("http://" in url and "https://" not in url for url in urls)


def test_a_node_takes_the_scheme_its_trusted_proxy_names(cluster: Cluster) -> None:
    node = cluster.nodes[0].server
    urls = _page_urls(node.host, node.port, "https")
    assert urls
    assert all("https://" in url for url in urls)


def test_haproxy_template_overwrites_the_header() -> None:
    template = Path(__file__).parents[2] / "deploy" / "haproxy" / "haproxy.cfg.in"
    assert "http-request set-header X-Real-IP %[src]" in template.read_text()
