"""Fixtures: the HAProxy and nginx binaries, one big random file, clusters over replicas."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.multinode.cluster import Cluster, start_cluster
from tests.support.tools import require_tool

# 200 MiB plus an odd tail, so no client's segment arithmetic comes out even.
BIG_SIZE = 200 * 2**20 + 4321
BIG_NAME = "big.bin"


def _sbin_tool(name: str) -> str:
    """``require_tool``, also looking in /usr/sbin (not on every user's PATH)."""
    candidate = Path("/usr/sbin") / name
    if shutil.which(name) is None and os.access(candidate, os.X_OK):
        return str(candidate)
    return require_tool(name)


@pytest.fixture(scope="session")
def haproxy_bin() -> str:
    return _sbin_tool("haproxy")


@pytest.fixture(scope="session")
def nginx_bin() -> str:
    nginx = _sbin_tool("nginx")
    built = subprocess.run([nginx, "-V"], capture_output=True, check=False).stderr.decode()
    if "--with-http_slice_module" not in built:
        message = f"{nginx} lacks the slice module (Debian: apt-get install nginx)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return nginx


@dataclass(frozen=True)
class BigFile:
    folder: Path  # the tree every node replicates
    name: str
    size: int
    sha256: str

    @property
    def path(self) -> Path:
        return self.folder / self.name


@pytest.fixture(scope="session")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigFile]:
    """A random 200 MiB file (fresh 1 MiB blocks from os.urandom, never periodic)."""
    folder = tmp_path_factory.mktemp("multinode-source")
    digest = hashlib.sha256()
    with open(folder / BIG_NAME, "wb") as file:
        remaining = BIG_SIZE
        while remaining:
            block = os.urandom(min(2**20, remaining))
            digest.update(block)
            file.write(block)
            remaining -= len(block)
    # A past mtime: If-Range with a date needs Last-Modified a second before Date.
    os.utime(folder / BIG_NAME, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    yield BigFile(folder, BIG_NAME, BIG_SIZE, digest.hexdigest())
    shutil.rmtree(folder, ignore_errors=True)


ClusterFactory = Callable[..., Cluster]


def _cluster_factory(haproxy_bin: str, workdir: Path) -> tuple[ClusterFactory, Callable[[], None]]:
    clusters: list[Cluster] = []

    def start(
        source: Path, count: int = 3, env: Mapping[str, str] | None = None, mirrors: bool = False
    ) -> Cluster:
        folder = workdir / f"cluster{len(clusters)}"
        folder.mkdir()
        cluster = start_cluster(haproxy_bin, source, folder, count, env, mirrors)
        clusters.append(cluster)
        return cluster

    def stop_all() -> None:
        for cluster in clusters:
            cluster.stop()
        # Hundreds of MB of replicas per cluster; pytest keeps the last few runs' tmp dirs.
        shutil.rmtree(workdir, ignore_errors=True)

    return start, stop_all


@pytest.fixture(scope="module")
def module_cluster_factory(
    haproxy_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterFactory]:
    """``start(source, count=3, env=None, mirrors=False)`` -> a Cluster for the module."""
    start, stop_all = _cluster_factory(haproxy_bin, tmp_path_factory.mktemp("clusters"))
    yield start
    stop_all()


@pytest.fixture
def cluster_factory(haproxy_bin: str, tmp_path: Path) -> Iterator[ClusterFactory]:
    """As ``module_cluster_factory``, for one test (which may kill nodes)."""
    workdir = tmp_path / "clusters"
    workdir.mkdir()
    start, stop_all = _cluster_factory(haproxy_bin, workdir)
    yield start
    stop_all()


@pytest.fixture
def out_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder for one test's downloads, removed afterwards (the files are big)."""
    path = tmp_path / "downloads"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)
