"""Starting and stopping the peers, each on a free 127.0.0.1 port in its own process group.

- the service: ``gunicorn -c gunicorn.conf.py`` (gevent), ``DL_SENDFILE=1`` and ``=0``;
- nginx with ``sendfile on``, and with ``sendfile off; output_buffers 2 256k``: a minimal
  nginx.conf generated into the run's temp dir (pid, logs, temp paths there too), run as
  the current user with ``-p prefix -c conf -g 'daemon off;'``, no ``tcp_nopush``;
- Flask ``send_from_directory`` (Werkzeug ``send_file``) under the same gunicorn config;
- a bare WSGI function (``bench.peers.bare_wsgi``) under the same gunicorn config;
- Starlette ``FileResponse`` under uvicorn (uvloop + httptools from ``uvicorn[standard]``).
"""

from __future__ import annotations

import getpass
import grp
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.proc_stats import children, free_port
from bench.procs import Processes

START_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Peer:
    name: str
    label: str
    kind: str  # "service", "werkzeug", "nginx" or "starlette"
    setting: str = ""  # DL_SENDFILE for the service, sendfile on/off for nginx


SVC_SENDFILE = Peer("svc-sendfile", "ours, DL_SENDFILE=1", "service", "1")
SVC_COPY = Peer("svc-copy", "ours, DL_SENDFILE=0", "service", "0")
NGINX_SENDFILE = Peer("nginx-sendfile", "nginx, sendfile on", "nginx", "on")
NGINX_COPY = Peer("nginx-copy", "nginx, sendfile off + output_buffers 2 256k", "nginx", "off")
WERKZEUG = Peer("werkzeug", "Flask send_file (Werkzeug), gunicorn gevent", "werkzeug")
STARLETTE = Peer("starlette", "Starlette FileResponse, uvicorn", "starlette")
#: The stack's ceiling: a bare WSGI function under the same gunicorn + gevent worker.
BARE = Peer("bare", "bare WSGI function, gunicorn gevent", "bare")

OURS = (SVC_SENDFILE, SVC_COPY)
NGINX = (NGINX_SENDFILE, NGINX_COPY)
ALL_PEERS = (SVC_SENDFILE, SVC_COPY, NGINX_SENDFILE, NGINX_COPY, WERKZEUG, STARLETTE)
#: Scenario 8 (the cost of one request): the service with its defaults, the bare stack
#: and nginx.
CEILING_PEERS = (SVC_SENDFILE, BARE, NGINX_SENDFILE)


@dataclass(frozen=True, slots=True)
class Tools:
    repo: Path
    gunicorn: Path  # the service's virtualenv
    python: Path  # bench/.venv (uvicorn, starlette)
    nginx: Path
    workdir: Path  # the run's temp dir: configs, logs, pids


class Server:
    """One running peer. ``start()`` returns once ``/healthz`` answers 200."""

    def __init__(
        self,
        peer: Peer,
        workers: int,
        data_root: Path,
        tools: Tools,
        procs: Processes,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.peer = peer
        self.workers = workers
        self.data_root = data_root
        self.tools = tools
        self.procs = procs
        self.extra_env = dict(env or {})
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._leader = 0
        self.log_path = tools.workdir / "logs" / f"{peer.name}-w{workers}.log"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _attempt in range(3):  # a free port can be taken before the server binds it
            self.port = free_port()
            argv, env, cwd = self._command()
            with open(self.log_path, "ab") as log:
                process = self.procs.spawn(argv, env=env, cwd=cwd, stdout=log, stderr=log)
            self.process, self._leader = process, process.pid
            try:
                self._wait_ready()
                return self
            except RuntimeError as error:
                last_error = str(error)
                self.procs.stop(process, signal.SIGKILL)
        raise RuntimeError(f"{self.peer.name} did not start: {last_error}\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None:
            # gunicorn: SIGINT is its quick shutdown (SIGTERM waits for downloads);
            # nginx: SIGTERM is fast shutdown; uvicorn: either, bounded by its option.
            gunicorn = self.peer.kind in ("service", "werkzeug", "bare")
            sig = signal.SIGINT if gunicorn else signal.SIGTERM
            self.procs.stop(self.process, sig, grace=5.0)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def worker_pids(self) -> list[int]:
        """The processes that serve: gunicorn/nginx/uvicorn workers (uvicorn alone: itself)."""
        if self.peer.kind == "starlette" and self.workers == 1:
            return [self._leader]
        pids = children(self._leader)
        if self.peer.kind == "starlette":  # skip multiprocessing's resource tracker
            pids = [p for p in pids if b"resource_tracker" not in _cmdline(p)]
        return pids

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _command(self) -> tuple[Sequence[str], dict[str, str], Path]:
        # Every peer gets the service's defaults: none of the caller's DL_* settings (a
        # signing key would turn every request into a 403), nor GUNICORN_CMD_ARGS.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DL_") and k != "GUNICORN_CMD_ARGS"
        }
        env |= {"DL_DATA_ROOT": str(self.data_root), **self.extra_env}
        bind = f"{self.host}:{self.port}"
        repo = self.tools.repo
        if self.peer.kind == "service":
            env |= {"DL_BIND": bind, "DL_WORKERS": str(self.workers)}
            env["DL_SENDFILE"] = self.peer.setting
            return [str(self.tools.gunicorn), "-c", "gunicorn.conf.py"], env, repo
        if self.peer.kind in ("werkzeug", "bare"):
            env |= {"DL_BIND": bind, "DL_WORKERS": str(self.workers)}
            module = "werkzeug_app" if self.peer.kind == "werkzeug" else "bare_wsgi"
            app = f"bench.peers.{module}:app"
            return [str(self.tools.gunicorn), "-c", "gunicorn.conf.py", app], env, repo
        if self.peer.kind == "starlette":
            argv = [
                str(self.tools.python),
                "-m",
                "uvicorn",
                "bench.peers.starlette_app:app",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--backlog",
                "4096",
                "--timeout-graceful-shutdown",
                "2",
            ]
            return argv, env, repo
        if self.peer.kind == "nginx":
            prefix = self.tools.workdir / f"nginx-{self.peer.name}-{self.port}"
            conf = write_nginx_conf(prefix, self.port, self.workers, self.data_root, self.peer)
            argv = [
                str(self.tools.nginx),
                "-p",
                f"{prefix}/",
                "-c",
                str(conf),
                "-e",
                str(prefix / "error.log"),
                "-g",
                "daemon off;",
            ]
            return argv, env, prefix
        raise ValueError(self.peer.kind)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"exited with {self.process.returncode}")
            if _healthy(self.host, self.port) and self.worker_pids():
                return
            time.sleep(0.05)
        raise RuntimeError(f"no 200 from /healthz within {START_TIMEOUT:.0f}s")


def write_nginx_conf(prefix: Path, port: int, workers: int, data_root: Path, peer: Peer) -> Path:
    """A minimal nginx.conf; everything it writes stays under ``prefix``."""
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    # As root the workers would switch to "nobody", which cannot read the 0700 temp dir.
    user = ""
    if os.geteuid() == 0:
        user = f"user {getpass.getuser()} {grp.getgrgid(os.getegid()).gr_name};\n"
    if peer.setting == "on":
        delivery = "sendfile on;"
    else:
        delivery = "sendfile off;\n    output_buffers 2 256k;"
    text = f"""{user}worker_processes {workers};
worker_rlimit_nofile 16384;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 8192;
}}
http {{
    access_log {prefix}/access.log combined buffer=64k flush=1s;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;
    {delivery}
    # no tcp_nopush: with it every small response stalls about 40 ms on loopback
    keepalive_timeout 5s;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /healthz {{
            return 200 "ok\\n";
        }}
        location /files/ {{
            alias {data_root}/;
            autoindex on;  # the listing scenario: what rclone walks
        }}
    }}
}}
"""
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return conf


@contextmanager
def running(
    peers: Sequence[Peer],
    workers: int,
    data_root: Path,
    tools: Tools,
    procs: Processes,
    env: Mapping[str, str] | None = None,
) -> Iterator[dict[str, Server]]:
    """Start every peer (``workers`` each); stop them all on the way out, whatever happens."""
    servers: dict[str, Server] = {}
    try:
        for peer in peers:
            servers[peer.name] = Server(peer, workers, data_root, tools, procs, env).start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def default_tools(repo: Path, workdir: Path) -> Tools:
    gunicorn = Path(os.environ.get("BENCH_GUNICORN", repo / ".venv" / "bin" / "gunicorn"))
    nginx = Path(os.environ.get("BENCH_NGINX", "/usr/sbin/nginx"))
    return Tools(repo, gunicorn, Path(sys.executable), nginx, workdir)


def _healthy(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"GET /healthz HTTP/1.0\r\nHost: bench\r\n\r\n")
            return sock.recv(64)[8:13] == b" 200 "
    except OSError:
        return False


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
