"""One file from two nodes: aria2c over the Metalink of a node that names the other as
its mirror (``DL_MIRRORS``), and over the ``Link: rel=duplicate`` of a plain GET.

aria2c counts sources by host name and drops a duplicate on the host it is already
using, so the two loopback nodes go by different names: node A as ``127.0.0.1``, node B
as ``localhost`` (IPv6 off in aria2c, so that name is 127.0.0.1 too). Which node sent
what is read from each node's own access log.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.sansio.metalink import NAMESPACE
from tests.clients.support import aria2c_command, run, sha256_file
from tests.clients.test_digests import aria2c_metalink, fetch_metalink, settled
from tests.integration.helpers import MiB, write_big_file
from tests.support.server import GunicornServer
from tests.support.shell import shell_words
from tests.support.tools import require_tool

pytestmark = pytest.mark.clients

SIZE = 208 * MiB + 4321  # the short last piece too
PIECE = 4 * MiB
BAD_PIECE = 13
NO_IPV6 = "--disable-ipv6=true"
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@dataclass
class Nodes:
    a: GunicornServer
    b: GunicornServer
    root_a: Path
    root_b: Path
    expected: str

    @property
    def url_a(self) -> str:
        return f"http://127.0.0.1:{self.a.port}/files/big.bin"

    @property
    def url_b(self) -> str:
        return f"http://localhost:{self.b.port}/files/big.bin"


def prefer(document: bytes, url: str) -> bytes:
    """The Metalink with ``url`` at priority 1 and every other source after it."""
    ET.register_namespace("", NAMESPACE)
    root = ET.fromstring(document)
    for source in root.iterfind("m:file/m:url", {"m": NAMESPACE}):
        source.set("priority", "1" if source.text == url else "2")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def served_bytes(server: GunicornServer, method: str = "GET") -> int:
    """Body bytes the node's access log says it sent of big.bin."""
    total = 0
    for line in server.log().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record["target"] == "/files/big.bin" and record["method"] == method:
                total += record["bytes"]
    return total


def two_nodes(tmp_path: Path, delivery: dict[str, str], corrupt_b: bool) -> Iterator[Nodes]:
    root_a, root_b = tmp_path / "a", tmp_path / "b"
    root_a.mkdir()
    root_b.mkdir()
    expected = write_big_file(root_a / "big.bin", SIZE, seed=29)
    settled(root_a / "big.bin")
    if corrupt_b:  # same size and mtime, one piece different: only its hash tells
        shutil.copyfile(root_a / "big.bin", root_b / "big.bin")
        with open(root_b / "big.bin", "r+b") as copy:
            copy.seek(BAD_PIECE * PIECE + 1000)
            copy.write(b"\xff" * 16)
        stat = (root_a / "big.bin").stat()
        os.utime(root_b / "big.bin", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    else:
        os.link(root_a / "big.bin", root_b / "big.bin")
    common = {**delivery, "DL_PIECE_SIZE": str(PIECE)}
    a = GunicornServer(root_a, tmp_path / "a.log", {**common, "DL_DIGEST_CACHE": str(tmp_path)})
    b = GunicornServer(root_b, tmp_path / "b.log", {**common, "DL_DIGEST_CACHE": str(root_b)})
    a.env["DL_MIRRORS"] = f"http://localhost:{b.port}/files/"
    b.env["DL_MIRRORS"] = f"http://127.0.0.1:{a.port}/files/"
    try:
        a.start()
        b.start()
        yield Nodes(a, b, root_a, root_b, expected)
    finally:
        a.stop()
        b.stop()
        shutil.rmtree(root_a, ignore_errors=True)
        shutil.rmtree(root_b, ignore_errors=True)


@pytest.fixture
def nodes(tmp_path: Path, delivery: dict[str, str]) -> Iterator[Nodes]:
    yield from two_nodes(tmp_path, delivery, corrupt_b=False)


@pytest.fixture
def nodes_with_a_bad_copy(tmp_path: Path, delivery: dict[str, str]) -> Iterator[Nodes]:
    yield from two_nodes(tmp_path, delivery, corrupt_b=True)


def test_aria2c_spreads_a_metalink_download_over_both_nodes(
    nodes: Nodes, tmp_path: Path, out_dir: Path
) -> None:
    document = fetch_metalink(nodes.url_a + "?format=meta4", timeout=60)
    assert nodes.url_a.encode() in document
    assert nodes.url_b.encode() in document
    meta4 = tmp_path / "big.bin.meta4"
    meta4.write_bytes(document)
    log = tmp_path / "aria2-meta4.log"
    run(aria2c_metalink(meta4, out_dir, log, NO_IPV6, "--max-connection-per-server=2"))
    assert sha256_file(out_dir / "big.bin") == nodes.expected
    text = log.read_text(errors="replace")
    assert text.count("Good chunk checksum.") == 53  # 52 whole pieces and the short one
    sent_a, sent_b = served_bytes(nodes.a), served_bytes(nodes.b)
    assert min(sent_a, sent_b) > 0, (sent_a, sent_b)  # both nodes sent part of it
    assert sent_a + sent_b >= SIZE


def test_a_plain_aria2c_adds_the_duplicate_it_is_sent_as_a_source(
    nodes: Nodes, tmp_path: Path, out_dir: Path
) -> None:
    fetch_metalink(nodes.url_a + "?format=meta4", timeout=60)  # digest known: Digest sent
    log = tmp_path / "aria2-plain.log"
    command = aria2c_command(
        nodes.url_a,
        out_dir,
        "big.bin",
        split=4,
        extra=[NO_IPV6, "--log-level=debug", f"--log={log}"],
    )
    run(command)
    assert sha256_file(out_dir / "big.bin") == nodes.expected
    text = log.read_text(errors="replace")
    assert f"Adding URI={nodes.url_b}" in text  # from the Link field of node A's answer
    sent_a, sent_b = served_bytes(nodes.a), served_bytes(nodes.b)
    assert min(sent_a, sent_b) > 0, (sent_a, sent_b)  # both nodes sent part of it


def test_a_bad_piece_on_one_node_is_never_kept(
    nodes_with_a_bad_copy: Nodes, tmp_path: Path, out_dir: Path
) -> None:
    nodes = nodes_with_a_bad_copy
    document = fetch_metalink(nodes.url_a + "?format=meta4", timeout=60)  # A's hashes
    good_piece = (nodes.root_a / "big.bin").read_bytes()[
        BAD_PIECE * PIECE : (BAD_PIECE + 1) * PIECE
    ]
    assert hashlib.sha256(good_piece).hexdigest().encode() in document
    # Node B preferred (as a client near it would): with one connection to each node,
    # the one from byte 0, which covers the bad piece, is B's.
    meta4 = tmp_path / "big.bin.meta4"
    meta4.write_bytes(prefer(document, nodes.url_b))
    log = tmp_path / "aria2-bad-copy.log"
    result = run(aria2c_metalink(meta4, out_dir, log, NO_IPV6, "-s2", "-x1"), check=False)
    text = log.read_text(errors="replace")
    assert result.returncode == 0, text[-3000:]
    assert sha256_file(out_dir / "big.bin") == nodes.expected  # repaired, not kept
    failed = (
        f"Chunk checksum validation failed. checksumIndex={BAD_PIECE}, offset={BAD_PIECE * PIECE}"
    )
    assert failed in text
    assert f"Download aborted. URI={nodes.url_b}" in text  # B's bad bytes, refused
    refetched = text[text.index(failed) :]
    good_hash = hashlib.sha256(good_piece).hexdigest()
    assert f"Good chunk checksum. hash={good_hash}" in refetched  # again, from node A


def test_the_pages_metalink_command_downloads_from_both_nodes(
    nodes: Nodes, tmp_path: Path, out_dir: Path
) -> None:
    fetch_metalink(nodes.url_a + "?format=meta4", timeout=60)  # hashed: the page offers it
    folder, name = nodes.url_a.rsplit("/", 1)
    # The page as its "commands" button opens it: the commands of that one file.
    chosen = f"{folder}/?{urllib.parse.urlencode({'file': urllib.parse.unquote(name)})}"
    request = urllib.request.Request(chosen, headers=BROWSER)
    with urllib.request.urlopen(request, timeout=10) as response:
        page = response.read().decode()
    codes = [
        html.unescape(code) for code in re.findall(r'<code class="metalink">(.*?)</code>', page)
    ]
    command = next(shell_words(code) for code in codes if "--follow-metalink" in code)
    assert command == ["aria2c", "--follow-metalink=mem", nodes.url_a + "?format=meta4"]
    log = tmp_path / "aria2-page.log"
    quiet = aria2c_command("", out_dir, "", split=4, extra=[NO_IPV6, f"--log={log}"])
    options = quiet[1 : quiet.index("-o")]  # the test's usual options, then the page's
    run([quiet[0], *options, "--log-level=info", *command[1:]])
    assert sha256_file(out_dir / "big.bin") == nodes.expected
    assert not list(out_dir.glob("*.meta4"))  # "mem": the document is not saved
    assert log.read_text(errors="replace").count("Good chunk checksum.") == 53
    assert min(served_bytes(nodes.a), served_bytes(nodes.b)) > 0


def test_wget2_takes_a_200_as_the_file_whatever_its_describedby(
    tmp_path: Path, delivery: dict[str, str], out_dir: Path
) -> None:
    """wget2 --metalink follows rel=describedby on a redirect only (MirrorBrain's way), so
    on our 200 it downloads the file itself: what the README says it does."""
    root = tmp_path / "data"
    root.mkdir()
    expected = write_big_file(root / "small.bin", 3 * MiB + 5, seed=31)
    settled(root / "small.bin")
    server = GunicornServer(root, tmp_path / "gunicorn.log", {**delivery, "DL_PIECE_SIZE": "1m"})
    try:
        url = f"{server.start().url}/files/small.bin"
        fetch_metalink(url + "?format=meta4")
        head = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(head, timeout=10) as response:
            assert "rel=describedby" in response.headers["Link"]
        asked = server.log().count("format=meta4")
        run([require_tool("wget2"), "--no-config", "--metalink", "-q", "-P", str(out_dir), url])
        assert sha256_file(out_dir / "small.bin") == expected
        assert server.log().count("format=meta4") == asked  # the document was not fetched
    finally:
        server.stop()
