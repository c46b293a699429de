"""Tools that discover files through a folder's index page, as a user runs them (default
settings, no ``Accept`` of their own): rclone's http backend, ``lftp mirror``,
``wget -r -np``, fsspec's ``HTTPFileSystem`` and GDAL's ``/vsicurl/``. Each must find
exactly the served tree, names that need percent-encoding included, and bring every
file back byte-exact (SHA-256). nginx's ``autoindex`` over the same tree is the
reference for what ``wget -r`` saves and for what fsspec and GDAL find.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import aiohttp
import fsspec
import pytest

from tests.clients.support import describe, parse_access_log, run
from tests.support.nginx import NginxServer
from tests.support.server import GunicornServer
from tests.support.tools import require_tool

pytestmark = pytest.mark.clients

#: Names a URL must percent-encode, and ones a shell or an HTML parser would trip on.
TRICKY = [
    "with space.txt",
    "ünïcødé — 日本.txt",
    "hash#tag.txt",
    "question?.txt",
    "100%.txt",
    "amp&ersand.txt",
    "quote'single.txt",
    'quote"double.txt',
    "semi;colon+plus=.txt",
    "brackets[1](2){3}.txt",
    "<b>&lt;markup&gt;.txt",
]
#: Every file served, by path below the root, with its bytes.
TREE = {
    **{name: f"content of {name}\n".encode() for name in TRICKY},
    "plain.bin": hashlib.shake_256(b"plain").digest(3 * 2**20 + 17),
    "nested/video.mp4": hashlib.shake_256(b"video").digest(200_000),
    "nested/deeper/leaf.bin": b"leaf\n",
    "nested/dossier été/chanson d'été.mp3": b"ID3 not really",
}
EMPTY_FOLDERS = ["nested/empty"]
HIDDEN = [".hidden", "nested/.env"]
WALK_TIMEOUT = 60.0
AUTOINDEX_SITE = """\
server {{
    listen {listen};
    location /files/ {{
        alias {data_root}/;
        autoindex on;
    }}
}}
"""


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("walkers") / "data"
    for name, data in TREE.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for name in EMPTY_FOLDERS:
        (root / name).mkdir(parents=True)
    for name in HIDDEN:
        (root / name).write_bytes(b"never served")
    return root


@pytest.fixture(scope="module")
def server(tree: Path) -> Iterator[GunicornServer]:
    site = GunicornServer(tree, tree.parent / "gunicorn.log").start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="module")
def autoindex(tree: Path) -> Iterator[NginxServer]:
    nginx = NginxServer(tree, "", tree.parent / "nginx", site=AUTOINDEX_SITE).start()
    try:
        yield nginx
    finally:
        nginx.stop()


def files_below(folder: Path, skip_index: bool = False) -> dict[str, str]:
    """SHA-256 of every regular file below ``folder``, by relative path."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not (skip_index and path.name == "index.html"):
            found[path.relative_to(folder).as_posix()] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return found


def served(prefix: str = "") -> dict[str, str]:
    return {
        name.removeprefix(prefix): hashlib.sha256(data).hexdigest()
        for name, data in TREE.items()
        if name.startswith(prefix)
    }


def requests_since(server: GunicornServer, mark: int, agent: str) -> list[str]:
    """``METHOD target`` of each request by ``agent`` logged after byte ``mark``."""
    accesses = parse_access_log(server.log()[mark:])
    return [f"{a.method} {a.target}" for a in accesses if a.agent.startswith(agent)]


def test_rclone_lists_the_tree_with_sizes_and_times(server: GunicornServer, tree: Path) -> None:
    rclone = require_tool("rclone")
    result = run(
        [rclone, "lsl", "--config", os.devnull, "--http-url", server.url + "/files/", ":http:"],
        timeout=WALK_TIMEOUT,
    )
    listed = {}
    for line in result.stdout.decode().splitlines():
        size, day, time_of_day, path = line.strip().split(" ", 3)
        listed[path] = (int(size), f"{day} {time_of_day[:8]}")
    expected = {}
    for name, data in TREE.items():
        moment = datetime.fromtimestamp(int((tree / name).stat().st_mtime), UTC)
        expected[name] = (len(data), moment.strftime("%Y-%m-%d %H:%M:%S"))
    assert listed == expected, describe(result)


def test_rclone_copies_the_tree_byte_exact(server: GunicornServer, tmp_path: Path) -> None:
    rclone = require_tool("rclone")
    out = tmp_path / "copy"
    result = run(
        [
            rclone,
            "copy",
            "--config",
            os.devnull,
            "--http-url",
            server.url + "/files/",
            ":http:",
            str(out),
        ],
        timeout=WALK_TIMEOUT,
    )
    assert files_below(out) == served(), describe(result)


def test_lftp_mirrors_a_nested_folder_and_the_whole_tree(
    server: GunicornServer, tmp_path: Path
) -> None:
    lftp = require_tool("lftp")
    script = (
        f"set cmd:fail-exit yes; open {server.url}/files/; mirror nested nested-copy; mirror . all"
    )
    result = run([lftp, "-c", script], cwd=tmp_path, timeout=WALK_TIMEOUT)
    assert files_below(tmp_path / "nested-copy") == served("nested/"), describe(result)
    assert files_below(tmp_path / "all") == served(), describe(result)
    assert (tmp_path / "all" / "nested" / "empty").is_dir()  # lftp keeps empty folders


def test_wget_mirrors_exactly_the_served_files_as_from_nginx_autoindex(
    server: GunicornServer, autoindex: NginxServer, tmp_path: Path
) -> None:
    """Every entry once, byte-exact, plus one index.html per folder; nothing the page
    offers besides its entries (player, checksums, inline copies) is fetched."""
    wget = require_tool("wget")
    mark = len(server.log())
    mirrors = {}
    for label, base in (("service", server.url), ("nginx", autoindex.url)):
        into = tmp_path / label
        into.mkdir()
        args = [wget, "--no-config", "-q", "-r", "-np", "-nH", "--cut-dirs=1", f"{base}/files/"]
        result = run(args, cwd=into, timeout=WALK_TIMEOUT)
        mirrors[label] = into
        assert result.returncode == 0, describe(result)
    ours = files_below(mirrors["service"], skip_index=True)
    assert ours == files_below(mirrors["nginx"], skip_index=True)
    # wget decodes a saved name once more ("100%.txt" stays, so would "%41" -> "A"): the
    # names are its own; the bytes are the served files', each exactly once.
    assert sorted(ours.values()) == sorted(served().values())
    folders = {"", "nested/", "nested/deeper/", "nested/empty/", "nested/dossier été/"}
    indexes = {
        p.relative_to(mirrors["service"]).as_posix() for p in mirrors["service"].rglob("index.html")
    }
    assert indexes == {folder + "index.html" for folder in folders}
    asked = requests_since(server, mark, "Wget")
    assert [line for line in asked if "?" in line or "inline" in line] == [], asked
    assert len(asked) == len(TREE) + len(folders) + 1, asked  # + robots.txt


def test_fsspec_finds_and_reads_the_tree_as_from_nginx_autoindex(
    server: GunicornServer, autoindex: NginxServer
) -> None:
    """fsspec (what pandas, xarray and Dask open URLs with) takes every link of the page
    and every URL in its text as an entry: it must find the served files and nothing
    else, as on nginx, each file's size by a HEAD and its bytes exact."""
    timeout = aiohttp.ClientTimeout(total=WALK_TIMEOUT)
    fs = fsspec.filesystem("http", skip_instance_cache=True, client_kwargs={"timeout": timeout})
    mark = len(server.log())
    found = {}
    for label, base in (("service", server.url), ("nginx", autoindex.url)):
        root = f"{base}/files/"
        found[label] = sorted(url.removeprefix(root) for url in fs.find(root))
    assert found["service"] == found["nginx"]
    root = f"{server.url}/files/"
    assert {unquote(path) for path in found["service"]} == set(TREE)
    for path in found["service"]:
        name = unquote(path)
        assert fs.info(root + path)["size"] == len(TREE[name]), name
        assert hashlib.sha256(fs.cat_file(root + path)).hexdigest() == served()[name], name
    asked = requests_since(server, mark, "Python")
    assert asked, "fsspec's requests are not in the log"
    assert [line for line in asked if "?" in line] == [], asked


#: Debian's Python, which has python3-gdal (GDAL's bindings are not on PyPI as wheels).
GDAL_PYTHON = "/usr/bin/python3"
GDAL_WALK = Path(__file__).with_name("gdal_walk.py")
#: GDAL 3.6 takes a page for a folder's listing only when its title is ``Index of`` and
#: the folder's path as GDAL asked for it: percent-encoded, or decoded without the
#: trailing slash (Apache's). Below a folder whose name needs encoding, the nginx-style
#: title (decoded, with the slash) matches neither, on nginx as here: GDAL lists the
#: folder itself and nothing in it.
UNLISTED_BY_GDAL = {"nested/dossier été/chanson d'été.mp3"}


def require_gdal() -> None:
    probe = [GDAL_PYTHON, "-c", "import osgeo.gdal"]
    if subprocess.run(probe, capture_output=True, check=False, timeout=60).returncode:
        message = "python3-gdal is not installed (apt-get install it; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def test_gdal_vsicurl_walks_and_reads_the_tree_as_from_nginx_autoindex(
    server: GunicornServer, autoindex: NginxServer
) -> None:
    """``/vsicurl/`` reads the page's rows (links, dates, sizes) the way it reads
    nginx's and Apache's: the same files, each size right and its bytes exact."""
    require_gdal()
    walks = {}
    for label, base in (("service", server.url), ("nginx", autoindex.url)):
        result = run([GDAL_PYTHON, str(GDAL_WALK), f"{base}/files"], timeout=WALK_TIMEOUT)
        walks[label] = json.loads(result.stdout)
    assert walks["service"] == walks["nginx"]
    expected = {
        name: [len(data), hashlib.sha256(data).hexdigest()]
        for name, data in TREE.items()
        if name not in UNLISTED_BY_GDAL
    }
    assert {unquote(path): facts for path, facts in walks["service"].items()} == expected


MANY = 10_000


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    root = tmp_path_factory.mktemp("many") / "data"
    (root / "many").mkdir(parents=True)
    for number in range(MANY):
        (root / "many" / f"entry {number:05d}.dat").write_bytes(b"x" * (number % 97))
    site = GunicornServer(root, root.parent / "gunicorn.log").start()
    try:
        yield site
    finally:
        site.stop()


def test_rclone_lists_a_folder_of_ten_thousand_entries(many: GunicornServer) -> None:
    """One page, then a HEAD per file (rclone's http backend asks each file's size and
    time): all of them right. How fast is measured by ``make bench``."""
    rclone = require_tool("rclone")
    url = many.url + "/files/many/"
    result = run([rclone, "lsl", "--config", os.devnull, "--http-url", url, ":http:"])
    sizes = {}
    for line in result.stdout.decode().splitlines():
        size, _day, _time, path = line.strip().split(" ", 3)
        sizes[path] = int(size)
    assert sizes == {f"entry {n:05d}.dat": n % 97 for n in range(MANY)}, describe(result)
