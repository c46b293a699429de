"""TLS at HAProxy: the shipped template with ``bind ... ssl crt ... alpn h2,http/1.1``
(a test certificate made here with openssl) in front of plain-HTTP nodes. Downloads,
ranges and resumes are byte-exact over HTTP/2 and HTTP/1.1, split downloads work, and
the browse page's commands name ``https://``, from the ``X-Forwarded-Proto`` HAProxy
sets on TLS connections."""

from __future__ import annotations

import hashlib
import html
import os
import subprocess
from pathlib import Path

import pytest

from tests.clients.support import aria2c_command, run, sha256_file, write_prefix
from tests.multinode.cluster import Cluster, HAProxy
from tests.multinode.conftest import ClusterFactory
from tests.support.tools import require_tool

pytestmark = [pytest.mark.multinode, pytest.mark.server]

SIZE = 24 * 2**20 + 321


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the certificate clients trust, HAProxy's PEM: certificate then key)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = require_tool("openssl")
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    pem = folder / "haproxy.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    return cert, pem


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("tls-source")
    content = os.urandom(SIZE)
    (folder / "a.bin").write_bytes(content)
    return folder, hashlib.sha256(content).hexdigest()


@pytest.fixture(scope="module")
def tls(
    module_cluster_factory: ClusterFactory,
    source: tuple[Path, str],
    certificate: tuple[Path, Path],
    haproxy_bin: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> HAProxy:
    """A TLS HAProxy over two nodes (behind their own plain one, which is not used)."""
    cluster: Cluster = module_cluster_factory(source[0], count=2, env={"DL_BEHIND_PROXY": "1"})
    nodes = [node.address for node in cluster.nodes]
    proxy = HAProxy(haproxy_bin, nodes, tmp_path_factory.mktemp("tls-haproxy"), certificate[1])
    cluster.extra.append(proxy)
    proxy.start()
    proxy.wait_states({node.name: "UP" for node in cluster.nodes})
    return proxy


def curl(certificate: tuple[Path, Path], *args: str) -> subprocess.CompletedProcess[bytes]:
    return run([require_tool("curl"), "-sS", "-f", "--cacert", str(certificate[0]), *args])


@pytest.mark.parametrize(("option", "version"), [("--http2", "2"), ("--http1.1", "1.1")])
def test_a_download_over_tls_is_exact_on_http2_and_http1(
    tls: HAProxy,
    certificate: tuple[Path, Path],
    source: tuple[Path, str],
    tmp_path: Path,
    option: str,
    version: str,
) -> None:
    out = tmp_path / "a.bin"
    result = curl(
        certificate, option, "-w", "%{http_version}", "-o", str(out), tls.url + "/files/a.bin"
    )
    assert result.stdout.decode() == version
    assert sha256_file(out) == source[1]


def test_ranges_and_a_resume_over_http2(
    tls: HAProxy, certificate: tuple[Path, Path], source: tuple[Path, str], tmp_path: Path
) -> None:
    url = tls.url + "/files/a.bin"
    part = tmp_path / "part"
    result = curl(
        certificate, "--http2", "-r", "1000-1999", "-w", "%{http_code}", "-o", str(part), url
    )
    assert result.stdout == b"206"
    content = (source[0] / "a.bin").read_bytes()
    assert part.read_bytes() == content[1000:2000]
    parts = tmp_path / "parts"
    result = curl(
        certificate,
        "--http2",
        "-r",
        "0-9,5000-5009",
        "-w",
        "%{content_type}",
        "-o",
        str(parts),
        url,
    )
    boundary = result.stdout.decode().partition("boundary=")[2].encode()
    assert boundary
    body = parts.read_bytes()
    assert body.count(b"--" + boundary) == 3  # two parts and the closing delimiter
    assert b"\r\n\r\n" + content[:10] + b"\r\n" in body
    assert b"\r\n\r\n" + content[5000:5010] + b"\r\n" in body
    out = tmp_path / "resumed.bin"
    write_prefix(source[0] / "a.bin", out, SIZE // 3)
    result = curl(certificate, "--http2", "-C", "-", "-w", "%{http_code}", "-o", str(out), url)
    assert result.stdout == b"206"
    assert sha256_file(out) == source[1]


def test_a_split_download_over_tls(
    tls: HAProxy, certificate: tuple[Path, Path], source: tuple[Path, str], tmp_path: Path
) -> None:
    extra = ["--ca-certificate", str(certificate[0])]
    run(aria2c_command(tls.url + "/files/a.bin", tmp_path, "a.bin", split=4, extra=extra))
    assert sha256_file(tmp_path / "a.bin") == source[1]


def test_the_browse_page_over_tls_names_https(tls: HAProxy, certificate: tuple[Path, Path]) -> None:
    # As a browser shows it: the page writes a URL's "://" as character references.
    page = html.unescape(curl(certificate, tls.url + "/files/?file=a.bin").stdout.decode())
    assert f"curl -C - -O {tls.url}/files/a.bin" in page
    assert f"http://{tls.host}" not in page
