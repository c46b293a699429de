"""A real nginx on a free 127.0.0.1 port, configured by deploy/nginx/'s template.

The template is rendered by deploy/render.py, exactly as deployed, and
included in a minimal main config whose pid, logs and temp paths all live in a temporary
folder. nginx runs in the foreground (``daemon off``) as the test user; ``stop()`` ends it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from deploy.render import NGINX_OFFLOAD_TEMPLATE, render_file
from tests.support import daemon
from tests.support.server import free_port
from tests.support.tools import require_tool

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
    values = {"listen": listen, "upstream": upstream, "data_root": str(data_root.resolve())}
    return render_file(NGINX_OFFLOAD_TEMPLATE, values)


class NginxServer:
    """nginx in front of ``upstream`` (``host:port``), serving ``data_root`` offloads."""

    def __init__(
        self, data_root: Path, upstream: str, run_dir: Path, site: str | None = None
    ) -> None:
        """``site``: a server block of the test's own instead of the offload template,
        with ``{listen}`` and ``{data_root}`` to fill in (``upstream`` is then unused)."""
        self.host = "127.0.0.1"
        self.port = free_port()
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        listen = f"{self.host}:{self.port}"
        (run_dir / "download.conf").write_text(
            render(data_root, listen, upstream)
            if site is None
            else site.format(listen=listen, data_root=data_root.resolve())
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
        argv = [nginx, "-p", str(self.run_dir), "-c", str(self.run_dir / "nginx.conf")]
        daemon.check_config([*argv, "-t", "-q"], "nginx -t")
        try:
            self.process = daemon.start(argv, self.run_dir / "stderr.log", self.host, self.port)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.log()}") from None
        return self

    def log(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.run_dir / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def stop(self) -> None:
        daemon.stop(self.process)  # fast shutdown: master and workers
