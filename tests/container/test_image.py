"""The container image, built unchanged and run for real with podman: read-only, as an
unprivileged user, healthy wherever DL_BIND puts it, stopped cleanly within the engine's
default timeout, with its digest cache on a volume and its metrics reachable as the
README says.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container.conftest import Image
from tests.container.engine import Container, engine, readable_by_all
from tests.support.lock import normal, pins
from tests.support.server import REPO
from tests.support.tools import require_tool

pytestmark = pytest.mark.container

BIG = 20 * 1024 * 1024 + 17
READ_ONLY = ("--read-only", "--read-only-tmpfs=false")  # /tmp read-only too
#: The engines' default stop timeout: SIGTERM, then SIGKILL this much later.
DEFAULT_STOP = 10


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("container-data")
    (root / "big.bin").write_bytes(hashlib.shake_256(b"container").digest(BIG))
    (root / "small.txt").write_bytes(b"small file\n")
    return readable_by_all(root)


@pytest.fixture
def containers() -> Iterator[list[Container]]:
    """Containers a test starts; each is removed when it ends."""
    started: list[Container] = []
    yield started
    for container in started:
        container.remove()


def run(containers: list[Container], image: Image, *args: str, port: int = 8000) -> Container:
    container = Container(image.tag, args, port)
    containers.append(container)
    return container.start()


def mounted(data: Path) -> tuple[str, ...]:
    return ("-v", f"{data}:/data:ro")


def fetch(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def repr_digest(url: str, timeout: float = 30.0) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, headers, _ = fetch(url)
        if "Repr-Digest" in headers:
            return headers["Repr-Digest"]
        time.sleep(0.2)
    return None


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_a_read_only_container_serves_bytes_ranges_and_digests(
    image: Image, data: Path, containers: list[Container]
) -> None:
    served = run(containers, image, *READ_ONLY, *mounted(data))
    content = (data / "big.bin").read_bytes()
    status, _, body = fetch(served.url + "/files/big.bin")
    assert (status, hashlib.sha256(body).digest()) == (200, hashlib.sha256(content).digest())
    status, headers, body = fetch(served.url + "/files/big.bin", Range="bytes=-1000")
    assert (status, body) == (206, content[-1000:])
    assert headers["Content-Range"] == f"bytes {BIG - 1000}-{BIG - 1}/{BIG}"
    assert repr_digest(served.url + "/files/big.bin") == f"sha-256=:{sha256_b64(content)}:"


def test_every_process_runs_as_the_unprivileged_user(
    image: Image, data: Path, containers: list[Container]
) -> None:
    served = run(containers, image, *READ_ONLY, *mounted(data))
    # The image has no ps: read every process's ids from /proc inside the container.
    script = (
        "import os, json; print(json.dumps({p: [open(f'/proc/{p}/status').read()"
        ".split('Uid:')[1].split()[:2], open(f'/proc/{p}/cmdline').read()]"
        " for p in os.listdir('/proc') if p.isdigit() and p != str(os.getpid())}))"
    )
    processes = json.loads(engine("exec", served.name, "python", "-c", script).stdout)
    commands = [command for _, command in processes.values()]
    assert sum("gunicorn" in command for command in commands) >= 2, commands  # master, worker
    assert {tuple(ids) for ids, _ in processes.values()} == {("10001", "10001")}, processes


def test_the_image_holds_the_venv_once_and_no_build_tools(
    image: Image, data: Path, containers: list[Container]
) -> None:
    served = run(containers, image, *READ_ONLY, *mounted(data))
    listing = engine("exec", served.name, "ls", "-A", "/app").stdout.split()
    assert sorted(listing) == [".venv", "gunicorn.conf.py"]
    script = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    installed = json.loads(engine("exec", served.name, "python", "-c", script).stdout)
    assert not {"pip", "setuptools", "wheel"} & {name.lower() for name in installed}
    assert installed.pop("download-service") == "0.1.0"
    # Exactly the lock, but its build backend, which the image removes once used.
    locked = pins(REPO / "requirements.lock")
    locked.pop("setuptools")
    assert {normal(name): version for name, version in installed.items()} == locked
    assert image.size < 230 * 1024 * 1024, image.size


@pytest.mark.parametrize("bind", [None, "0.0.0.0:9000"])
def test_the_health_check_passes_wherever_dl_bind_puts_the_server(
    image: Image, data: Path, containers: list[Container], bind: str | None
) -> None:
    extra = () if bind is None else ("-e", f"DL_BIND={bind}")
    port = 8000 if bind is None else 9000
    served = run(containers, image, *READ_ONLY, *mounted(data), *extra, port=port)
    check = engine("healthcheck", "run", served.name, check=False)
    assert check.returncode == 0, (check.stdout, check.stderr, served.logs())


def start_download(url: str, out: Path) -> subprocess.Popen[bytes]:
    curl = require_tool("curl")
    return subprocess.Popen(
        [curl, "-sS", "-o", str(out), url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def wait_for_bytes(path: Path, at_least: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {at_least} bytes")


def test_a_default_stop_ends_cleanly_and_the_cut_download_resumes(
    image: Image, data: Path, containers: list[Container], tmp_path: Path
) -> None:
    """DL_GRACEFUL_TIMEOUT (8 s in the image) fits the engines' 10 s: gunicorn closes
    the downloads in flight and exits 0 before the engine would SIGKILL it."""
    throttled = ("-e", "DL_RATE_LIMIT=1m")
    served = run(containers, image, *READ_ONLY, *mounted(data), *throttled)
    out = tmp_path / "big.bin"
    download = start_download(served.url + "/files/big.bin", out)
    wait_for_bytes(out, 1024 * 1024)
    took = served.stop()
    download.wait(timeout=30)
    assert served.exit_code() == 0, served.logs()
    assert took < DEFAULT_STOP - 0.5, took  # gunicorn's own exit, not the engine's SIGKILL
    assert download.returncode != 0  # cut short
    assert 0 < out.stat().st_size < BIG
    again = run(containers, image, *READ_ONLY, *mounted(data))
    curl = require_tool("curl")
    subprocess.run(
        [curl, "-sS", "-f", "-C", "-", "-o", str(out), again.url + "/files/big.bin"],
        check=True,
        timeout=60,
    )
    assert (
        hashlib.sha256(out.read_bytes()).digest()
        == hashlib.sha256((data / "big.bin").read_bytes()).digest()
    )


def test_with_the_documented_stop_timeout_a_download_in_flight_finishes(
    image: Image, data: Path, containers: list[Container], tmp_path: Path
) -> None:
    """The README's run line: ``--stop-timeout 40`` with ``DL_GRACEFUL_TIMEOUT=35``."""
    longer = ("--stop-timeout", "40", "-e", "DL_GRACEFUL_TIMEOUT=35", "-e", "DL_RATE_LIMIT=2m")
    served = run(containers, image, *READ_ONLY, *mounted(data), *longer)
    out = tmp_path / "big.bin"
    download = start_download(served.url + "/files/big.bin", out)
    wait_for_bytes(out, 1024 * 1024)
    took = served.stop(timeout=40)
    assert download.wait(timeout=60) == 0
    assert served.exit_code() == 0, served.logs()
    assert 4 < took < 40, took  # it waited for the download (10 s at 2 MB/s), no longer
    assert (
        hashlib.sha256(out.read_bytes()).digest()
        == hashlib.sha256((data / "big.bin").read_bytes()).digest()
    )


def test_the_digest_cache_survives_a_restart_on_its_volume(
    image: Image, data: Path, containers: list[Container]
) -> None:
    volume = f"dl-test-cache-{uuid.uuid4().hex[:8]}"
    try:
        first = run(containers, image, *READ_ONLY, *mounted(data), "-v", f"{volume}:/cache")
        digest = repr_digest(first.url + "/files/big.bin")
        assert digest is not None
        first.stop()
        second = run(containers, image, *READ_ONLY, *mounted(data), "-v", f"{volume}:/cache")
        _, headers, _ = fetch(second.url + "/files/big.bin")
        assert headers.get("Repr-Digest") == digest  # known at once: nothing hashed again
    finally:
        for container in containers:
            container.remove()
        engine("volume", "rm", "--force", volume, check=False)


def test_metrics_from_the_host_need_the_bridge_gateway_allowed(
    image: Image, data: Path, containers: list[Container]
) -> None:
    """Through a published port the client is the engine's bridge gateway, not loopback."""
    gateway = engine(
        "network", "inspect", "podman", "--format", "{{range .Subnets}}{{.Gateway}}{{end}}"
    ).stdout.strip()
    closed = run(containers, image, *READ_ONLY, *mounted(data))
    assert fetch(closed.url + "/metrics")[0] == 403
    opened = run(containers, image, *READ_ONLY, *mounted(data), "-e", f"DL_METRICS_ALLOW={gateway}")
    status, _, body = fetch(opened.url + "/metrics")
    assert status == 200
    assert b"download_requests_total" in body
