"""Several service nodes on loopback behind a real HAProxy, and an nginx cache in front.

Each node serves its own copy of the data (``shutil.copy2``: new inodes, the same
mtimes to the nanosecond), as replicas on separate machines would. HAProxy and nginx run
in the foreground as the test user with the project's own templates from ``deploy/``,
rendered into a temporary folder; ``stop()`` ends every process a class started.
"""

from __future__ import annotations

import csv
import getpass
import grp
import io
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deploy.render import HAPROXY_TEMPLATE, NGINX_CACHE_TEMPLATE, node_mirrors, render_file
from tests.clients.support import Access, parse_access_log
from tests.support import daemon
from tests.support.server import GunicornServer, free_port


def replicate(source: Path, target: Path) -> Path:
    """Copy the tree ``source`` to ``target`` with mtimes preserved (new inodes)."""
    shutil.copytree(source, target, copy_function=shutil.copy2)
    return target


@dataclass
class Node:
    """One service node: its gunicorn and its own data root."""

    name: str
    root: Path
    server: GunicornServer

    @property
    def address(self) -> str:
        return f"{self.server.host}:{self.server.port}"

    def accesses(self, target: str | None = None) -> list[Access]:
        """This node's access-log lines (for ``target`` only, if given)."""
        lines = parse_access_log(self.server.log())
        return [a for a in lines if target is None or a.target == target]

    def kill(self) -> None:
        """SIGKILL the master and its workers at once (a crashed machine)."""
        assert self.server.process is not None
        os.killpg(self.server.process.pid, signal.SIGKILL)
        self.server.process.wait(timeout=10)


class HAProxy:
    """``haproxy -db`` over ``nodes`` with deploy/haproxy/haproxy.cfg.in; with
    ``tls_pem`` (certificate and key) its frontend speaks TLS, with HTTP/2 offered."""

    def __init__(
        self, binary: str, nodes: Sequence[str], workdir: Path, tls_pem: Path | None = None
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = free_port()
        self.config = workdir / "haproxy.cfg"
        self.log_path = workdir / "haproxy.log"
        self.socket_path = workdir / "admin.sock"
        self.scheme = "http" if tls_pem is None else "https"
        bind = f"{self.host}:{self.port}"
        if tls_pem is not None:
            bind += f" ssl crt {tls_pem} alpn h2,http/1.1"
        values = {"bind": bind, "state_dir": str(workdir)}
        self.config.write_text(render_file(HAPROXY_TEMPLATE, values, nodes))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> HAProxy:
        daemon.check_config([self.binary, "-c", "-q", "-f", str(self.config)], "haproxy -c")
        argv = [self.binary, "-db", "-f", str(self.config), "-p", str(self.workdir / "pid")]
        self.process = daemon.start(argv, self.log_path, self.host, self.port)
        return self

    def admin(self, command: str) -> str:
        """One command on the admin socket (``show stat``, ``disable server``...)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self) -> dict[str, dict[str, str]]:
        """``show stat`` rows of the backend's servers, by server name."""
        text = self.admin("show stat").lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {
            row["svname"]: row
            for row in rows
            if row["pxname"] == "nodes" and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_states(self, wanted: Mapping[str, str], timeout: float = 15.0) -> dict[str, str]:
        """Poll until each named server's status starts with the wanted one (UP, DOWN)."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = {name: row["status"] for name, row in self.servers().items()}
            if all(states.get(name, "").startswith(want) for name, want in wanted.items()):
                return states
            time.sleep(0.1)
        raise AssertionError(f"servers did not reach {dict(wanted)} in {timeout}s: {states}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        daemon.stop(self.process)


class NginxCache:
    """nginx with deploy/nginx-cache/nginx.conf.in in front of ``origin`` (host:port)."""

    def __init__(self, binary: str, origin: str, workdir: Path, cache_valid: str) -> None:
        self.binary = binary
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = free_port()
        self.config = workdir / "nginx.conf"
        for sub in ("cache", "temp"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        # As root the workers would switch to "nobody", which cannot read the 0700 tmp dirs
        # (not root: nginx ignores the directive with a warning).
        user = f"{getpass.getuser()} {grp.getgrgid(os.getegid()).gr_name}"
        values = {
            "user": user,
            "listen": f"{self.host}:{self.port}",
            "origin": origin,
            "state_dir": str(workdir),
            "cache_dir": str(workdir / "cache"),
            "cache_size": "1g",
            "cache_valid": cache_valid,
        }
        self.config.write_text(render_file(NGINX_CACHE_TEMPLATE, values))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _argv(self, *extra: str) -> list[str]:
        return [
            self.binary,
            "-p",
            f"{self.workdir}/",
            "-c",
            str(self.config),
            "-e",
            str(self.workdir / "error.log"),
            *extra,
        ]

    def start(self) -> NginxCache:
        daemon.check_config(self._argv("-t", "-q"), "nginx -t")
        argv = self._argv("-g", "daemon off;")
        self.process = daemon.start(argv, self.workdir / "nginx.out", self.host, self.port)
        return self

    def access_log(self) -> str:
        path = self.workdir / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def error_log(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        daemon.stop(self.process)


@dataclass
class Cluster:
    """``nodes`` behind ``haproxy``; every process is stopped by :meth:`stop`."""

    nodes: list[Node]
    haproxy: HAProxy
    extra: list[HAProxy | NginxCache] = field(default_factory=list)

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def accesses(self, target: str) -> dict[str, list[Access]]:
        """Every node's access-log lines for ``target``, by node name."""
        return {node.name: node.accesses(target) for node in self.nodes}

    def settled_accesses(
        self, target: str, *, minimum: int = 1, quiet: float = 0.5, timeout: float = 15.0
    ) -> dict[str, list[Access]]:
        """As :meth:`accesses`, once no node's log has grown for ``quiet`` seconds (a line
        is written when a response is finished, which can be after the client left)."""
        deadline = time.monotonic() + timeout
        seen = self.accesses(target)
        changed = time.monotonic()
        while time.monotonic() < deadline:
            count = sum(len(lines) for lines in seen.values())
            if count >= minimum and time.monotonic() - changed >= quiet:
                break
            time.sleep(0.05)
            current = self.accesses(target)
            if current != seen:
                seen, changed = current, time.monotonic()
        return seen

    def stop(self) -> None:
        for process in [*self.extra, self.haproxy]:
            process.stop()
        for node in self.nodes:
            node.server.stop()


def start_nodes(
    source: Path,
    workdir: Path,
    count: int,
    env: Mapping[str, str] | None = None,
    mirrors: bool = False,
) -> list[Node]:
    """``count`` nodes, each over its own replica of ``source``; with ``mirrors``, each
    names the others in ``DL_MIRRORS`` (deploy/render.py) by their direct URLs, under
    the host name ``localhost``: not the balancer's ``127.0.0.1``, which aria2c would
    take for the host it already uses."""
    nodes: list[Node] = []
    for i in range(1, count + 1):
        name = f"node{i}"
        root = replicate(source, workdir / name / "data")
        nodes.append(Node(name, root, GunicornServer(root, workdir / name / "gunicorn.log", env)))
    if mirrors:
        urls = [f"http://localhost:{node.server.port}" for node in nodes]
        for node, value in zip(nodes, node_mirrors(urls), strict=True):
            node.server.env["DL_MIRRORS"] = value
    try:
        for node in nodes:
            node.server.start()
    except BaseException:
        for node in nodes:
            node.server.stop()
        raise
    return nodes


def start_cluster(
    haproxy: str,
    source: Path,
    workdir: Path,
    count: int = 3,
    env: Mapping[str, str] | None = None,
    mirrors: bool = False,
) -> Cluster:
    """``count`` nodes over replicas of ``source`` behind HAProxy, all of them UP."""
    nodes = start_nodes(source, workdir, count, env, mirrors)
    proxy = HAProxy(haproxy, [node.address for node in nodes], workdir)
    cluster = Cluster(nodes, proxy)
    try:
        proxy.start()
        proxy.wait_states({node.name: "UP" for node in nodes})
    except BaseException:
        cluster.stop()
        raise
    return cluster


def by_node(accesses: Mapping[str, Iterable[Access]]) -> str:
    """The access-log lines of every node, for assertion messages."""
    parts = []
    for name, lines in accesses.items():
        parts.append(f"{name}:")
        parts.extend(f"  {line}" for line in lines)
    return "\n".join(parts)
