"""``python -m service.healthcheck`` (the container's HEALTHCHECK): where it asks, and
what it says, against small real HTTP servers on loopback and on a unix socket."""

from __future__ import annotations

import http.server
import os
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from service import healthcheck

REPO = Path(__file__).resolve().parents[2]


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        body = b"ok\n" if self.status == 200 else b"storage: stalled\n"
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        conn, _ = super().get_request()
        return conn, ("local", 0)  # what BaseHTTPRequestHandler expects of an address


@contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def tcp_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    with serving(server):
        yield server.server_address[1]


@pytest.mark.parametrize(
    ("bind", "host", "port"),
    [
        ("0.0.0.0:9000", "127.0.0.1", 9000),
        ("[::]:8000", "::1", 8000),
        ("[::1]:8001", "::1", 8001),
        ("127.0.0.1:8000", "127.0.0.1", 8000),
        ("10.1.2.3:80", "10.1.2.3", 80),
    ],
)
def test_a_wildcard_bind_is_asked_on_loopback(bind: str, host: str, port: int) -> None:
    conn = healthcheck.connection(bind)
    assert (conn.host, conn.port) == (host, port)


def test_a_healthy_server_passes_on_any_spelling_of_its_bind(tcp_port: int) -> None:
    for bind in (f"0.0.0.0:{tcp_port}", f"127.0.0.1:{tcp_port}"):
        assert healthcheck.check(bind) is None


def test_an_unhealthy_or_absent_server_fails_with_the_reason(
    tcp_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Health, "status", 503)
    assert healthcheck.check(f"0.0.0.0:{tcp_port}") == f"0.0.0.0:{tcp_port}: 503 storage: stalled"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert "refused" in (healthcheck.check(f"127.0.0.1:{free}") or "")


def test_a_unix_socket_bind_is_asked_over_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "dl.sock"
    server = _UnixServer(str(path), _Health)
    with serving(server):
        assert healthcheck.check(f"unix:{path}") is None


def test_the_command_exits_0_when_healthy_and_1_with_a_reason_when_not(tcp_port: int) -> None:
    def run(bind: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DL_BIND": bind}
        command = [sys.executable, "-m", "service.healthcheck"]
        return subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=30
        )

    healthy = run(f"0.0.0.0:{tcp_port}")
    assert (healthy.returncode, healthy.stderr) == (0, "")
    broken = run("not a bind")
    assert broken.returncode == 1
    assert broken.stderr.startswith("unhealthy: DL_BIND: expected HOST:PORT")
