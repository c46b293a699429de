"""The shipped ``compose.yaml``, started with podman-compose as an operator would: it
serves read-only with the digest cache on its volume, and stopping it with its own
``stop_grace_period`` lets a download in flight finish byte-exact, exit 0.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.container.conftest import Image
from tests.container.engine import engine, readable_by_all
from tests.container.test_image import BIG, fetch, repr_digest, wait_for_bytes
from tests.support.server import REPO, free_port
from tests.support.tools import require_tool

pytestmark = pytest.mark.container

COMPOSE_FILE = REPO / "compose.yaml"
#: podman-compose's own interpreter, which has the YAML parser it reads the file with.
SYSTEM_PYTHON = "/usr/bin/python3"


def compose_file() -> dict[str, object]:
    """compose.yaml as podman-compose reads it (its YAML library, before substitution)."""
    script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"
    out = subprocess.run(
        [SYSTEM_PYTHON, "-c", script, str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def seconds(duration: str) -> int:
    """A compose duration of whole seconds or minutes (``40s``, ``1m``)."""
    units = {"s": 1, "m": 60}
    return int(duration[:-1]) * units[duration[-1]]


@dataclass
class Project:
    """One ``podman-compose up -d`` of the shipped file under a unique project name."""

    image: str
    data: Path
    name: str = ""
    port: int = 0

    def __post_init__(self) -> None:
        self.name = self.name or f"dltest{uuid.uuid4().hex[:8]}"
        self.port = self.port or free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def container(self) -> str:
        return f"{self.name}_download_1"  # podman-compose's name: project_service_index

    def compose(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        env = os.environ | {
            "DL_IMAGE": self.image,
            "DL_PUBLISH": f"127.0.0.1:{self.port}",
            "DL_DATA": str(self.data),
        }
        argv = [require_tool("podman-compose"), "-p", self.name, "-f", str(COMPOSE_FILE), *args]
        result = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        if result.returncode != 0:
            command = " ".join(args)
            raise AssertionError(f"podman-compose {command} failed:\n{result.stderr[-3000:]}")
        return result

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if fetch(self.url + "/healthz")[0] == 200:
                return
            time.sleep(0.2)
        raise AssertionError(engine("logs", self.container, check=False).stderr)

    def inspect(self, template: str) -> str:
        return engine("inspect", self.container, "--format", template).stdout.strip()


@pytest.fixture
def project(image: Image, tmp_path: Path) -> Iterator[Project]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "big.bin").write_bytes(hashlib.shake_256(b"compose").digest(BIG))
    started = Project(image.tag, readable_by_all(data))
    try:
        yield started
    finally:
        started.compose("down", "-t", "1", "-v", timeout=60)
        # podman-compose 1.0 leaves the network it made for the project.
        engine("network", "rm", "--force", f"{started.name}_default", check=False)


def fetch_safely(url: str) -> int:
    try:
        return fetch(url)[0]
    except OSError:
        return 0


def test_the_compose_file_stops_after_downloads_in_flight_finish(
    project: Project, tmp_path: Path
) -> None:
    """``stop_grace_period`` above ``DL_GRACEFUL_TIMEOUT``: gunicorn waits for the
    download, then exits 0 before the engine would SIGKILL it. podman-compose 1.0 does
    not read ``stop_grace_period`` itself, so it is passed as ``-t`` (the README says)."""
    service = compose_file()["services"]["download"]  # type: ignore[index]
    grace = seconds(service["stop_grace_period"])
    graceful = int(service["environment"]["DL_GRACEFUL_TIMEOUT"])
    assert grace >= graceful + 3  # the master's own exit needs a moment past the workers'

    project.compose("up", "-d")
    project.wait_healthy()
    assert project.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
    mounts = json.loads(project.inspect("{{json .Mounts}}"))
    assert {m["Destination"]: m["RW"] for m in mounts} == {"/data": False, "/cache": True}
    assert repr_digest(project.url + "/files/big.bin") is not None  # the cache is writable

    out = tmp_path / "big.bin"
    curl = require_tool("curl")
    slow = subprocess.Popen(  # about 10 s at 2 MB/s: past the engines' default stop timeout
        [curl, "-sS", "--limit-rate", "2M", "-o", str(out), project.url + "/files/big.bin"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_bytes(out, 1024 * 1024)
    started = time.monotonic()
    project.compose("stop", "-t", str(grace), timeout=grace + 60)
    took = time.monotonic() - started
    assert slow.wait(timeout=60) == 0
    assert (
        hashlib.sha256(out.read_bytes()).digest()
        == hashlib.sha256((project.data / "big.bin").read_bytes()).digest()
    )
    assert project.inspect("{{.State.ExitCode}}") == "0"
    assert 4 < took < grace, took  # it waited for the download, and no longer


def test_the_compose_file_keeps_the_digest_cache_across_a_recreation(project: Project) -> None:
    project.compose("up", "-d")
    project.wait_healthy()
    digest = repr_digest(project.url + "/files/big.bin")
    assert digest is not None
    project.compose("down", "-t", "5")  # the container goes; the named volume stays
    assert fetch_safely(project.url + "/healthz") == 0
    project.compose("up", "-d")
    project.wait_healthy()
    _, headers, _ = fetch(project.url + "/files/big.bin")
    assert headers.get("Repr-Digest") == digest  # known at once: nothing hashed again
