"""Application controls with DL_OFFLOAD=x-accel behind a real nginx: download caps (the
app's 429 passes through; nginx reports each delivery's end, with what it sent, to the
access log and the metrics), rate limits
(X-Accel-Limit-Rate), client-bound signed links via X-Real-IP from a trusted proxy only,
and no gunicorn connection held while nginx sends."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.sansio.signing import Signer
from tests.integration import rawhttp
from tests.integration.helpers import MiB, sha256, write_big_file
from tests.integration.test_metrics import delta, files, in_flight, scrape, sent, total
from tests.support.nginx import NginxServer
from tests.support.server import GunicornServer

pytestmark = pytest.mark.server

KEY = "offload-signing-key-0123456789abcdef"
Stack = Callable[..., tuple[GunicornServer, NginxServer]]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """``stack(root, **env)`` -> (gunicorn with offload, nginx in front of it)."""
    started: list[GunicornServer | NginxServer] = []

    def start(root: Path, **env: str) -> tuple[GunicornServer, NginxServer]:
        number = len(started)
        app = GunicornServer(
            root, tmp_path / f"app-{number}.log", {"DL_OFFLOAD": "x-accel", **env}
        ).start()
        started.append(app)
        nginx = NginxServer(root, f"127.0.0.1:{app.port}", tmp_path / f"nginx-{number}").start()
        started.append(nginx)
        return app, nginx

    yield start
    for server in reversed(started):
        server.stop()


def open_download(nginx: NginxServer, path: str, *headers: str) -> tuple[socket.socket, bytes]:
    """A download started through nginx: its socket and its header section."""
    sock = socket.create_connection((nginx.host, nginx.port), timeout=10)
    # A small window, so a rate-limited nginx cannot finish the send into our buffers.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    extra = "".join(f"{line}\r\n" for line in headers)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "closed before the header section"
        head += chunk
    return sock, head


def status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def test_the_download_cap_counts_offloaded_downloads_until_nginx_finishes_them(
    stack: Stack, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    root.mkdir()
    write_big_file(root / "big.bin", 8 * MiB, seed=31)
    (root / "small.txt").write_bytes(b"small")
    _app, nginx = stack(root, DL_MAX_DOWNLOADS_PER_CLIENT="2", DL_RATE_LIMIT="128k")
    first, head1 = open_download(nginx, "/files/big.bin")
    second, head2 = open_download(nginx, "/files/big.bin", "X-Real-IP: 198.51.100.1")
    try:
        assert status(head1) == status(head2) == 200
        # The app answered both at once (nginx sends); their slots are still taken, and a
        # client cannot escape by claiming another address: nginx overwrites X-Real-IP.
        refused = rawhttp.get(
            nginx.host,
            nginx.port,
            "/files/big.bin",
            [("X-Real-IP", "203.0.113.9"), ("Connection", "close")],
        )
        assert refused.status == 429
        assert refused["Retry-After"] == "5"
        assert refused.body == b"Too Many Requests: this client has too many downloads\n"
        # A client cannot free its slots by asking nginx for the report itself.
        for target in ("/_offload/done", "/_offload/full/small.txt"):
            rawhttp.get(nginx.host, nginx.port, target, [("X-Offload-Done", "1")])
        again = rawhttp.get(nginx.host, nginx.port, "/files/small.txt", [("Connection", "close")])
        assert again.status == 429
    finally:
        first.close()
        second.close()
    # nginx notices the closed connections and reports their end: the slots free.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = rawhttp.get(nginx.host, nginx.port, "/files/small.txt", [("Connection", "close")])
        if answer.status == 200:
            assert answer.body == b"small"
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the slots were never freed after the downloads ended")


def test_x_accel_limit_rate_and_the_free_burst_are_applied_by_nginx(
    stack: Stack, tmp_path: Path
) -> None:
    """nginx's limit is coarse: it allows rate x (whole seconds elapsed + 1) past the
    burst, so a download is about a second faster than with the app's own pacing."""
    root = tmp_path / "data"
    root.mkdir()
    size, burst, rate = 6 * MiB, 3 * MiB, 1 * MiB
    digest = write_big_file(root / "big.bin", size, seed=32)
    _app, nginx = stack(root, DL_RATE_LIMIT="1m", DL_RATE_LIMIT_AFTER="3m")
    started = time.monotonic()
    response = rawhttp.exchange(
        nginx.host,
        nginx.port,
        rawhttp.build_request("GET", "/files/big.bin", [("Connection", "close")]),
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert sha256(response.body) == digest
    paced = (size - burst) / rate  # 3 s with the app's pacing
    # Without the burst nginx would take about 5 s; without the rate, a few ms.
    assert paced - 1.8 <= elapsed <= paced + 0.6, f"{elapsed:.2f}s"


def test_client_bound_links_use_the_address_nginx_saw(stack: Stack, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "a.txt").write_bytes(b"bound")
    app, nginx = stack(root, DL_SIGNING_KEY=KEY, DL_SIGNING_BIND_CLIENT="1")
    signer = Signer((KEY.encode(),))
    expires = int(time.time()) + 300

    def fetch(server: GunicornServer | NginxServer, client: str, *headers: tuple[str, str]):
        target = "/files/a.txt?" + signer.query("a.txt", expires, client)
        return rawhttp.get(server.host, server.port, target, [*headers, ("Connection", "close")])

    assert fetch(nginx, "127.0.0.1").status == 200
    assert fetch(nginx, "127.0.0.1").body == b"bound"
    # Another client's link does not open, whatever X-Real-IP the client sends.
    assert fetch(nginx, "203.0.113.7", ("X-Real-IP", "203.0.113.7")).status == 403
    forged = "/files/a.txt?" + signer.query("a.txt", expires, "127.0.0.1")[:-2] + "xx"
    assert rawhttp.get(nginx.host, nginx.port, forged, [("Connection", "close")]).status == 403
    # The service believes X-Real-IP from a trusted proxy (loopback by default) ...
    assert fetch(app, "203.0.113.7", ("X-Real-IP", "203.0.113.7")).status == 200


def test_x_real_ip_from_an_untrusted_peer_is_ignored(stack: Stack, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "a.txt").write_bytes(b"bound")
    app, _nginx = stack(
        root,
        DL_SIGNING_KEY=KEY,
        DL_SIGNING_BIND_CLIENT="1",
        DL_TRUSTED_PROXIES="192.0.2.10/32",
    )
    signer = Signer((KEY.encode(),))
    expires = int(time.time()) + 300
    for client, expected in (("203.0.113.7", 403), ("127.0.0.1", 200)):
        target = "/files/a.txt?" + signer.query("a.txt", expires, client)
        answer = rawhttp.get(
            app.host, app.port, target, [("X-Real-IP", "203.0.113.7"), ("Connection", "close")]
        )
        assert answer.status == expected, client


def test_gunicorn_holds_no_connection_while_nginx_sends(stack: Stack, tmp_path: Path) -> None:
    """Twelve slow downloads at once through a worker that takes four connections: all
    start at once, because the app answers each in milliseconds and nginx keeps the
    client; the worker has no descriptor of the file open while they run."""
    root = tmp_path / "data"
    root.mkdir()
    size = 1 * MiB
    digest = write_big_file(root / "big.bin", size, seed=33)
    app, nginx = stack(root, DL_WORKER_CONNECTIONS="4", DL_RATE_LIMIT="256k")
    (worker,) = app.worker_pids()
    downloads = []
    started = time.monotonic()
    try:
        for _ in range(12):
            downloads.append(open_download(nginx, "/files/big.bin"))
        all_started = time.monotonic() - started
        assert all(status(head) == 200 for _, head in downloads)
        data_file = os.path.realpath(root / "big.bin")
        held = [
            fd
            for fd in os.listdir(f"/proc/{worker}/fd")
            if os.path.realpath(f"/proc/{worker}/fd/{fd}") == data_file
        ]
        assert held == []
        assert all_started < 1.5, f"starting 12 downloads took {all_started:.2f}s"
        bodies: list[bytes] = [b""] * len(downloads)

        def drain(index: int, sock: socket.socket, head: bytes) -> None:
            data = head.split(b"\r\n\r\n", 1)[1]
            while len(data) < size and (chunk := sock.recv(1 << 16)):
                data += chunk
            bodies[index] = data

        threads = [
            threading.Thread(target=drain, args=(index, sock, head))
            for index, (sock, head) in enumerate(downloads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        elapsed = time.monotonic() - started
        assert [sha256(body) for body in bodies] == [digest] * len(downloads)
        # Each was rate limited, so they really ran side by side (12 x 4 s in sequence).
        assert 1.5 < elapsed < 12, f"{elapsed:.2f}s"
    finally:
        for sock, _ in downloads:
            sock.close()


def access_log(app: GunicornServer) -> list[dict]:
    return [json.loads(line) for line in app.log().splitlines() if line.startswith("{")]


def reports(app: GunicornServer, count: int) -> list[dict]:
    """The access-log lines of nginx's delivery reports, once there are ``count``."""
    deadline = time.monotonic() + 10
    while True:
        found = [r for r in access_log(app) if r["target"] == "/_offload/done"]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_nginx_reports_what_it_delivered_to_the_log_and_the_metrics(
    stack: Stack, tmp_path: Path
) -> None:
    """The service's answer is logged as ``offloaded`` with no body bytes; nginx's report,
    under the same request id, gives the bytes it sent and how the delivery ended, and
    the metrics count them without counting the report as a request."""
    root = tmp_path / "data"
    root.mkdir()
    size = 2 * MiB
    digest = write_big_file(root / "big.bin", size, seed=34)
    write_big_file(root / "slow.bin", 16 * MiB, seed=35)
    # Within the free burst the downloads are fast; slow.bin is paced past it.
    app, nginx = stack(root, DL_RATE_LIMIT="1m", DL_RATE_LIMIT_AFTER="4m")
    before = scrape(app)
    full = rawhttp.get(nginx.host, nginx.port, "/files/big.bin", [("Connection", "close")])
    assert sha256(full.body) == digest
    part = rawhttp.get(nginx.host, nginx.port, "/files/big.bin", [("Range", "bytes=10-1009")])
    assert part.status == 206
    sock, head = open_download(nginx, "/files/slow.bin")
    assert status(head) == 200
    sock.recv(65536)
    sock.close()
    (full_report, range_report, aborted_report) = reports(app, 3)
    assert full_report["id"] == full["X-Request-Id"]
    assert (full_report["bytes"], full_report["outcome"]) == (size, "complete")
    assert range_report["id"] == part["X-Request-Id"]
    assert (range_report["bytes"], range_report["outcome"]) == (1000, "complete")
    assert aborted_report["outcome"] == "aborted"
    assert 0 < aborted_report["bytes"] < 16 * MiB
    assert full_report["client"] == "127.0.0.1"
    answers = {r["id"]: r for r in access_log(app) if r["target"].startswith("/files/")}
    assert (answers[full["X-Request-Id"]]["outcome"], answers[full["X-Request-Id"]]["bytes"]) == (
        "offloaded",
        0,
    )
    after = scrape(app)
    assert sent(after, "full") - sent(before, "full") == size + aborted_report["bytes"]
    assert sent(after, "range") - sent(before, "range") == 1000
    assert total(after, "download_transfers_aborted_total") == 1 + total(
        before, "download_transfers_aborted_total"
    )
    assert delta(files(after), files(before)) == {("200", "full"): 2, ("206", "range"): 1}
    assert in_flight(after) == 0
