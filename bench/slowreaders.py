"""N concurrent slow readers in one process, each reading a large file at ``rate`` bytes/s
(a token bucket, like ``curl --limit-rate``) for ``seconds``, then hanging up.

A whole download would not do: on loopback the kernel buffers 1-4 MB per connection, so
a short file leaves the server at once and the server holds nothing per reader. Reading a
file much larger than that for a fixed time keeps every download in flight on the server.
Every byte a reader got is checked: the SHA-256 of its body prefix against the same
prefix of the file (read from disk here), and the ``Content-Length`` against the size.
All readers stop at one deadline; before they hang up, ``ss`` reports what the server
wrote into their sockets (acknowledged plus still queued), the fair base for its CPU
per GB: what a reader never read was still written, and for a copying server copied.

``python -m bench.slowreaders HOST PORT PATH FILE COUNT RATE SECONDS`` prints one JSON
object: how many readers got only exact bytes, their errors, byte counts and timings.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import cast

TICK = 0.2  # seconds of allowance per refill: reads of rate * TICK bytes at most
CONNECT_PARALLEL = 64
GRACE = 30.0  # seconds past the reading time before a reader counts as stuck


class SlowReader(asyncio.BufferedProtocol):
    def __init__(self, request: bytes, rate: int, done: asyncio.Future[str]) -> None:
        self.request, self.rate, self.done = request, rate, done
        self.loop = asyncio.get_running_loop()
        self.burst = max(4096, int(rate * TICK))
        self.tokens = float(self.burst)
        self.stamp = self.loop.time()
        self.buffer = bytearray(self.burst)
        self.head = bytearray()
        self.content_length = -1  # unknown until the header section is complete
        self.received = 0
        self.digest = hashlib.sha256()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def get_buffer(self, sizehint: int) -> memoryview:
        now = self.loop.time()
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return memoryview(self.buffer)[: max(1, min(len(self.buffer), int(self.tokens)))]

    def buffer_updated(self, nbytes: int) -> None:
        self.tokens -= nbytes
        data = bytes(memoryview(self.buffer)[:nbytes])
        if self.content_length < 0:
            self._feed_head(data)
        else:
            self._feed_body(data)
        if self.done.done() or self.transport is None:
            return
        if self.tokens < 1024:
            self.transport.pause_reading()
            self.loop.call_later((self.burst - self.tokens) / self.rate, self._resume)

    def _resume(self) -> None:
        if self.transport is not None and not self.done.done():
            self.transport.resume_reading()

    def _feed_head(self, data: bytes) -> None:
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return
        head, rest = bytes(self.head[:end]), bytes(self.head[end + 4 :])
        if not head.startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 ")):
            self.finish(f"status {head[:12].decode(errors='replace')!r}")
            return
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                self.content_length = int(value)
        if self.content_length < 0:
            self.finish("no Content-Length")
            return
        self._feed_body(rest)

    def _feed_body(self, data: bytes) -> None:
        if self.received + len(data) > self.content_length:
            self.finish("more bytes than Content-Length")
            return
        self.digest.update(data)
        self.received += len(data)
        if self.received == self.content_length:
            self.finish("complete")

    def finish(self, outcome: str) -> None:
        """Record the outcome and hang up (an abort: unread data is simply dropped)."""
        self.stop(outcome)
        if self.transport is not None:
            self.transport.abort()

    def stop(self, outcome: str) -> None:
        """Record the outcome and read no more (the connection stays open)."""
        if not self.done.done():
            self.done.set_result(outcome)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(f"closed by the server ({exc!r})" if exc else "closed early")


@dataclass(slots=True)
class Reading:
    outcome: str  # "read" (time is up), "complete", or what went wrong
    content_length: int
    received: int
    digest: str
    reader: SlowReader | None


async def one_reader(
    host: str, port: int, request: bytes, rate: int, deadline: float, gate: asyncio.Semaphore
) -> Reading:
    """Read until ``deadline`` (loop time), then stop reading but keep the connection."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[str] = loop.create_future()
    reader: SlowReader | None = None
    try:
        async with gate:
            _, reader = await loop.create_connection(
                lambda: SlowReader(request, rate, done), host, port
            )
        try:
            outcome = await asyncio.wait_for(asyncio.shield(done), deadline - loop.time())
        except TimeoutError:
            reader.stop("read")
            outcome = "read"
    except OSError as error:
        outcome = f"connect: {error.strerror or error!r}"
    if reader is None:
        return Reading(outcome, -1, 0, "", None)
    digest = reader.digest.hexdigest()
    return Reading(outcome, reader.content_length, reader.received, digest, reader)


def server_bytes_written(port: int) -> int | None:
    """Bytes the server on ``port`` wrote into its established connections: acknowledged
    by the readers' kernels plus still in its send queues (``ss -ti``)."""
    try:
        done = subprocess.run(
            ["ss", "-tinH", "state", "established", f"( sport = :{port} )"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    total = 0
    for line in done.stdout.splitlines():
        if not line.startswith((" ", "\t")):
            fields = line.split()  # Recv-Q Send-Q local peer
            total += int(fields[1])
        elif match := re.search(r"bytes_acked:(\d+)", line):
            total += int(match.group(1))
    return total


def prefix_digests(path: str, lengths: set[int]) -> dict[int, str]:
    """SHA-256 of every requested prefix length of the file, in one pass."""
    digests: dict[int, str] = {}
    digest = hashlib.sha256()
    position = 0
    with open(path, "rb") as file:
        for length in sorted(lengths):
            while position < length:
                chunk = file.read(min(8 * 1024 * 1024, length - position))
                if not chunk:
                    break
                digest.update(chunk)
                position += len(chunk)
            digests[length] = digest.hexdigest() if position == length else "past the end"
    return digests


async def main(argv: list[str]) -> dict[str, object]:
    host, port, path, file_path = argv[0], int(argv[1]), argv[2], argv[3]
    count, rate, seconds = int(argv[4]), int(argv[5]), float(argv[6])
    size = os.path.getsize(file_path)
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode()
    gate = asyncio.Semaphore(CONNECT_PARALLEL)
    loop = asyncio.get_running_loop()
    began = time.perf_counter()
    deadline = loop.time() + seconds
    tasks = [
        asyncio.ensure_future(one_reader(host, port, request, rate, deadline, gate))
        for _ in range(count)
    ]
    finished, pending = await asyncio.wait(tasks, timeout=seconds + GRACE)
    for task in pending:
        task.cancel()
    elapsed = time.perf_counter() - began
    readings = [t.result() for t in finished if not t.cancelled() and t.exception() is None]
    written = server_bytes_written(port)
    for reading in readings:
        if reading.reader is not None and reading.reader.transport is not None:
            reading.reader.transport.abort()
    expected = prefix_digests(file_path, {r.received for r in readings})
    outcomes: Counter[str] = Counter()
    exact = 0
    for reading in readings:
        if reading.outcome not in ("read", "complete"):
            outcomes[reading.outcome] += 1
        elif reading.content_length != size:
            outcomes[f"Content-Length {reading.content_length}, not {size}"] += 1
        elif reading.digest != expected[reading.received]:
            outcomes["bytes differ from the file"] += 1
        else:
            exact += 1
    outcomes["stuck past the reading time"] += count - len(readings)
    received = sorted(r.received for r in readings) or [0]
    return {
        "count": count,
        "exact": exact,
        "errors": {k: v for k, v in outcomes.items() if v},
        "bytes": sum(received),
        "elapsed_s": round(elapsed, 3),
        "reader_bytes_min": received[0],
        "reader_bytes_median": int(statistics.median(received)),
        "expected_reader_bytes": int(rate * seconds),
        "server_bytes_written": written,
    }


def run() -> None:
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(main(sys.argv[1:]))
    else:
        result = uvloop.run(main(sys.argv[1:]))
    print(json.dumps(result))


if __name__ == "__main__":
    run()
