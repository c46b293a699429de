"""A real nginx on a free 127.0.0.1 port, configured by deploy/nginx/'s template.

The template is rendered by deploy/nginx/render.sh (envsubst), exactly as deployed, and
included in a minimal main config whose pid, logs and temp paths all live in a temporary
folder. nginx runs in the foreground (``daemon off``) as the test user; ``stop()`` ends it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.server import REPO, free_port
from tests.support.tools import require_tool

TEMPLATE = REPO / "deploy" / "nginx" / "download.conf.template"
RENDER = REPO / "deploy" / "nginx" / "render.sh"
START_TIMEOUT = 10.0

_MAIN = """\
daemon off;
worker_processes 1;
{user}pid {run}/nginx.pid;
error_log {run}/error.log info;
events {{ worker_connections 512; }}
http {{
    default_type application/octet-stream;
    access_log {run}/access.log;
    client_body_temp_path {run}/client_body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    include {run}/download.conf;
}}
"""


def find_nginx() -> str:
    """nginx's path; it lives in /usr/sbin, which a user's PATH may lack."""
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    return path or require_tool("nginx")


def render(data_root: Path, listen: str, upstream: str) -> str:
    require_tool("envsubst")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DL_NGINX_LISTEN": listen,
        "DL_NGINX_UPSTREAM": upstream,
        "DL_DATA_ROOT": str(data_root),
    }
    text = subprocess.run(
        ["sh", str(RENDER)], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert "${DL_" not in text, "a placeholder was left unrendered"
    return text


class NginxServer:
    """nginx in front of ``upstream`` (``host:port``), serving ``data_root`` offloads."""

    def __init__(self, data_root: Path, upstream: str, run_dir: Path) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "download.conf").write_text(
            render(data_root, f"{self.host}:{self.port}", upstream)
        )
        # As root, nginx's workers would switch to an unprivileged user that cannot read
        # the test's temporary folders; as any other user the directive is refused.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        (run_dir / "nginx.conf").write_text(_MAIN.format(run=run_dir, user=user))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> NginxServer:
        nginx = find_nginx()
        conf = str(self.run_dir / "nginx.conf")
        check = subprocess.run(
            [nginx, "-t", "-q", "-p", str(self.run_dir), "-c", conf], capture_output=True
        )
        if check.returncode != 0:
            pytest.fail(f"nginx -t refused the rendered config:\n{check.stderr.decode()}")
        with open(self.run_dir / "stderr.log", "ab") as log:
            self.process = subprocess.Popen(
                [nginx, "-p", str(self.run_dir), "-c", conf],
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
                raise RuntimeError(f"nginx exited early:\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen in {START_TIMEOUT}s:\n{self.log()}")

    def log(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.run_dir / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # fast shutdown: master and workers
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
