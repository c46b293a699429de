"""/metrics from the real server with two workers: exact counters summed over the workers,
the bytes clients really received, transfers in flight, worker deaths and master starts.

Metrics are recorded when a response is closed, just after its last byte left, so each
check polls the scrape until the expected values show (bounded), then checks them again.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration import rawhttp
from tests.integration.conftest import ServerFactory
from tests.integration.helpers import MiB, etag_of, sha256, write_big_file
from tests.support.server import GunicornServer

pytestmark = pytest.mark.server

BIG = 32 * MiB
MEDIUM = 3 * MiB + 7
RCVBUF = 64 * 1024
TWO_WORKERS = {"DL_WORKERS": "2"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: GunicornServer) -> Samples:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def requests(samples: Samples) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["code"], dict(labels)["kind"]): value
        for (name, labels), value in samples.items()
        if name == "download_requests_total"
    }


def files(samples: Samples) -> dict[tuple[str, str], float]:
    """Requests but the start's health check (a GET /healthz: 200, other)."""
    return {key: value for key, value in requests(samples).items() if key != ("200", "other")}


def total(samples: Samples, name: str) -> float:
    return sum(value for (sample, _), value in samples.items() if sample == name)


def sent(samples: Samples, kind: str | None = None) -> float:
    if kind is None:
        return total(samples, "download_sent_bytes_total")
    return samples[("download_sent_bytes_total", frozenset({("kind", kind)}))]


def in_flight(samples: Samples) -> float:
    return samples[("download_transfers_in_flight", frozenset())]


def delta(after: dict[tuple[str, str], float], before: dict[tuple[str, str], float]) -> dict:
    changed = {key: after[key] - before.get(key, 0) for key in after}
    return {key: value for key, value in changed.items() if value}


def wait_for(
    server: GunicornServer, check: Callable[[Samples], bool], timeout: float = 10.0
) -> Samples:
    """Scrape until ``check`` holds (the last scrape either way; the caller asserts)."""
    deadline = time.monotonic() + timeout
    samples = scrape(server)
    while not check(samples) and time.monotonic() < deadline:
        time.sleep(0.05)
        samples = scrape(server)
    return samples


def holds_file(pid: int, path: Path) -> bool:
    """True while process ``pid`` has ``path`` open (its download is not finished)."""
    wanted = os.path.realpath(path)
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(entry) == wanted:
                return True
        except OSError:
            pass
    return False


def metric_files(pid: int) -> set[Path]:
    """The metric files a worker has mapped (its values live there)."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {Path(line.split()[-1]) for line in lines if line.endswith(".db")}


def wait_loaded(server: GunicornServer, gone: int = 0, timeout: float = 15.0) -> GunicornServer:
    """Until both workers have loaded the app (so they have their metric files), and
    worker ``gone``, if given, has been replaced. A worker signalled while it boots
    would ignore the signal (it still has the master's handlers) and hold up a stop."""
    deadline = time.monotonic() + timeout
    while True:
        pids = server.worker_pids()
        if gone not in pids and len(pids) == 2 and all(metric_files(pid) for pid in pids):
            return server
        assert time.monotonic() < deadline, f"two workers not up within {timeout} s"
        time.sleep(0.05)


def make_tree(root: Path) -> dict[str, str]:
    digests = {
        "big.bin": write_big_file(root / "big.bin", BIG, seed=7),
        "medium.bin": write_big_file(root / "medium.bin", MEDIUM, seed=8),
    }
    (root / "sub").mkdir()
    (root / "sub" / "a.txt").write_bytes(b"hello\n")
    return digests


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, module_server_factory: ServerFactory
) -> tuple[GunicornServer, Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("metrics") / "data"
    root.mkdir()
    digests = make_tree(root)
    server = wait_loaded(module_server_factory(root, **TWO_WORKERS))
    # The start's one health check is counted just after it was answered: wait for it,
    # so the tests below see only their own requests.
    wait_for(server, lambda s: requests(s) == {("200", "other"): 1})
    return server, root, digests


def fetch(server: GunicornServer, method: str, path: str, *headers: str) -> rawhttp.RawResponse:
    return rawhttp.get(
        server.host, server.port, path, [*headers, "Connection: close"], method=method
    )


def test_a_mix_of_requests_is_counted_exactly_with_the_bytes_received(site) -> None:
    server, root, digests = site
    before = scrape(server)
    etag = etag_of(root / "medium.bin")
    mix = [
        ("GET", "/files/medium.bin", (), 200, "full"),
        ("GET", "/files/medium.bin", ("Range: bytes=1000-1999999",), 206, "range"),
        ("GET", "/files/medium.bin", ("Range: bytes=0-99,-100",), 206, "multipart"),
        ("GET", "/files/medium.bin", (f"If-None-Match: {etag}",), 304, "not_modified"),
        ("GET", "/files/medium.bin", ('If-Match: "other"',), 412, "precondition_failed"),
        ("GET", "/files/medium.bin", (f"Range: bytes={MEDIUM}-",), 416, "range_not_satisfiable"),
        ("GET", "/files/missing.bin", (), 404, "other"),
        ("GET", "/files/sub/", (), 200, "listing"),
        ("HEAD", "/files/medium.bin", (), 200, "full"),
        ("GET", "/files/medium.bin", (), 200, "full"),
    ]
    expected: dict[tuple[str, str], float] = {}
    received = 0
    for method, path, headers, status, kind in mix:
        response = fetch(server, method, path, *headers)
        assert response.status == status, (path, headers, response)
        received += len(response.body)
        expected[(str(status), kind)] = expected.get((str(status), kind), 0) + 1
    full = fetch(server, "GET", "/files/medium.bin").body
    assert sha256(full) == digests["medium.bin"]
    received += len(full)
    expected[("200", "full")] += 1

    def done(samples: Samples) -> bool:
        return delta(requests(samples), requests(before)) == expected

    after = wait_for(server, done)
    assert delta(requests(after), requests(before)) == expected
    assert sent(after) - sent(before) == received
    assert in_flight(after) == 0
    durations = total(after, "download_transfer_duration_seconds_count") - total(
        before, "download_transfer_duration_seconds_count"
    )
    assert durations == 5  # the GETs of file bytes: three full, one range, one multipart
    time.sleep(0.3)
    again = scrape(server)  # nothing counted twice, nothing late
    assert delta(requests(again), requests(before)) == expected
    assert sent(again) == sent(after)


def test_in_flight_rises_during_a_slow_download_and_falls_back(site) -> None:
    server, _root, digests = site
    before = scrape(server)
    with rawhttp.Connection(server.host, server.port, rcvbuf=RCVBUF, timeout=30) as conn:
        conn.request("GET", "/files/big.bin")
        head = conn.read_head()
        assert head.status == 200
        during = wait_for(server, lambda s: in_flight(s) == 1)
        assert in_flight(during) == 1  # the server waits on the full socket
        time.sleep(0.3)
        assert in_flight(scrape(server)) == 1
        body = conn.read_exact(BIG)
    assert sha256(body) == digests["big.bin"]
    after = wait_for(server, lambda s: in_flight(s) == 0 and sent(s) - sent(before) == BIG)
    assert in_flight(after) == 0
    assert sent(after) - sent(before) == BIG
    assert delta(requests(after), requests(before)) == {("200", "full"): 1}


def test_an_aborted_download_counts_what_was_sent(site) -> None:
    server, _root, _ = site
    before = scrape(server)
    conn = rawhttp.Connection(server.host, server.port, rcvbuf=RCVBUF)
    try:
        conn.request("GET", "/files/big.bin")
        assert conn.read_head().status == 200
        read = len(conn.read_exact(256 * 1024))
        wait_for(server, lambda s: in_flight(s) == 1)
    finally:
        conn.close(reset=True)

    def counted(samples: Samples) -> bool:
        return total(samples, "download_transfers_aborted_total") > total(
            before, "download_transfers_aborted_total"
        )

    after = wait_for(server, counted)
    aborted = total(after, "download_transfers_aborted_total")
    assert aborted - total(before, "download_transfers_aborted_total") == 1
    assert delta(requests(after), requests(before)) == {("200", "full"): 1}
    assert read <= sent(after) - sent(before) < BIG
    assert in_flight(after) == 0


def test_a_worker_killed_mid_download_keeps_the_totals_and_drops_its_transfer(
    data_root: Path, start_server
) -> None:
    digests = make_tree(data_root)
    server = wait_loaded(start_server(data_root, **TWO_WORKERS))
    for _ in range(3):
        assert sha256(fetch(server, "GET", "/files/medium.bin").body) == digests["medium.bin"]
    before = wait_for(server, lambda s: files(s) == {("200", "full"): 3})
    assert files(before) == {("200", "full"): 3}
    folder = next(iter(metric_files(server.worker_pids()[0]))).parent
    conn = rawhttp.Connection(server.host, server.port, rcvbuf=RCVBUF)
    try:
        conn.request("GET", "/files/big.bin")
        assert conn.read_head().status == 200
        assert in_flight(wait_for(server, lambda s: in_flight(s) == 1)) == 1
        old = server.worker_pids()
        (serving,) = [pid for pid in old if holds_file(pid, data_root / "big.bin")]
        os.kill(serving, signal.SIGKILL)
        wait_loaded(server, serving)
    finally:
        conn.close()
    after = wait_for(server, lambda s: in_flight(s) == 0)
    assert in_flight(after) == 0  # the dead worker's live gauge is gone
    assert files(after) == files(before)  # the dead worker's counters stay
    assert sent(after, "full") == sent(before, "full") == 3 * MEDIUM
    for _ in range(2):
        fetch(server, "GET", "/files/medium.bin")
    later = wait_for(server, lambda s: files(s) == {("200", "full"): 5})
    assert files(later) == {("200", "full"): 5}
    assert sent(later, "full") == 5 * MEDIUM
    # A graceful stop of a worker: gunicorn starts another, the totals stay.
    victim = server.worker_pids()[0]
    os.kill(victim, signal.SIGTERM)
    wait_loaded(server, victim)
    assert files(scrape(server)) == {("200", "full"): 5}
    # A reload (SIGHUP) re-reads gunicorn.conf.py and replaces every worker: the master
    # is the same, so is its folder, and the totals stay.
    assert server.process is not None
    old = server.worker_pids()
    os.kill(server.process.pid, signal.SIGHUP)
    for pid in old:
        wait_loaded(server, pid)
    assert files(scrape(server)) == {("200", "full"): 5}
    assert {path.parent for pid in server.worker_pids() for path in metric_files(pid)} == {folder}
    # By default the folder is the master's own, in memory, and goes with it.
    assert folder.parent == Path("/dev/shm")
    assert folder.is_dir()
    server.stop()
    assert not folder.exists()


def test_a_new_master_starts_from_zero_in_a_configured_folder(
    data_root: Path, tmp_path: Path, start_server
) -> None:
    make_tree(data_root)
    folder = tmp_path / "metrics"
    first = wait_loaded(start_server(data_root, DL_METRICS_DIR=str(folder), **TWO_WORKERS))
    for _ in range(4):
        assert fetch(first, "GET", "/files/sub/a.txt").status == 200
    counted = wait_for(first, lambda s: files(s) == {("200", "full"): 4})
    assert files(counted) == {("200", "full"): 4}
    assert {path.parent for pid in first.worker_pids() for path in metric_files(pid)} == {folder}
    first.stop()
    assert list(folder.glob("counter_*.db"))  # the values outlive the master ...
    second = wait_loaded(start_server(data_root, DL_METRICS_DIR=str(folder), **TWO_WORKERS))
    fresh = scrape(second)  # ... but a new master wipes them
    assert files(fresh) == {}
    assert sent(fresh, "full") == 0
    assert fetch(second, "GET", "/files/sub/a.txt").status == 200
    assert files(wait_for(second, lambda s: bool(files(s)))) == {("200", "full"): 1}


def test_metrics_off_serve_no_route_and_map_no_files(data_root: Path, start_server) -> None:
    make_tree(data_root)
    server = start_server(data_root, DL_METRICS="0")  # one worker: up once it answers
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{server.url}/metrics", timeout=5)
    refused.value.close()
    assert refused.value.code == 404
    assert fetch(server, "GET", "/files/sub/a.txt").body == b"hello\n"
    assert metric_files(server.worker_pids()[0]) == set()


def digest_queue(samples: Samples) -> float:
    return samples[("download_digest_queue_length", frozenset())]


def test_the_digest_queue_gauge_rises_for_a_new_file_and_drains_to_zero(site) -> None:
    """A file written just now waits in its worker's queue (the store lets a file settle
    for seconds before hashing it), then is hashed: the gauge, summed over the workers,
    shows it and falls back to 0 without further requests to that worker."""
    server, root, _ = site
    fresh = root / "fresh-for-digest.bin"
    fresh.write_bytes(os.urandom(MEDIUM))
    response = fetch(server, "GET", "/files/fresh-for-digest.bin")
    assert response.status == 200
    assert response.get("Repr-Digest") is None  # queued, not yet hashed
    queued = wait_for(server, lambda s: digest_queue(s) >= 1)
    assert digest_queue(queued) >= 1
    drained = wait_for(server, lambda s: digest_queue(s) == 0, timeout=20.0)
    assert digest_queue(drained) == 0
