"""Mounts ``faultfs.py`` (a fault-injecting FUSE passthrough) for a test, always unmounted.

The filesystem runs under Debian's Python, which has ``python3-fusepy``; the test sets
its faults with :meth:`FaultMount.set`, which the filesystem reads at its next call.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

FUSE_PYTHON = "/usr/bin/python3"
FAULTFS = Path(__file__).with_name("faultfs.py")
MOUNT_TIMEOUT = 10.0


def require_fuse() -> None:
    """Skip (fail in CI) unless /dev/fuse, fusermount3 and python3-fusepy are there."""
    problems = []
    if not os.path.exists("/dev/fuse"):
        problems.append("/dev/fuse is missing")
    probe = subprocess.run(
        [FUSE_PYTHON, "-c", "import fusepy"], capture_output=True, check=False, timeout=30
    )
    if probe.returncode != 0:
        problems.append("python3-fusepy is not installed")
    if subprocess.run(["which", "fusermount3"], capture_output=True, check=False).returncode:
        problems.append("fuse3 (fusermount3) is not installed")
    if problems:
        message = "; ".join(problems) + " (apt-get install fuse3 python3-fusepy; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


class FaultMount:
    """``source`` served read-only at ``mountpoint`` through faultfs."""

    def __init__(self, source: Path, mountpoint: Path, control: Path, log: Path) -> None:
        self.source = source
        self.mountpoint = mountpoint
        self.control = control
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> FaultMount:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    FUSE_PYTHON,
                    str(FAULTFS),
                    str(self.source),
                    str(self.mountpoint),
                    str(self.control),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not os.path.ismount(self.mountpoint):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"faultfs did not mount:\n{self.log.read_text(errors='replace')}"
                )
            time.sleep(0.05)
        return self

    def set(self, *rules: dict[str, Any]) -> None:
        """Replace the faults (a new file each time: the filesystem sees every change)."""
        draft = self.control.with_suffix(".draft")
        draft.write_text(json.dumps({"rules": list(rules)}))
        os.replace(draft, self.control)

    def clear(self) -> None:
        """No faults: stalled calls go on at once."""
        self.control.unlink(missing_ok=True)

    def stop(self) -> None:
        self.clear()
        if os.path.ismount(self.mountpoint):
            subprocess.run(
                ["fusermount3", "-u", "-z", str(self.mountpoint)],
                capture_output=True,
                check=False,
                timeout=30,
            )
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
