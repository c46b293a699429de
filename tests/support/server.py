"""A real ``gunicorn -c gunicorn.conf.py`` (gevent) subprocess on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class GunicornServer:
    """Starts gunicorn with the project's own config; ``stop()`` ends every process."""

    def __init__(
        self,
        data_root: Path,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        wrapper: Sequence[str] = (),
    ):
        """``wrapper`` is a command that ends by exec-ing its arguments (setpriv, ...)."""
        self.wrapper = list(wrapper)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "DL_DATA_ROOT": str(data_root),
            "DL_BIND": f"{self.host}:{self.port}",
            "DL_WORKERS": "1",
            # Next to the log, not in /dev/shm: each test's server keeps its own cache.
            "DL_DIGEST_CACHE": str(log_path.parent / "digest-cache"),
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> GunicornServer:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*self.wrapper, str(gunicorn), "-c", "gunicorn.conf.py"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                    if sock.recv(64)[8:13] == b" 200 ":
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer /healthz in {START_TIMEOUT}s:\n{self.log()}")

    def worker_pids(self) -> list[int]:
        """PIDs of the worker processes (children of the master)."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def open_fds(self, pid: int) -> int:
        return len(os.listdir(f"/proc/{pid}/fd"))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
