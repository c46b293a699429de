"""podman, driven as an operator would: build the project's image unchanged, run it with
published loopback ports, stop and remove everything a test started.

``scripts/container_engine.sh`` (run by ``make test`` and ``.ci/run`` as root) installs
the engine and its base image; here we only check that it works. pip inside the build
reaches the package index as the host's pip does: the host's pip configuration and CA
bundle are mounted read-only into the build, never copied into a layer.
"""

from __future__ import annotations

import functools
import os
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.server import REPO, free_port
from tests.support.tools import require_tool

BUILD_TIMEOUT = 600.0
START_TIMEOUT = 30.0
#: Host files pip's configuration and TLS trust come from, when present.
PIP_FILES = ("/etc/pip.conf",)
CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt",)


@functools.cache
def podman() -> str:
    """The engine's path, once it is known to run containers (else skip, or fail in CI)."""
    path = require_tool("podman")
    if os.geteuid() != 0:
        _unavailable("the container tests run podman as root")
    probe = subprocess.run([path, "info"], capture_output=True, timeout=60, check=False)
    if probe.returncode != 0:
        _unavailable(f"podman cannot run here: {probe.stderr.decode(errors='replace')[-500:]}")
    return path


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def engine(
    *args: str, timeout: float = 120.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [podman(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


def build(tag: str) -> float:
    """Build the Dockerfile as it is; returns the seconds it took."""
    mounts = [f"{path}:{path}:ro" for path in (*PIP_FILES, *CA_BUNDLES) if os.path.exists(path)]
    started = time.monotonic()
    engine(
        "build",
        "--format",
        "docker",  # OCI images drop HEALTHCHECK
        *(arg for mount in mounts for arg in ("-v", mount)),
        "-t",
        tag,
        str(REPO),
        timeout=BUILD_TIMEOUT,
    )
    return time.monotonic() - started


@dataclass
class Container:
    """One ``podman run -d`` of the image; ``url`` is its published port on loopback."""

    image: str
    args: Sequence[str] = ()
    port: int = 8000  # the port inside the container
    name: str = field(default_factory=lambda: f"dl-test-{uuid.uuid4().hex[:12]}")
    host_port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.host_port}"

    def start(self, wait: bool = True) -> Container:
        publish = f"127.0.0.1:{self.host_port}:{self.port}"
        engine("run", "-d", "--name", self.name, "-p", publish, *self.args, self.image)
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        import urllib.request

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{self.name} never answered /healthz:\n{self.logs()}")

    def logs(self) -> str:
        result = engine("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exit_code(self) -> int:
        return int(engine("inspect", self.name, "--format", "{{.State.ExitCode}}").stdout)

    def stop(self, timeout: float | None = None) -> float:
        """``podman stop`` (the engine's default timeout unless given); its seconds."""
        started = time.monotonic()
        extra = () if timeout is None else ("--time", str(int(timeout)))
        engine("stop", *extra, self.name, timeout=(timeout or 10) + 60)
        return time.monotonic() - started

    def remove(self) -> None:
        engine("rm", "--force", "--volumes=false", self.name, check=False)


def image_size(tag: str) -> int:
    return int(engine("image", "inspect", tag, "--format", "{{.Size}}").stdout)


def readable_by_all(folder: Path) -> Path:
    """``folder`` and what it holds readable by the image's unprivileged user (the
    mount shows the folder itself: its parents' modes do not matter)."""
    for path in (folder, *folder.rglob("*")):
        path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))
    return folder
