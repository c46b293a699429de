"""Slowloris and idle keep-alive connections: bounded in time, harmless to other clients.

What bounds them is gunicorn's keep-alive setting (``DL_KEEPALIVE``), and for the gevent
worker it bounds more than the wait *between* requests. gunicorn 27.0.1:

- ``gunicorn/workers/base_async.py`` ``AsyncWorker.handle`` (lines 85-90)::

      while True:
          req = None
          with self.timeout_ctx():
              req = next(parser)
          if not req:
              break

- ``gunicorn/workers/ggevent.py`` (lines 53-54)::

      def timeout_ctx(self):
          return gevent.Timeout(self.cfg.keepalive, False)

- ``next(parser)`` builds the ``Request`` (``http/parser.py`` line 119), whose
  ``Message.__init__`` parses the whole header section (``http/message.py`` line 324).

So every request head, the first one on a connection included, must arrive complete
within ``keepalive`` seconds of the worker starting to wait for it. It is a deadline
for the whole head, not an inactivity timer: trickling a byte every 0.5 s does not
extend it. When it fires the ``False`` makes the ``with`` swallow the timeout, ``req``
stays ``None`` and the connection is closed without an answer. (With ``keepalive = 0``
the branch at line 76 calls ``next(parser)`` with no deadline at all: DL_KEEPALIVE=0
would disable this defence.)

The server runs with ``DL_KEEPALIVE=2`` to keep the test short. The connection counts
(200 trickling, 300 idle) stay below gunicorn's ``worker_connections``
(DL_WORKER_CONNECTIONS, 1000 by default): a worker with that many connections stops
accepting, and new clients then wait in the listen backlog until a held connection
times out (up to DL_KEEPALIVE). Nothing caps connections per client address
(DL_MAX_DOWNLOADS_PER_CLIENT counts downloads, not connections).
"""

from __future__ import annotations

import re
import selectors
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration import rawhttp
from tests.integration.conftest import ServerFactory
from tests.integration.helpers import (
    assert_healthy,
    etag_of,
    pseudo_random,
    settled_fd_count,
    the_worker,
    wait_fds_at_most,
)
from tests.support.server import GunicornServer

pytestmark = pytest.mark.server

KEEPALIVE = 2  # DL_KEEPALIVE of the servers below, seconds
TRICKLERS = 200
TRICKLE_INTERVAL = 0.5  # one byte per connection every this many seconds
TRICKLE_DURATION = 7.0  # the trickling stops by then whatever happens
IDLE = 300
#: A normal client must be answered within this while the others hog connections: a
#: functional bound (the worker is not blocked), not a benchmark.
PROMPT = 2.0
#: How early/late after KEEPALIVE the server may close a connection. Client-side times
#: start at connect (or at the end of the response), a little before the server's timer
#: starts, so only the lateness needs a real margin (scheduling on a busy 2-core box).
EARLY = 0.1
LATE = 1.5
SMALL = pseudo_random(100 * 1000, seed=1_2_3)
#: A request head that needs ~60 bytes, so 30 s at one byte per 0.5 s: it never
#: completes within TRICKLE_DURATION, let alone within KEEPALIVE.
SLOW_HEAD = b"GET /files/small.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n\r\n"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slow") / "data"
    root.mkdir()
    (root / "small.bin").write_bytes(SMALL)
    return root


@pytest.fixture(scope="module")
def server(root: Path, module_server_factory: ServerFactory) -> GunicornServer:
    # DL_SEND_TIMEOUT stays at its default (60 s, longer than KEEPALIVE); see the last test.
    return module_server_factory(root, DL_KEEPALIVE=str(KEEPALIVE))


# -- the clients --------------------------------------------------------------------------


@dataclass
class Held:
    """One client connection held open by the test, and what became of it."""

    sock: socket.socket
    since: float  # when the idle (or trickling) time started, time.monotonic()
    sent: int = 0
    received: bytes = b""
    closed_after: float | None = None  # seconds from ``since`` to the server's close


@dataclass
class Crowd:
    """Many held connections; ``poll`` notes the ones the server has closed."""

    members: list[Held] = field(default_factory=list)
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)

    def add(self, sock: socket.socket, since: float) -> Held:
        held = Held(sock, since)
        self.members.append(held)
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, held)
        return held

    def open_count(self) -> int:
        return sum(held.closed_after is None for held in self.members)

    def poll(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            held: Held = key.data
            try:
                data = held.sock.recv(4096)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                data = b""
            if data:
                held.received += data  # the server is not supposed to say anything
                continue
            self.closed(held)

    def closed(self, held: Held) -> None:
        if held.closed_after is None:
            held.closed_after = time.monotonic() - held.since
            self.selector.unregister(held.sock)

    def wait_all_closed(self, deadline: float) -> None:
        while self.open_count() and time.monotonic() < deadline:
            self.poll(0.05)

    def close(self) -> None:
        self.selector.close()
        for held in self.members:
            held.sock.close()


@pytest.fixture
def crowd() -> Iterator[Crowd]:
    crowd = Crowd()
    yield crowd
    crowd.close()


def connect(server: GunicornServer) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(5)
        sock.connect((server.host, server.port))
    except BaseException:
        sock.close()
        raise
    return sock


def timed(server: GunicornServer, target: str, headers: list[str]) -> rawhttp.RawResponse:
    """One request on a fresh connection that must be answered within PROMPT seconds."""
    started = time.monotonic()
    with rawhttp.Connection(server.host, server.port, timeout=PROMPT) as conn:
        conn.request("GET", target, [*headers, "Connection: close"])
        response = conn.read_response(deadline=started + PROMPT)
    elapsed = time.monotonic() - started
    assert elapsed < PROMPT, f"{target} {headers} took {elapsed:.2f}s"
    return response


def assert_normal_clients_served(server: GunicornServer, root: Path) -> None:
    """A whole small download, a range request and a 304, each promptly and exact."""
    whole = timed(server, "/files/small.bin", [])
    assert (whole.status, whole.body) == (200, SMALL)
    part = timed(server, "/files/small.bin", ["Range: bytes=1000-1999"])
    assert (part.status, part.body) == (206, SMALL[1000:2000])
    cached = timed(server, "/files/small.bin", [f"If-None-Match: {etag_of(root / 'small.bin')}"])
    assert cached.status == 304


def assert_closed_after_keepalive(crowd: Crowd, what: str) -> list[float]:
    times = sorted(held.closed_after for held in crowd.members if held.closed_after is not None)
    assert len(times) == len(crowd.members), (
        f"{len(crowd.members) - len(times)} {what} connections still open"
    )
    assert times[0] >= KEEPALIVE - EARLY, f"{what}: closed after {times[0]:.2f}s"
    assert times[-1] <= KEEPALIVE + LATE, f"{what}: closed after {times[-1]:.2f}s"
    assert [held.received for held in crowd.members if held.received] == []
    return times


def assert_no_tracebacks(server: GunicornServer) -> None:
    log = server.log()
    assert "Traceback" not in log, log[-3000:]
    assert not re.search(r"\[(ERROR|CRITICAL)\]", log), log[-3000:]


# -- the tests ----------------------------------------------------------------------------


def test_slowloris_is_cut_after_keepalive_while_others_are_served(
    server: GunicornServer, root: Path, crowd: Crowd
) -> None:
    worker = the_worker(server)
    baseline = settled_fd_count(server, worker)
    for _ in range(TRICKLERS):
        held = crowd.add(connect(server), time.monotonic())
        held.sock.send(SLOW_HEAD[:1])
        held.sent = 1
    served_during_trickle = False
    started = time.monotonic()
    stop = started + TRICKLE_DURATION
    for round_index in range(1, int(TRICKLE_DURATION / TRICKLE_INTERVAL) + 1):
        due = started + round_index * TRICKLE_INTERVAL
        while (left := due - time.monotonic()) > 0:  # bounded: ``due`` is fixed
            crowd.poll(left)
        if not crowd.open_count():
            break
        for held in crowd.members:
            if held.closed_after is not None:
                continue
            try:
                held.sock.send(SLOW_HEAD[held.sent : held.sent + 1])
                held.sent += 1
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                crowd.closed(held)
        if round_index == 2:
            # One second in, the worker holds every trickler (a socket each)...
            assert server.open_fds(worker) >= baseline + TRICKLERS
            # ...and serves other clients all the same, while all of them trickle on.
            assert_normal_clients_served(server, root)
            crowd.poll(0)
            assert crowd.open_count() == TRICKLERS
            served_during_trickle = True
    crowd.wait_all_closed(stop)
    assert served_during_trickle
    times = assert_closed_after_keepalive(crowd, "trickling")
    # Each sent a byte per interval until cut: the deadline is for the whole head.
    most_sent = max(held.sent for held in crowd.members)
    assert most_sent <= (KEEPALIVE + LATE) / TRICKLE_INTERVAL + 1 < len(SLOW_HEAD)
    print(
        f"\n[slowloris DL_SENDFILE={server.env['DL_SENDFILE']}]"
        f" {TRICKLERS} trickling connections closed"
        f" after {times[0]:.2f}..{times[-1]:.2f}s (DL_KEEPALIVE={KEEPALIVE}),"
        f" at most {most_sent} bytes of a {len(SLOW_HEAD)}-byte head sent"
    )
    crowd.close()
    count = wait_fds_at_most(server, worker, baseline)
    assert count <= baseline, f"{count} fds, baseline {baseline}"
    assert the_worker(server) == worker
    assert_healthy(server)
    assert_no_tracebacks(server)


def idle_after_one_request(server: GunicornServer, root: Path, index: int) -> socket.socket:
    """A keep-alive connection that made one request, read the answer, and went quiet."""
    requests = [
        ("/files/small.bin", []),  # a file body: the download path
        ("/files/small.bin", [f"If-None-Match: {etag_of(root / 'small.bin')}"]),  # 304
        ("/files/", []),  # a listing
        ("/healthz", []),
    ]
    target, headers = requests[index % len(requests)]
    conn = rawhttp.Connection(server.host, server.port)
    try:
        conn.request("GET", target, headers)
        response = conn.read_response()
        assert response.status in (200, 304), response.head
        assert response.get("Connection") != "close"
    except BaseException:
        conn.close()
        raise
    return conn.sock


def test_idle_connections_are_closed_after_keepalive_and_do_not_stop_service(
    server: GunicornServer, root: Path, crowd: Crowd
) -> None:
    """Half never send a byte; half send one request and keep the connection idle."""
    worker = the_worker(server)
    baseline = settled_fd_count(server, worker)
    silent = []
    for index in range(IDLE):
        if index % 2:
            sock = idle_after_one_request(server, root, index // 2)
        else:
            sock = connect(server)
            silent.append(sock)
        crowd.add(sock, time.monotonic())
    assert server.open_fds(worker) >= baseline + IDLE
    assert_normal_clients_served(server, root)
    crowd.poll(0)
    assert crowd.open_count() == IDLE  # served while all 300 were held open
    crowd.wait_all_closed(time.monotonic() + KEEPALIVE + LATE + 1)
    times = assert_closed_after_keepalive(crowd, "idle")
    print(
        f"\n[idle DL_SENDFILE={server.env['DL_SENDFILE']}]"
        f" {IDLE} idle connections"
        f" ({len(silent)} silent, {IDLE - len(silent)} after one request) closed after"
        f" {times[0]:.2f}..{times[-1]:.2f}s (DL_KEEPALIVE={KEEPALIVE})"
    )
    crowd.close()
    count = wait_fds_at_most(server, worker, baseline)
    assert count <= baseline, f"{count} fds, baseline {baseline}"
    assert the_worker(server) == worker
    assert_healthy(server)
    assert_no_tracebacks(server)


@pytest.fixture(scope="module")
def short_send_timeout_server(root: Path, module_server_factory: ServerFactory) -> GunicornServer:
    return module_server_factory(root, DL_KEEPALIVE=str(KEEPALIVE), DL_SEND_TIMEOUT="1")


def test_idle_after_a_download_waits_keepalive_even_with_a_shorter_send_timeout(
    short_send_timeout_server: GunicornServer, root: Path, crowd: Crowd
) -> None:
    server = short_send_timeout_server
    for _ in range(4):
        crowd.add(idle_after_one_request(server, root, 0), time.monotonic())
    crowd.wait_all_closed(time.monotonic() + KEEPALIVE + LATE + 1)
    assert_no_tracebacks(server)
    assert_closed_after_keepalive(crowd, "idle after a download")
