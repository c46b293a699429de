"""Storage that stalls or fails, under a real gunicorn worker on a fault-injecting FUSE
mount (``tests/support/faultfs.py``): one slow or broken file must never freeze the
others, kill the worker, or leave a wrong answer; each fault gets the right status and
one useful log line.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import rawhttp
from tests.integration.conftest import ServerFactory
from tests.integration.helpers import settled_fd_count, the_worker, wait_fds_at_most
from tests.support.faultmount import FaultMount, require_fuse
from tests.support.server import GunicornServer

pytestmark = pytest.mark.server

MiB = 1024 * 1024
FILES = {
    "small.bin": 64 * 1024,
    "big.bin": 16 * MiB,
    "other.bin": 16 * MiB,
    "dir/a.bin": 100_000,
    "dir/b.bin": 200_000,
}
#: Each quick request during a fault must answer within this (the issue's bound).
QUICK = 1.0


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("source")
    contents = {}
    for number, (name, size) in enumerate(FILES.items()):
        data = hashlib.shake_256(f"{name}{number}".encode()).digest(size)
        path = root / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        contents[name] = data
    contents["_root"] = str(root).encode()
    return contents


@pytest.fixture(scope="module")
def mount(
    tmp_path_factory: pytest.TempPathFactory, source: dict[str, bytes]
) -> Iterator[FaultMount]:
    require_fuse()
    where = tmp_path_factory.mktemp("faultfs")
    fs = FaultMount(
        Path(source["_root"].decode()), where / "mnt", where / "faults.json", where / "log"
    )
    fs.start()
    yield fs
    fs.stop()


@pytest.fixture(autouse=True)
def _no_faults_after(mount: FaultMount) -> Iterator[None]:
    yield
    mount.clear()


@pytest.fixture(scope="module")
def server(module_server_factory: ServerFactory, mount: FaultMount) -> GunicornServer:
    return module_server_factory(mount.mountpoint)


def fetch(
    server: GunicornServer, target: str, timeout: float = 30.0
) -> tuple[rawhttp.RawResponse, float]:
    started = time.monotonic()
    with rawhttp.Connection(server.host, server.port, timeout=timeout) as conn:
        conn.request("GET", target, [("Connection", "close")])
        response = conn.read_response()
    return response, time.monotonic() - started


def download(
    server: GunicornServer, target: str, timeout: float = 120.0, request_id: str = ""
) -> tuple[int, int, bytes]:
    """(status, Content-Length, the body bytes received until the server closed)."""
    headers = [("Connection", "close")] + ([("X-Request-Id", request_id)] if request_id else [])
    with rawhttp.Connection(server.host, server.port, timeout=timeout) as conn:
        conn.request("GET", target, headers)
        head = conn.read_head()
        body = conn.read_to_eof(deadline=time.monotonic() + timeout)
    return head.status, int(head["Content-Length"]), body


def access_record(server: GunicornServer, request_id: str) -> dict[str, Any] | None:
    """The access log's line for ``request_id`` once written (when the response ends)."""
    for line in server.log().splitlines():
        if line.startswith("{") and request_id in line:
            record: dict[str, Any] = json.loads(line)
            if record["id"] == request_id:
                return record
    return None


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def assert_quick_answers(server: GunicornServer, source: dict[str, bytes], seconds: float) -> int:
    """Small downloads and /healthz keep answering, each within QUICK, for ``seconds``."""
    rounds = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and rounds < 100:
        small, took = fetch(server, "/files/small.bin")
        assert (small.status, took < QUICK) == (200, True), took
        assert small.body == source["small.bin"]
        health, took = fetch(server, "/healthz")
        assert (health.status, health.body, took < QUICK) == (200, b"ok\n", True), took
        rounds += 1
        time.sleep(0.2)
    return rounds


def test_a_stalled_read_freezes_no_other_client(
    server: GunicornServer, mount: FaultMount, source: dict[str, bytes]
) -> None:
    """During a 20 s stall of one download's reads, another file and /healthz answer
    at once; when the storage comes back, the stalled download ends byte-exact."""
    mount.set({"path": "/big.bin", "op": "read", "stall": 20, "offset": 4 * MiB})
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        stalled = pool.submit(download, server, "/files/big.bin")
        time.sleep(0.5)  # it has its first 4 MiB and waits on the stalled read
        assert assert_quick_answers(server, source, seconds=4) >= 5
        assert not stalled.done()
        mount.clear()
        status, length, body = stalled.result(timeout=60)
    assert (status, length) == (200, len(source["big.bin"]))
    assert hashlib.sha256(body).digest() == hashlib.sha256(source["big.bin"]).digest()


def test_a_stalled_open_freezes_no_other_client(
    server: GunicornServer, mount: FaultMount, source: dict[str, bytes]
) -> None:
    """An 8 s stall of stat and open of one file: the others go on meanwhile."""
    mount.set(
        {"path": "/other.bin", "op": "getattr", "stall": 8},
        {"path": "/other.bin", "op": "open", "stall": 8},
    )
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        stalled = pool.submit(download, server, "/files/other.bin")
        time.sleep(0.3)
        assert assert_quick_answers(server, source, seconds=3) >= 3
        assert not stalled.done()
        mount.clear()
        status, _, body = stalled.result(timeout=60)
    assert status == 200
    assert body == source["other.bin"]


@pytest.mark.parametrize(
    ("rule", "errno_name"),
    [
        ({"op": "read", "errno": "EIO"}, "EIO"),
        ({"op": "open", "errno": "ESTALE"}, "ESTALE"),
        ({"op": "getattr", "errno": "EIO"}, "EIO"),
        ({"op": "read", "errno": "EREMOTEIO"}, "EREMOTEIO"),
    ],
)
def test_a_storage_error_before_the_first_byte_is_503_with_retry_after(
    server: GunicornServer,
    mount: FaultMount,
    source: dict[str, bytes],
    rule: dict[str, Any],
    errno_name: str,
) -> None:
    mount.set({"path": "/dir/a.bin", **rule})
    response, _ = fetch(server, "/files/dir/a.bin")
    assert response.status == 503
    assert response["Retry-After"] == "5"
    assert response.body == b"Service Unavailable: storage error, try again\n"
    request_id = response["X-Request-Id"]
    # The access-log line is written when the answer is over, after the error line.
    assert wait_for(lambda: f'"id": "{request_id}"' in server.log())
    lines = [line for line in server.log().splitlines() if request_id in line]
    errors = [line for line in lines if "[ERROR]" in line]
    assert len(errors) == 1, lines
    assert f"storage error: {errno_name}" in errors[0]
    assert "'dir/a.bin'" in errors[0]
    record = json.loads(next(line for line in lines if line.startswith("{")))
    assert (record["status"], record["outcome"]) == (503, "storage_error")
    assert "Traceback" not in server.log()
    mount.clear()
    assert fetch(server, "/files/dir/a.bin")[0].body == source["dir/a.bin"]


def test_a_permission_error_stays_403_and_a_missing_file_404(
    server: GunicornServer, mount: FaultMount
) -> None:
    mount.set({"path": "/dir/a.bin", "op": "open", "errno": "EACCES"})
    assert fetch(server, "/files/dir/a.bin")[0].status == 403
    assert fetch(server, "/files/dir/none.bin")[0].status == 404


def test_a_storage_error_mid_body_aborts_the_connection_and_is_logged_with_its_offset(
    server: GunicornServer, mount: FaultMount, source: dict[str, bytes]
) -> None:
    mount.set({"path": "/big.bin", "op": "read", "errno": "EIO", "offset": 2 * MiB})
    with rawhttp.Connection(server.host, server.port, timeout=30) as conn:
        conn.request("GET", "/files/big.bin")  # keep-alive: the abort must close it
        head = conn.read_head()
        body = conn.read_to_eof()
    assert head.status == 200
    assert int(head["Content-Length"]) == len(source["big.bin"])
    assert 0 < len(body) <= 2 * MiB
    assert body == source["big.bin"][: len(body)]
    request_id = head["X-Request-Id"]
    assert wait_for(lambda: access_record(server, request_id))
    error = next(
        line for line in server.log().splitlines() if request_id in line and "ERROR" in line
    )
    match = re.search(r"storage error: EIO reading 'big.bin' at byte (\d+)", error)
    assert match is not None, error
    assert int(match.group(1)) <= 2 * MiB
    record = access_record(server, request_id)
    assert record is not None
    assert (record["status"], record["outcome"]) == (200, "storage_error")
    assert record["bytes"] == len(body)
    assert "Traceback" not in server.log()


def test_a_file_that_shrinks_after_open_is_one_warning_and_a_closed_connection(
    server: GunicornServer, mount: FaultMount, source: dict[str, bytes]
) -> None:
    mount.set({"path": "/other.bin", "op": "read", "size": 300_000})
    status, length, body = download(server, "/files/other.bin", request_id="shrunk-1")
    assert (status, length) == (200, len(source["other.bin"]))
    assert body == source["other.bin"][:300_000]
    assert wait_for(lambda: access_record(server, "shrunk-1"))
    warnings = [line for line in server.log().splitlines() if "truncated:" in line]
    assert len(warnings) == 1
    assert "[WARNING]" in warnings[0]
    assert (
        f"'other.bin' ended at byte 300000, expected {len(source['other.bin'])} bytes"
        in warnings[0]
    )
    assert access_record(server, "shrunk-1")["outcome"] == "truncated"  # type: ignore[index]
    assert "Traceback" not in server.log()


def test_a_listing_shows_an_entry_it_cannot_examine_and_fails_when_the_folder_fails(
    server: GunicornServer, mount: FaultMount
) -> None:
    mount.set({"path": "/dir/b.bin", "op": "getattr", "errno": "EIO"})
    response, _ = fetch(server, "/files/dir/?format=json")
    assert response.status == 200
    entries = {entry["name"]: entry for entry in json.loads(response.body)["entries"]}
    assert entries["b.bin"] == {
        "name": "b.bin",
        "type": "unknown",
        "url": "/files/dir/b.bin",
        "error": "EIO",
    }
    assert entries["a.bin"]["size"] == FILES["dir/a.bin"]
    page, _ = fetch(server, "/files/dir/?format=html")
    assert b"unavailable" in page.body
    fetch(server, "/files/dir/?format=json")
    assert wait_for(lambda: "examining 'dir/b.bin'" in server.log())
    assert server.log().count("examining 'dir/b.bin'") == 1  # once while it lasts
    mount.set({"path": "/dir", "op": "readdir", "errno": "EIO"})
    failed, _ = fetch(server, "/files/dir/?format=json")
    assert (failed.status, failed["Retry-After"]) == (503, "5")
    assert wait_for(lambda: "storage error: EIO listing 'dir/'" in server.log())


def test_descriptors_return_to_their_baseline_after_every_fault(
    server: GunicornServer, mount: FaultMount, source: dict[str, bytes]
) -> None:
    pid = the_worker(server)
    fetch(server, "/files/small.bin")
    baseline = settled_fd_count(server, pid)
    for rule in (
        {"path": "/big.bin", "op": "read", "errno": "EIO", "offset": MiB},
        {"path": "/big.bin", "op": "read", "size": 100_000},
        {"path": "/big.bin", "op": "read", "errno": "ESTALE"},
        {"path": "/big.bin", "op": "open", "errno": "EIO"},
    ):
        mount.set(rule)
        download(server, "/files/big.bin")
    mount.clear()
    assert wait_fds_at_most(server, pid, baseline) <= baseline
    assert the_worker(server) == pid


def test_a_file_whose_stat_fails_once_open_is_still_closed_and_served_whole(
    server: GunicornServer, mount: FaultMount, source: dict[str, bytes]
) -> None:
    """Closing a descriptor must not ``fstat`` it (gevent's ``os.close`` does): on
    storage whose ``stat`` fails after the open, that raised EIO at the end of the body
    and left the descriptor open."""
    pid = the_worker(server)
    fetch(server, "/files/small.bin")
    baseline = settled_fd_count(server, pid)
    with rawhttp.Connection(server.host, server.port, timeout=30) as conn:
        conn.request("GET", "/files/big.bin", [("Connection", "close")])
        head = conn.read_head()
        first = conn.read_exact(64 * 1024)
        mount.set({"path": "/big.bin", "op": "getattr", "errno": "EIO"})
        rest = conn.read_to_eof(deadline=time.monotonic() + 30)
    assert head.status == 200
    assert hashlib.sha256(first + rest).digest() == hashlib.sha256(source["big.bin"]).digest()
    mount.clear()
    assert wait_fds_at_most(server, pid, baseline) <= baseline
    assert "Traceback" not in server.log()


@pytest.fixture(scope="module")
def timed_server(module_server_factory: ServerFactory, mount: FaultMount) -> GunicornServer:
    return module_server_factory(mount.mountpoint, DL_READ_TIMEOUT="2")


def test_a_read_with_no_progress_for_the_read_timeout_is_aborted(
    timed_server: GunicornServer, mount: FaultMount, source: dict[str, bytes]
) -> None:
    """Before the first byte: 503. After it: the connection is closed. Either way one
    ETIMEDOUT line, and the descriptor is released once the stalled read returns."""
    server = timed_server
    pid = the_worker(server)
    fetch(server, "/files/small.bin")
    baseline = settled_fd_count(server, pid)
    mount.set({"path": "/big.bin", "op": "read", "stall": 30})
    response, took = fetch(server, "/files/big.bin")
    assert (response.status, response["Retry-After"]) == (503, "5")
    assert 1.5 < took < 5
    mount.set({"path": "/big.bin", "op": "read", "stall": 30, "offset": 3 * MiB})
    status, _, body = download(server, "/files/big.bin", timeout=20)
    assert status == 200
    assert 0 < len(body) <= 3 * MiB
    assert wait_for(lambda: server.log().count("storage error: ETIMEDOUT") == 2)
    assert re.search(
        r"ETIMEDOUT reading 'big.bin' at byte \d+ \(no answer from storage", server.log()
    )
    assert server.open_fds(pid) > baseline  # the stalled reads still hold their files
    mount.clear()
    assert wait_fds_at_most(server, pid, baseline) <= baseline
    assert the_worker(server) == pid


@pytest.fixture(scope="module")
def small_pool_server(module_server_factory: ServerFactory, mount: FaultMount) -> GunicornServer:
    return module_server_factory(mount.mountpoint, DL_IO_THREADS="4", DL_IO_THREADS_PER_FILE="2")


def test_a_stalled_file_is_refused_past_its_thread_cap_and_a_stuck_pool_fails_health(
    small_pool_server: GunicornServer, mount: FaultMount, source: dict[str, bytes]
) -> None:
    """Two stalled downloads of big.bin take its two threads: a third gets 503 at once,
    other files are served. With every thread stuck (other.bin too), new requests get
    503 at once and /healthz says so after SATURATED_AFTER; then all recovers."""
    server = small_pool_server
    mount.set(
        {"path": "/big.bin", "op": "read", "stall": 30},
        {"path": "/other.bin", "op": "read", "stall": 30},
    )
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        stalled = [pool.submit(fetch, server, "/files/big.bin", 60) for _ in range(2)]
        time.sleep(1.5)
        refused, took = fetch(server, "/files/big.bin")
        assert (refused.status, refused["Retry-After"]) == (503, "5")
        assert took < QUICK
        assert fetch(server, "/files/small.bin")[0].body == source["small.bin"]
        assert fetch(server, "/healthz")[0].status == 200
        stalled += [pool.submit(fetch, server, "/files/other.bin", 60) for _ in range(2)]
        time.sleep(1.5)
        refused, took = fetch(server, "/files/dir/a.bin")
        assert refused.status == 503
        assert took < QUICK
        assert wait_for(lambda: fetch(server, "/healthz")[0].status == 503, timeout=10)
        health = fetch(server, "/healthz")[0]
        assert health.body.startswith(b"all 4 I/O threads busy for")
        mount.clear()
        assert all(future.result(timeout=60)[0].status == 200 for future in stalled)
    assert fetch(server, "/healthz")[0].status == 200
    assert "storage error: EBUSY" in server.log()


def test_health_fails_while_a_stat_of_the_data_root_stalls(
    server: GunicornServer, mount: FaultMount
) -> None:
    mount.set({"path": "/", "op": "getattr", "stall": 10})
    health, took = fetch(server, "/healthz")
    assert health.status == 503
    assert took < 3
    assert health.body.startswith(b"stat of the data root unanswered for 2")
    mount.clear()
    assert wait_for(lambda: fetch(server, "/healthz")[0].status == 200)


def test_a_stall_past_the_worker_timeout_kills_no_worker_and_disturbs_no_download(
    mount: FaultMount, source: dict[str, bytes], tmp_path: Path
) -> None:
    """A 45 s stall, longer than gunicorn's 30 s worker timeout, with default settings:
    the worker's heartbeat goes on (no WORKER TIMEOUT), a parallel download is byte-exact,
    small requests stay quick throughout, and the stalled download ends byte-exact too
    (DL_READ_TIMEOUT is 60 s). Files on FUSE always take the copy path, whatever
    DL_SENDFILE says, so this runs once."""
    server = GunicornServer(mount.mountpoint, tmp_path / "gunicorn.log").start()
    try:
        pid = the_worker(server)
        mount.set({"path": "/big.bin", "op": "read", "stall": 120, "offset": 8 * MiB})
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            stalled = pool.submit(download, server, "/files/big.bin", 120.0)
            time.sleep(1)
            parallel = pool.submit(download, server, "/files/other.bin", 60.0)
            assert parallel.result(timeout=60)[2] == source["other.bin"]
            while time.monotonic() - started < 45:  # bounded by the clock
                assert assert_quick_answers(server, source, seconds=2) >= 1
                assert not stalled.done()
            mount.clear()  # the storage is back after 45 s
            status, _, body = stalled.result(timeout=60)
        assert status == 200
        assert hashlib.sha256(body).digest() == hashlib.sha256(source["big.bin"]).digest()
        assert time.monotonic() - started > 44
        assert the_worker(server) == pid
        assert "WORKER TIMEOUT" not in server.log()
    finally:
        server.stop()


def test_a_file_that_fails_while_hashed_is_logged_once_and_not_read_again(
    server: GunicornServer, mount: FaultMount, source: dict[str, bytes]
) -> None:
    mount.set({"path": "/dir/b.bin", "op": "read", "errno": "EIO", "offset": 65536})
    line = "digest of 'dir/b.bin' not computed: storage error EIO at byte 65536"
    deadline = time.monotonic() + 15
    while line not in server.log() and time.monotonic() < deadline:
        fetch(server, "/files/dir/b.bin")  # each request asks for the digest
        time.sleep(0.5)
    assert line in server.log()
    for _ in range(5):
        fetch(server, "/files/dir/b.bin")
    time.sleep(1)  # what a re-read would take, had one been queued
    assert server.log().count("digest of 'dir/b.bin'") == 1
    assert "Traceback" not in server.log()


def test_storage_errors_are_counted_by_errno_across_the_workers_metrics(
    server: GunicornServer, mount: FaultMount
) -> None:
    def count(errno_name: str) -> float:
        text = fetch(server, "/metrics")[0].body.decode()
        pattern = rf'^download_storage_errors_total\{{errno="{errno_name}"\}} (\S+)$'
        found = re.search(pattern, text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    before = {name: count(name) for name in ("ESTALE", "EIO")}
    mount.set({"path": "/dir/a.bin", "op": "open", "errno": "ESTALE"})
    for _ in range(3):
        fetch(server, "/files/dir/a.bin")
    mount.set({"path": "/big.bin", "op": "read", "errno": "EIO", "offset": MiB})
    download(server, "/files/big.bin")
    assert wait_for(lambda: count("ESTALE") == before["ESTALE"] + 3)
    assert wait_for(lambda: count("EIO") == before["EIO"] + 1)
