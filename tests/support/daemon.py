"""Foreground servers the tests start besides gunicorn (nginx, HAProxy): check the
config, start the process in a session of its own, wait until it listens, and stop its
whole process group (master and workers)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

START_TIMEOUT = 20.0


def check_config(argv: Sequence[str], what: str) -> None:
    """Run a config test (``nginx -t``, ``haproxy -c``); raise with its output if refused."""
    check = subprocess.run(list(argv), capture_output=True, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"{what} refused the config:\n{check.stderr.decode(errors='replace')}")


def start(argv: Sequence[str], log_path: Path, host: str, port: int) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its output in ``log_path`` and return once it accepts on
    ``host:port``; a process that exits or never listens is stopped and reported."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited early with status {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=1):
                return process
        except OSError:
            time.sleep(0.05)
    stop(process)
    raise RuntimeError(f"{argv[0]} did not listen on {host}:{port} in {START_TIMEOUT}s")


def stop(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM to the process group, SIGKILL if it is still there 10 s later."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
