"""The load: curl downloads, a latency probe, wrk with random ranges, the slow readers.

Every client is bounded: a timeout per process, a count per loop.
"""

from __future__ import annotations

import json
import math
import re
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import Processes

PROBE_TIMEOUT = 5.0
_CURL_FORMAT = "%{http_code} %{size_download} %{time_total}"
_CURL_FIRST_BYTE = "%{http_code} %{size_download} %{time_starttransfer} %{time_total}"


@dataclass(frozen=True, slots=True)
class Download:
    status: int
    size: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.size / self.seconds / 1e6 if self.seconds > 0 else 0.0


def children_cpu_seconds() -> float:
    """CPU of this process's reaped children (the curls), for client CPU per GB."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def curl_download(procs: Processes, url: str, timeout: float) -> Download:
    """One whole download to /dev/null, as fast as loopback goes."""
    code, out, _err = procs.run(["curl", "-s", "-o", "/dev/null", "-w", _CURL_FORMAT, url], timeout)
    return _parse_curl(out if code == 0 else f"0 0 {timeout}")


@dataclass(frozen=True, slots=True)
class FirstByte:
    status: int
    size: int
    first_byte_s: float  # from the request's start to its first body byte
    seconds: float


def curl_first_byte(procs: Processes, url: str, timeout: float) -> FirstByte:
    """One whole download to /dev/null, timing its first byte as well as its end."""
    argv = ["curl", "-s", "-o", "/dev/null", "-w", _CURL_FIRST_BYTE, url]
    code, out, _err = procs.run(argv, timeout)
    try:
        status, size, first, total = out.split() if code == 0 else ("0", "0", "nan", "nan")
        return FirstByte(int(status), int(size), float(first), float(total))
    except ValueError:
        return FirstByte(0, 0, math.nan, math.nan)


def head_status(url: str) -> tuple[int, dict[str, str]]:
    """The status and fields of a HEAD of ``url`` (0 and none when it fails)."""
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, dict(reply.headers.items())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items())
    except OSError:
        return 0, {}


@dataclass(frozen=True, slots=True)
class Walk:
    seconds: float
    entries: int  # files rclone listed with the right size
    ok: bool


def rclone_lsl(procs: Processes, url: str, expected: dict[str, int], timeout: float) -> Walk:
    """``rclone lsl`` of a folder over its index page: the page, then a HEAD per file."""
    argv = ["rclone", "lsl", "--config", "/dev/null", "--http-url", url, ":http:"]
    started = time.monotonic()
    code, out, _err = procs.run(argv, timeout)
    seconds = time.monotonic() - started
    listed = {}
    for line in out.splitlines():
        size, _day, _time, name = line.strip().split(" ", 3)
        listed[name] = int(size)
    right = sum(1 for name, size in listed.items() if expected.get(name) == size)
    return Walk(seconds, right, code == 0 and listed == expected)


def parallel_downloads(
    procs: Processes, url: str, count: int, timeout: float
) -> tuple[list[Download], float]:
    """``count`` simultaneous whole downloads; returns them and the wall time of the lot."""
    argv = ["curl", "-s", "-o", "/dev/null", "-w", _CURL_FORMAT, url]
    started = time.perf_counter()
    running = [procs.spawn(argv, stdout=subprocess.PIPE) for _ in range(count)]
    done: list[Download] = []
    try:
        for process in running:
            left = max(0.1, timeout - (time.perf_counter() - started))
            try:
                out, _ = process.communicate(timeout=left)
                done.append(_parse_curl(out.decode()))
            except subprocess.TimeoutExpired:
                done.append(Download(0, 0, timeout))
    finally:
        for process in running:
            procs.stop(process)
    return done, time.perf_counter() - started


def _parse_curl(text: str) -> Download:
    try:
        status, size, seconds = text.split()
        return Download(int(status), int(size), float(seconds))
    except ValueError:
        return Download(0, 0, 0.0)


class DownloadLoop(threading.Thread):
    """Whole downloads back to back until stopped (``before`` runs ahead of each one)."""

    def __init__(
        self,
        procs: Processes,
        url: str,
        timeout: float,
        before: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.procs, self.url, self.timeout, self.before = procs, url, timeout, before
        self.finished: list[Download] = []
        self._stop_event = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        argv = ["curl", "-s", "-o", "/dev/null", "-w", _CURL_FORMAT, self.url]
        while not self._stop_event.is_set():
            if self.before is not None:
                self.before()
            process = self.procs.spawn(argv, stdout=subprocess.PIPE)
            self._process = process
            deadline = time.monotonic() + self.timeout
            while process.poll() is None:
                if self._stop_event.is_set() or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            if process.poll() is not None and not self._stop_event.is_set():
                assert process.stdout is not None
                self.finished.append(_parse_curl(process.stdout.read().decode()))
            self.procs.stop(process)
            if process.stdout is not None:
                process.stdout.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=15)


@dataclass(slots=True)
class ProbeResult:
    latencies: list[float] = field(default_factory=list)  # seconds, failures included
    failures: int = 0


def probe(
    host: str,
    port: int,
    path: str,
    count: int,
    interval: float,
    until: Callable[[int], bool] | None = None,
    max_seconds: float | None = None,
) -> ProbeResult:
    """A 1-byte range request on a fresh connection every ``interval`` s: ``count`` at
    most, for ``max_seconds`` at most (a slow server gets fewer probes), stopping early
    once ``until(probes_done)`` is true. A failure counts as PROBE_TIMEOUT."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: bench\r\nRange: bytes=0-0\r\nConnection: close\r\n\r\n"
    ).encode()
    result = ProbeResult()
    next_at = started = time.perf_counter()
    for i in range(count):
        if until is not None and until(i):
            break
        if max_seconds is not None and time.perf_counter() - started > max_seconds:
            break
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        began = time.perf_counter()
        # After a slow probe the next one starts at once, then the pace resumes (no
        # burst of catch-up probes).
        next_at = began + interval
        ok = _one_probe(host, port, request)
        elapsed = time.perf_counter() - began
        if not ok:
            result.failures += 1
            elapsed = max(elapsed, PROBE_TIMEOUT)
        result.latencies.append(elapsed)
    return result


def _one_probe(host: str, port: int, request: bytes) -> bool:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT) as sock:
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            match = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
            length = int(match.group(1)) if match else 0
            while len(body) < length:
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                body += chunk
            return head.startswith(b"HTTP/1.1 206") and len(body) == 1
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests_per_s: float
    requests: int
    bytes_read: int
    latency_avg_ms: float
    latency_max_ms: float
    non_2xx: int
    socket_errors: int
    raw: str

    @property
    def bytes_per_request(self) -> float:
        return self.bytes_read / self.requests if self.requests else 0.0


def head_has(url: str, field: str) -> bool:
    """Whether a HEAD of ``url`` answers with header ``field``."""
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.headers.get(field) is not None
    except OSError:
        return False


def wrk_ranges(
    procs: Processes,
    url: str,
    script: Path,
    file_size: int,
    range_length: int,
    threads: int,
    connections: int,
    seconds: int,
) -> WrkResult:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "2s",
        "-s",
        str(script),
        url,
        "--",
        str(file_size),
        str(range_length),
    ]
    code, out, err = procs.run(argv, timeout=seconds + 30)
    if code != 0:
        raise RuntimeError(f"wrk failed ({code}): {err.strip()[-500:]}")
    return parse_wrk(out)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_SIZES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse_wrk(text: str) -> WrkResult:
    def number(pattern: str, default: str = "0") -> str:
        match = re.search(pattern, text)
        return match.group(1) if match else default

    latency = re.search(r"Latency\s+([\d.]+)(us|ms|s|m)\s+\S+\s+([\d.]+)(us|ms|s|m)", text)
    avg = max_ = 0.0
    if latency:
        avg = float(latency.group(1)) * _UNITS[latency.group(2)]
        max_ = float(latency.group(3)) * _UNITS[latency.group(4)]
    done = re.search(r"(\d+) requests in [\d.]+\w+, ([\d.]+)(B|KB|MB|GB|TB) read", text)
    requests = int(done.group(1)) if done else 0
    read = int(float(done.group(2)) * _SIZES[done.group(3)]) if done else 0
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return WrkResult(
        requests_per_s=float(number(r"Requests/sec:\s+([\d.]+)")),
        requests=requests,
        bytes_read=read,
        latency_avg_ms=avg,
        latency_max_ms=max_,
        non_2xx=int(number(r"Non-2xx or 3xx responses: (\d+)")),
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        raw=text,
    )


def slow_readers(
    procs: Processes,
    host: str,
    port: int,
    path: str,
    file: Path,
    count: int,
    rate: int,
    seconds: float,
    log: Path,
) -> subprocess.Popen[bytes]:
    """Start the slow-reader client (bench/slowreaders.py) in its own process."""
    argv = [sys.executable, "-m", "bench.slowreaders", host, str(port), path, str(file)]
    argv += [str(count), str(rate), str(seconds)]
    with open(log, "ab") as errors:
        return procs.spawn(
            argv, cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=errors
        )


def slow_readers_result(process: subprocess.Popen[bytes], timeout: float) -> dict[str, object]:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "the slow-reader client did not finish"}
    try:
        result: dict[str, object] = json.loads(out.decode())
    except ValueError:
        return {"error": f"bad output from the slow-reader client: {out[-300:]!r}"}
    return result
