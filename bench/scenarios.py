"""The benchmark scenarios. Each runs its peers several times, interleaved in a
rotating order, and returns every run plus the medians (``{"peers": {name: {"runs": [...],
"median": {...}}}}``).

Server CPU is utime + stime of the serving processes (gunicorn/nginx workers, uvicorn)
from /proc before and after; on loopback it includes the kernel's TCP work done in the
sender's context. GB = 1e9 bytes, MB = 1e6 bytes.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import clients, datafiles, proc_stats
from bench.config import BenchConfig
from bench.datafiles import DataSet
from bench.procs import Processes
from bench.servers import NGINX, OURS, Peer, Server, Tools
from bench.stats import medians, percentile, rotations, spread

GB = 1e9
DOWNLOAD_TIMEOUT = 120.0
Result = dict[str, object]


class Budget:
    """The run's time budget: scenarios skip further repetitions once it is spent."""

    def __init__(self, seconds: float) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def allows(self, seconds: float) -> bool:
        return self.left() > seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass(frozen=True, slots=True)
class Context:
    config: BenchConfig
    data: DataSet
    tools: Tools
    procs: Processes
    budget: Budget
    lua: Path
    log: Callable[[str], None]


def verify(server: Server, data: DataSet, count: int = 3) -> None:
    """A few random ranges of big.bin compared byte for byte (catches a broken peer)."""
    import http.client

    for _ in range(count):
        start = random.randrange(0, data.big.size - 4096)
        connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
        try:
            connection.request(
                "GET", data.big.url_path, headers={"Range": f"bytes={start}-{start + 4095}"}
            )
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        expected = datafiles.read_range(data.big.path, start, 4096)
        if response.status != 206 or body != expected:
            raise RuntimeError(f"{server.peer.name}: wrong answer to a range ({response.status})")


def _summary(runs: Sequence[Result], key: str) -> Result:
    return {"runs": list(runs), "median": medians(runs), "range": spread(runs, key)}


def _cpu(server: Server, pids: list[int]) -> float:
    try:
        return proc_stats.cpu_seconds(pids)
    except OSError as error:
        raise RuntimeError(f"{server.peer.name}: a worker went away ({error})") from error


def single_download(ctx: Context, servers: dict[str, Server]) -> Result:
    """Goal 1: one whole download of big.bin with curl; MB/s and CPU per GB."""
    url_path, size = ctx.data.big.url_path, ctx.data.big.size
    runs: dict[str, list[Result]] = {name: [] for name in servers}
    for rep, order in rotations(list(servers.values()), ctx.config.download_reps):
        if rep and not ctx.budget.allows(60):
            break
        ctx.log(f"single download: rep {rep + 1}/{ctx.config.download_reps}")
        for server in order:
            pids = server.worker_pids()
            cpu0, client0 = _cpu(server, pids), clients.children_cpu_seconds()
            download = clients.curl_download(ctx.procs, server.url(url_path), DOWNLOAD_TIMEOUT)
            cpu1, client1 = _cpu(server, pids), clients.children_cpu_seconds()
            runs[server.peer.name].append(
                {
                    "mb_s": download.mb_per_s,
                    "server_cpu_s_per_gb": (cpu1 - cpu0) / (size / GB),
                    "client_cpu_s_per_gb": (client1 - client0) / (size / GB),
                    "ok": download.status == 200 and download.size == size,
                }
            )
    return {"peers": {name: _summary(r, "mb_s") for name, r in runs.items()}}


def parallel_downloads(ctx: Context, servers: dict[str, Server]) -> Result:
    """Goal 2: N simultaneous whole downloads; aggregate MB/s over the lot's wall time."""
    url_path, size = ctx.data.big.url_path, ctx.data.big.size
    count = ctx.config.parallel_downloads
    runs: dict[str, list[Result]] = {name: [] for name in servers}
    for rep, order in rotations(list(servers.values()), ctx.config.parallel_reps):
        if rep and not ctx.budget.allows(90):
            break
        ctx.log(f"{count} parallel downloads: rep {rep + 1}/{ctx.config.parallel_reps}")
        for server in order:
            pids = server.worker_pids()
            cpu0 = _cpu(server, pids)
            downloads, wall = clients.parallel_downloads(
                ctx.procs, server.url(url_path), count, DOWNLOAD_TIMEOUT
            )
            cpu1 = _cpu(server, pids)
            total = sum(d.size for d in downloads)
            runs[server.peer.name].append(
                {
                    "aggregate_mb_s": total / wall / 1e6,
                    "server_cpu_s_per_gb": (cpu1 - cpu0) / (total / GB) if total else 0.0,
                    "ok": all(d.status == 200 and d.size == size for d in downloads),
                }
            )
    return {
        "downloads": count,
        "peers": {name: _summary(r, "aggregate_mb_s") for name, r in runs.items()},
    }


def _latency_summary(probe: clients.ProbeResult) -> Result:
    ms = [latency * 1000 for latency in probe.latencies]
    return {
        "probes": len(ms),
        "failures": probe.failures,
        "p50_ms": percentile(ms, 0.50),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms) if ms else float("nan"),
    }


def fairness(ctx: Context, servers: dict[str, Server]) -> Result:
    """Goal 4: a 1-byte range every 10 ms to a worker busy with full-speed downloads."""
    cfg, big = ctx.config, ctx.data.big
    baseline_server = next(iter(servers.values()))
    ctx.log(f"fairness: idle baseline on {baseline_server.peer.name}")
    baseline = clients.probe(
        baseline_server.host,
        baseline_server.port,
        big.url_path,
        cfg.probes // 2,
        cfg.probe_interval,
    )
    runs: dict[str, list[Result]] = {name: [] for name in servers}
    for rep, order in rotations(list(servers.values()), cfg.fair_reps):
        if rep and not ctx.budget.allows(60):
            break
        ctx.log(f"fairness: rep {rep + 1}/{cfg.fair_reps}")
        for server in order:
            loops = [
                clients.DownloadLoop(ctx.procs, server.url(big.url_path), DOWNLOAD_TIMEOUT)
                for _ in range(cfg.fair_downloads)
            ]
            for loop in loops:
                loop.start()
            try:
                time.sleep(0.3)  # the downloads are up to speed
                probe = clients.probe(
                    server.host,
                    server.port,
                    big.url_path,
                    cfg.probes,
                    cfg.probe_interval,
                    max_seconds=cfg.probes * cfg.probe_interval * 2,
                )
            finally:
                for loop in loops:
                    loop.stop()
            finished = [d for loop in loops for d in loop.finished]
            run = _latency_summary(probe)
            run["downloads_finished"] = len(finished)
            run["download_mb_s"] = (
                percentile([d.mb_per_s for d in finished], 0.5) if finished else 0.0
            )
            runs[server.peer.name].append(run)
    return {
        "downloads": cfg.fair_downloads,
        "idle_baseline": {"peer": baseline_server.peer.name, **_latency_summary(baseline)},
        "peers": {name: _summary(r, "p99_ms") for name, r in runs.items()},
    }


def cold_read(ctx: Context, servers: dict[str, Server]) -> Result:
    """Goal 6: goal 4's probe while downloads of cold.bin run, the file dropped from the
    page cache (posix_fadvise DONTNEED) before each one."""
    cfg, big, cold = ctx.config, ctx.data.big, ctx.data.cold
    chosen = [servers[p.name] for p in (*OURS, *NGINX) if p.name in servers]
    runs: dict[str, list[Result]] = {s.peer.name: [] for s in chosen}
    for rep, order in rotations(chosen, cfg.reps):
        if rep and not ctx.budget.allows(45):
            break
        ctx.log(f"cold read: rep {rep + 1}/{cfg.reps}")
        for server in order:
            residency: list[float] = []

            def drop(path: Path = cold.path, seen: list[float] = residency) -> None:
                datafiles.drop_from_cache(path)
                fraction = datafiles.cached_fraction(path)
                if fraction is not None:
                    seen.append(fraction)

            loop = clients.DownloadLoop(
                ctx.procs, server.url(cold.url_path), DOWNLOAD_TIMEOUT, before=drop
            )

            def enough(done: int, loop: clients.DownloadLoop = loop) -> bool:
                # At least cfg.probes, and on until a whole cold download ran (3x at most).
                return done >= cfg.probes and len(loop.finished) > 0

            loop.start()
            try:
                time.sleep(0.05)
                probe = clients.probe(
                    server.host,
                    server.port,
                    big.url_path,
                    cfg.probes * 3,
                    cfg.probe_interval,
                    until=enough,
                    max_seconds=cfg.probes * cfg.probe_interval * 4,
                )
            finally:
                loop.stop()
            run = _latency_summary(probe)
            run["cold_downloads"] = len(loop.finished)
            run["cold_mb_s"] = (
                percentile([d.mb_per_s for d in loop.finished], 0.5) if loop.finished else 0.0
            )
            run["cached_before_max"] = max(residency) if residency else -1.0
            runs[server.peer.name].append(run)
    datafiles.drop_from_cache(cold.path)
    return {"peers": {name: _summary(r, "p99_ms") for name, r in runs.items()}}


def _wait_idle(server: Server, timeout: float = 30.0) -> bool:
    """Wait until the workers use under 10% CPU (abandoned requests done); False if not."""
    deadline = time.monotonic() + timeout
    pids = server.worker_pids()
    while time.monotonic() < deadline:
        before = proc_stats.cpu_seconds(pids)
        time.sleep(0.5)
        if proc_stats.cpu_seconds(pids) - before < 0.05 * len(pids):
            return True
    return False


def ranges(ctx: Context, servers: dict[str, Server]) -> Result:
    """Goal 5: wrk, random 64 KiB single ranges of big.bin over keep-alive."""
    cfg, big = ctx.config, ctx.data.big
    runs: dict[str, list[Result]] = {name: [] for name in servers}
    restarts: dict[str, int] = {}
    for rep, order in rotations(list(servers.values()), cfg.reps):
        if rep and not ctx.budget.allows(len(servers) * (cfg.wrk_seconds + 8)):
            break
        ctx.log(f"random ranges: rep {rep + 1}/{cfg.reps}")
        for server in order:
            verify(server, ctx.data)
            pids = server.worker_pids()
            cpu0 = _cpu(server, pids)
            result = clients.wrk_ranges(
                ctx.procs,
                server.url(big.url_path),
                ctx.lua,
                big.size,
                cfg.range_length,
                cfg.wrk_threads,
                cfg.wrk_connections,
                cfg.wrk_seconds,
            )
            cpu1 = _cpu(server, pids)
            runs[server.peer.name].append(
                {
                    "requests_per_s": result.requests_per_s,
                    "latency_avg_ms": result.latency_avg_ms,
                    "latency_max_ms": result.latency_max_ms,
                    "bytes_per_request": result.bytes_per_request,
                    "non_2xx": result.non_2xx,
                    "socket_errors": result.socket_errors,
                    "server_cpu_s": cpu1 - cpu0,
                }
            )
            if not _wait_idle(server):
                # Still busy with abandoned requests (send_file reads from byte 0):
                # restart it so the next peer measured gets the CPU to itself.
                ctx.log(f"random ranges: {server.peer.name} still busy after wrk; restarting it")
                restarts[server.peer.name] = restarts.get(server.peer.name, 0) + 1
                server.restart()
    return {
        "connections": cfg.wrk_connections,
        "threads": cfg.wrk_threads,
        "seconds": cfg.wrk_seconds,
        "restarts_after_run": restarts,
        "peers": {name: _summary(r, "requests_per_s") for name, r in runs.items()},
    }


def ceiling(ctx: Context, servers: dict[str, Server]) -> Result:
    """Scenario 8, the cost of one request: wrk (one thread, 64 connections) with random
    single ranges of big.bin of each length, against the service with its defaults, the
    bare WSGI function under the same gunicorn + gevent worker, and nginx, one worker
    each; worker CPU (utime + stime) per answered request, and req/s."""
    cfg, big = ctx.config, ctx.data.big
    _wait_for_digest(servers, big.url_path)
    by_length: dict[str, Result] = {}
    for length in cfg.ceiling_lengths:
        runs: dict[str, list[Result]] = {name: [] for name in servers}
        for rep, order in rotations(list(servers.values()), cfg.reps):
            if rep and not ctx.budget.allows(len(servers) * (cfg.wrk_seconds + 8)):
                break
            ctx.log(f"ceiling: {length} B ranges, rep {rep + 1}/{cfg.reps}")
            for server in order:
                datafiles.warm(big.path)  # the host reclaims the guest's page cache
                pids = server.worker_pids()
                cpu0 = _cpu(server, pids)
                result = clients.wrk_ranges(
                    ctx.procs,
                    server.url(big.url_path),
                    ctx.lua,
                    big.size,
                    length,
                    1,
                    cfg.ceiling_connections,
                    cfg.wrk_seconds,
                )
                cpu1 = _cpu(server, pids)
                answered = max(1, result.requests - result.non_2xx)
                runs[server.peer.name].append(
                    {
                        "requests_per_s": result.requests_per_s,
                        "cpu_us_per_request": 1e6 * (cpu1 - cpu0) / answered,
                        "latency_max_ms": result.latency_max_ms,
                        "non_2xx": result.non_2xx,
                        "socket_errors": result.socket_errors,
                    }
                )
                _wait_idle(server)
        by_length[str(length)] = {
            "peers": {name: _summary(r, "cpu_us_per_request") for name, r in runs.items()}
        }
    return {
        "connections": cfg.ceiling_connections,
        "seconds": cfg.wrk_seconds,
        "lengths": by_length,
    }


def _wait_for_digest(servers: dict[str, Server], path: str, timeout: float = 120.0) -> None:
    """The service hashes big.bin in the background once asked: measure the steady
    state, where its digest is known (and its answers carry Repr-Digest)."""
    deadline = time.monotonic() + timeout
    for server in servers.values():
        if server.peer.kind != "service":
            continue
        while time.monotonic() < deadline:
            if clients.head_has(server.url(path), "Repr-Digest"):
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"{server.peer.name}: no digest of {path} in {timeout:.0f} s")


def listing(ctx: Context, servers: dict[str, Server]) -> Result:
    """rclone lists a folder of many small files through its index page (workers = cores)."""
    cfg, data = ctx.config, ctx.data
    expected = {f"entry {n:05d}.dat": n % 97 for n in range(data.entries)}
    runs: dict[str, list[Result]] = {name: [] for name in servers}
    for rep, order in rotations(list(servers.values()), cfg.reps):
        if rep and not ctx.budget.allows(len(servers) * 30):
            break
        ctx.log(f"listing: rep {rep + 1}/{cfg.reps}")
        for server in order:
            pids = server.worker_pids()
            cpu0 = _cpu(server, pids)
            walk = clients.rclone_lsl(ctx.procs, server.url(data.folder), expected, timeout=120)
            cpu1 = _cpu(server, pids)
            runs[server.peer.name].append(
                {
                    "seconds": walk.seconds,
                    "entries": walk.entries,
                    "ok": walk.ok,
                    "server_cpu_ms_per_entry": 1000 * (cpu1 - cpu0) / max(1, data.entries),
                }
            )
            _wait_idle(server)
    return {"entries": data.entries, "peers": {n: _summary(r, "seconds") for n, r in runs.items()}}


#: What the archive scenario downloads, besides big.bin: its label -> a query on a folder.
ARCHIVE_KINDS = ("tar", "zip")


def _wait_for_zips(server: Server, folders: Sequence[str], timeout: float = 180.0) -> None:
    """A zip answers 503 until the digest pass knows its members' CRC-32s (asking
    queues them): wait for each, so the runs measure serving, not hashing."""
    deadline = time.monotonic() + timeout
    for folder in folders:
        while (status := clients.head_status(server.url(f"{folder}?format=zip"))[0]) == 503:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.peer.name}: the zip of {folder} stayed 503")
            time.sleep(0.5)
        if status != 200:
            raise RuntimeError(f"{server.peer.name}: the zip of {folder} answered {status}")


def _length(server: Server, path: str) -> int:
    status, fields = clients.head_status(server.url(path))
    if status != 200:
        raise RuntimeError(f"{server.peer.name}: HEAD {path} answered {status}")
    return int(fields["Content-Length"])


def archives(ctx: Context, servers: dict[str, Server]) -> Result:
    """Goal 9: the tar and zip of eight/ (eight files, as many bytes as big.bin) against
    big.bin itself, whole downloads with curl, one worker; then the first byte of the
    archives of many/ (10,000 small files) and the worker's RSS meanwhile."""
    data = ctx.data
    targets = {"file": data.big.url_path}
    targets |= {kind: f"{data.parts_folder}?format={kind}" for kind in ARCHIVE_KINDS}
    for server in servers.values():
        _wait_for_zips(server, [data.parts_folder, data.folder])
    sizes = {label: _length(next(iter(servers.values())), path) for label, path in targets.items()}
    runs: dict[str, list[Result]] = {name: [] for name in servers}
    for rep, order in rotations(list(servers.values()), ctx.config.download_reps):
        if rep and not ctx.budget.allows(60):
            break
        ctx.log(f"archives: rep {rep + 1}/{ctx.config.download_reps}")
        data.warm_all()
        labels = list(targets)
        shift = rep % len(labels)  # every kind at every position over the reps
        for server in order:
            run: Result = {}
            speeds: dict[str, float] = {}
            for label in [*labels[shift:], *labels[:shift]]:
                speeds[label], fields = _archive_download(
                    ctx, server, label, targets[label], sizes[label]
                )
                run |= fields
            for kind in ARCHIVE_KINDS:
                run[f"{kind}_ratio"] = speeds[kind] / max(1e-9, speeds["file"])
                run |= _first_byte(ctx, server, kind)
            run["ok"] = all(bool(v) for k, v in run.items() if k.endswith("_ok"))
            runs[server.peer.name].append(run)
    return {
        "entries": data.entries,
        "parts": len(data.parts),
        "peers": {name: _summary(r, "tar_ratio") for name, r in runs.items()},
    }


def _archive_download(
    ctx: Context, server: Server, label: str, path: str, size: int
) -> tuple[float, Result]:
    """One whole download: its MB/s, and its fields for the run."""
    pids = server.worker_pids()
    cpu0 = _cpu(server, pids)
    download = clients.curl_download(ctx.procs, server.url(path), DOWNLOAD_TIMEOUT)
    cpu1 = _cpu(server, pids)
    return download.mb_per_s, {
        f"{label}_mb_s": download.mb_per_s,
        f"{label}_cpu_s_per_gb": (cpu1 - cpu0) / (max(1, download.size) / GB),
        f"{label}_ok": download.status == 200 and download.size == size,
    }


def _first_byte(ctx: Context, server: Server, kind: str) -> Result:
    """The archive of many/: time to its first byte and to its end, and how far the
    worker's RSS rose meanwhile (sampled)."""
    (pid,) = server.worker_pids()
    before = proc_stats.rss_bytes(pid)
    sampler = _Sampler(pid)
    sampler.start()
    try:
        first = clients.curl_first_byte(
            ctx.procs, server.url(f"{ctx.data.folder}?format={kind}"), DOWNLOAD_TIMEOUT
        )
    finally:
        sampler.stop()
    return {
        f"many_{kind}_first_byte_s": first.first_byte_s,
        f"many_{kind}_seconds": first.seconds,
        f"many_{kind}_rss_rise_mb": max(0, sampler.peak_rss - before) / 1e6,
        f"many_{kind}_peak_rss_mb": max(sampler.peak_rss, before) / 1e6,
        f"many_{kind}_ok": first.status == 200,
    }


class _Sampler(threading.Thread):
    """RSS and descriptor count of one process every 0.2 s, keeping the peaks."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_rss = 0
        self.peak_fds = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.2):
            try:
                self.peak_rss = max(self.peak_rss, proc_stats.rss_bytes(self.pid))
                self.peak_fds = max(self.peak_fds, proc_stats.open_fds(self.pid))
            except OSError:
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


def slow_readers(ctx: Context, peers: Sequence[Peer]) -> Result:
    """Goal 3: N concurrent slow readers of big.bin on one fresh worker, each reading for
    a fixed time; every byte checked (SHA-256 of each body prefix), worker peak RSS, RSS
    per connection, CPU per GB read, descriptors back to idle after the readers leave.

    The goal's count runs first (all its repetitions), then the smaller counts of the
    chart, so a spent time budget cuts the chart rather than the goal."""
    cfg = ctx.config
    by_count: dict[str, dict[str, Result]] = {}
    run_seconds = cfg.slow_seconds + 5
    for count in sorted(cfg.slow_counts, reverse=True):
        reps = cfg.slow_reps if count == cfg.slow_goal_count else 1
        runs: dict[str, list[Result]] = {p.name: [] for p in peers}
        for rep, order in rotations(list(peers), reps):
            first_of_goal = rep == 0 and count == cfg.slow_goal_count
            if not first_of_goal and not ctx.budget.allows(len(peers) * run_seconds):
                ctx.log(f"slow readers: time budget spent, skipping {count} readers rep {rep + 1}")
                break
            ctx.log(f"slow readers: {count} readers, rep {rep + 1}/{reps}")
            for peer in order:
                runs[peer.name].append(_slow_run(ctx, peer, count))
        by_count[str(count)] = {name: _summary(r, "peak_rss_mb") for name, r in runs.items() if r}
    return {
        "rate_bytes_s": cfg.slow_rate,
        "seconds": cfg.slow_seconds,
        "goal_count": cfg.slow_goal_count,
        "counts": dict(sorted(by_count.items(), key=lambda item: int(item[0]))),
    }


def slow_steady(ctx: Context, peers: Sequence[Peer]) -> Result:
    """Goal 3 in a steady state: the goal's readers for ``slow_steady_seconds``, CPU per
    GB taken only over the window after the first ``slow_steady_skip`` seconds, once
    every connection is established and its kernel buffers are full (the 10 s runs
    count the set-up too)."""
    cfg = ctx.config
    runs: dict[str, list[Result]] = {p.name: [] for p in peers}
    for rep, order in rotations(list(peers), 1):
        ctx.log(f"slow readers, steady: {cfg.slow_goal_count} readers, rep {rep + 1}")
        for peer in order:
            runs[peer.name].append(
                _slow_run(ctx, peer, cfg.slow_goal_count, cfg.slow_steady_seconds)
            )
    return {
        "readers": cfg.slow_goal_count,
        "seconds": cfg.slow_steady_seconds,
        "skip": cfg.slow_steady_skip,
        "peers": {name: _summary(r, "steady_cpu_s_per_gb") for name, r in runs.items() if r},
    }


class _Window(threading.Thread):
    """The worker's CPU and the bytes the server wrote, at two moments of a run."""

    def __init__(self, pid: int, port: int, start: float, stop: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.port = pid, port
        self.at = (time.monotonic() + start, time.monotonic() + stop)
        self.samples: list[tuple[float, int | None]] = []

    def run(self) -> None:
        from bench.slowreaders import server_bytes_written

        for moment in self.at:
            time.sleep(max(0.0, moment - time.monotonic()))
            try:
                cpu = proc_stats.cpu_seconds([self.pid])
            except OSError:
                return
            self.samples.append((cpu, server_bytes_written(self.port)))

    def cpu_s_per_gb(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (cpu0, bytes0), (cpu1, bytes1) = self.samples
        if bytes0 is None or bytes1 is None or bytes1 <= bytes0:
            return None
        return (cpu1 - cpu0) / ((bytes1 - bytes0) / GB)


def _slow_run(ctx: Context, peer: Peer, count: int, seconds: float | None = None) -> Result:
    cfg, big = ctx.config, ctx.data.big
    seconds = cfg.slow_seconds if seconds is None else seconds
    # Each download holds a connection slot: room for them all plus the probes.
    env = {"DL_WORKER_CONNECTIONS": str(max(1000, count + 64))}
    server = Server(peer, 1, ctx.data.root, ctx.tools, ctx.procs, env).start()
    try:
        verify(server, ctx.data)
        time.sleep(0.3)
        (worker,) = server.worker_pids()
        idle_rss = proc_stats.rss_bytes(worker)
        idle_fds = proc_stats.open_fds(worker)
        cpu0 = _cpu(server, [worker])
        sampler = _Sampler(worker)
        sampler.start()
        client = clients.slow_readers(
            ctx.procs,
            server.host,
            server.port,
            big.url_path,
            big.path,
            count,
            cfg.slow_rate,
            seconds,
            ctx.tools.workdir / "logs" / "slowreaders.log",
        )
        window = _Window(worker, server.port, min(cfg.slow_steady_skip, seconds / 2), seconds - 1)
        window.start()
        try:
            outcome = clients.slow_readers_result(client, seconds + 60)
        finally:
            ctx.procs.stop(client)
            sampler.stop()
            window.join(timeout=5)
        cpu1 = _cpu(server, [worker])
        peak = max(sampler.peak_rss, proc_stats.peak_rss_bytes(worker))
        fds_after = _settled_fds(worker, idle_fds)
    finally:
        server.stop()
    read = outcome.get("bytes")
    read_bytes = read if isinstance(read, int) else 0
    # CPU per GB over what the server wrote into the sockets (read + still buffered);
    # falls back to what the readers read when ss could not tell.
    written = outcome.get("server_bytes_written")
    written_bytes = written if isinstance(written, int) and written >= read_bytes else read_bytes
    median = outcome.get("reader_bytes_median")
    return {
        "readers": count,
        "exact": outcome.get("exact", 0),
        "all_exact": outcome.get("exact") == count,
        "errors": outcome.get("errors", outcome.get("error", {})),
        "idle_rss_mb": idle_rss / 1e6,
        "peak_rss_mb": peak / 1e6,
        "rss_per_connection_kib": (peak - idle_rss) / count / 1024,
        "idle_fds": idle_fds,
        "peak_fds": sampler.peak_fds,
        "fds_after": fds_after,
        "server_cpu_s": cpu1 - cpu0,
        "server_cpu_s_per_gb": (cpu1 - cpu0) / (written_bytes / GB) if written_bytes else 0.0,
        "server_cpu_s_per_gb_read": (cpu1 - cpu0) / (read_bytes / GB) if read_bytes else 0.0,
        "written_mb": written_bytes / 1e6,
        "read_mb": read_bytes / 1e6,
        "steady_cpu_s_per_gb": window.cpu_s_per_gb(),
        "aggregate_mb_s": read_bytes / seconds / 1e6,
        "reader_kib_s_median": (
            median / seconds / 1024 if isinstance(median, int | float) else 0.0
        ),
        "reader_bytes_min": outcome.get("reader_bytes_min", 0),
    }


def _settled_fds(pid: int, idle: int, timeout: float = 5.0) -> int:
    """The worker's descriptor count once the readers are gone (back to idle, or after
    ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    fds = proc_stats.open_fds(pid)
    while fds > idle and time.monotonic() < deadline:
        time.sleep(0.2)
        fds = proc_stats.open_fds(pid)
    return fds
