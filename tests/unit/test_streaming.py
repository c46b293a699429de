"""Streaming: the bytes of a planned body, read with pread, and the descriptor always closed."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.delivery.streaming import Primed, iter_body, prime
from service.sansio import Conditions, Policy, Span, plan_response
from service.sansio.multipart import Segment, body_length, layout
from service.sansio.pacing import RateLimit
from service.storage.catalog import Catalog, OpenFile
from service.storage.diskio import DiskIO
from service.storage.iopool import IOPool
from service.storage.mounts import Mounts
from service.web.errors import StorageError, TruncatedFileError

SIZE = 10_000
CONTENT = bytes((i * 7 + i // 251) % 256 for i in range(SIZE))


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only fixture file for the property tests (never modified)."""
    root = tmp_path_factory.mktemp("stream")
    (root / "data.bin").write_bytes(CONTENT)
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A private copy a test may truncate or grow."""
    (tmp_path / "data.bin").write_bytes(CONTENT)
    return tmp_path


@pytest.fixture
def opened(root: Path) -> Iterator[OpenFile]:
    file = Catalog(root).open_file("data.bin")
    yield file
    file.close()


def open_fds() -> int:
    gc.collect()  # a catalog no longer used still holds its root until collected
    return len(os.listdir("/proc/self/fd"))


def expected_bytes(body: tuple[Segment, ...] | list[Segment], content: bytes) -> bytes:
    return b"".join(content[s.start : s.stop] if isinstance(s, Span) else s for s in body)


spans = st.integers(0, SIZE - 1).flatmap(
    lambda start: st.builds(Span, st.just(start), st.integers(start + 1, SIZE))
)


@given(body=st.lists(spans, max_size=6), chunk_size=st.integers(97, 3000))
def test_the_bytes_produced_are_exactly_the_planned_spans(
    shared_root: Path, body: list[Span], chunk_size: int
) -> None:
    file = Catalog(shared_root).open_file("data.bin")
    produced = b"".join(iter_body(file, body, chunk_size))
    assert produced == expected_bytes(list(body), CONTENT)
    assert file.fd is None


@given(parts=st.lists(spans, min_size=1, max_size=5), chunk_size=st.integers(97, 5000))
def test_a_multipart_layout_streams_its_framing_and_the_file_slices(
    shared_root: Path, parts: list[Span], chunk_size: int
) -> None:
    body = layout("0123456789abcdef", "application/octet-stream", parts, SIZE)
    file = Catalog(shared_root).open_file("data.bin")
    produced = b"".join(iter_body(file, body, chunk_size))
    assert produced == expected_bytes(body, CONTENT)
    assert len(produced) == body_length(body)
    for span in parts:
        head = f"Content-Range: bytes {span.start}-{span.stop - 1}/{SIZE}\r\n\r\n".encode()
        index = produced.index(head) + len(head)
        assert produced[index : index + span.length] == CONTENT[span.start : span.stop]
    assert produced.endswith(b"\r\n--0123456789abcdef--\r\n")


@given(
    ranges=st.lists(
        st.tuples(st.integers(0, SIZE + 50), st.integers(0, SIZE + 50)), min_size=1, max_size=5
    )
)
def test_a_plan_for_any_range_header_streams_what_its_content_length_says(
    shared_root: Path, ranges: list[tuple[int, int]]
) -> None:
    header = "bytes=" + ",".join(f"{min(a, b)}-{max(a, b)}" for a, b in ranges)
    file = Catalog(shared_root).open_file("data.bin")
    plan = plan_response(
        "GET", Conditions(range=header), file.representation, Policy(), now=2_000_000_000
    )
    produced = b"".join(iter_body(file, plan.body, 4096))
    headers = dict(plan.headers)
    assert len(produced) == int(headers["Content-Length"])
    assert produced == expected_bytes(plan.body, CONTENT)
    if plan.status == 206 and "Content-Range" in headers:
        first, last = map(int, re.findall(r"\d+", headers["Content-Range"])[:2])
        assert produced == CONTENT[first : last + 1]
    assert file.fd is None


@pytest.mark.parametrize("chunk_size", [1, 7, 1000, 4096, SIZE, SIZE * 2])
def test_chunks_never_exceed_the_chunk_size_and_never_cross_span_ends(
    opened: OpenFile, chunk_size: int
) -> None:
    body = [Span(0, 2500), Span(2500, 2501), Span(9000, SIZE)]
    chunks = list(iter_body(opened, body, chunk_size))
    assert all(0 < len(chunk) <= chunk_size for chunk in chunks)
    # A regular file returns full reads: each span is whole chunks plus one remainder.
    expected = []
    for span in body:
        full, rest = divmod(span.length, chunk_size)
        expected += [chunk_size] * full + ([rest] if rest else [])
    assert [len(chunk) for chunk in chunks] == expected


def test_framing_bytes_are_yielded_as_they_are(opened: OpenFile) -> None:
    body: list[Segment] = [b"head", Span(0, 3), b"", b"tail"]
    assert list(iter_body(opened, body, 4096)) == [b"head", CONTENT[:3], b"", b"tail"]


def test_the_stream_yields_to_the_event_loop_every_yield_interval(
    opened: OpenFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("service.delivery.streaming.time.sleep", sleeps.append)
    chunks = list(iter_body(opened, [Span(0, SIZE)], 1000, yield_interval=3000))
    assert len(chunks) == 10
    assert sleeps == [0] * 3  # after 3000, 6000 and 9000 bytes


def test_under_gevent_each_yield_lets_the_loop_poll_sockets(tmp_path: Path) -> None:
    """A stream whose every chunk costs CPU on the event loop (0.5 ms here) still lets a
    client that becomes ready mid-stream in within a few yields: a yield polls for I/O
    once POLL_INTERVAL (1 ms) has passed (gevent's ``sleep(0)`` alone polls sockets only
    once per 50 yields)."""
    script = tmp_path / "poll.py"
    script.write_text(
        "from gevent import monkey\n"
        "monkey.patch_all()\n"
        "import socket, time, gevent\n"
        "from service.delivery.streaming import Throttle\n"
        "near, far = socket.socketpair()\n"
        "yields, seen = [0], []\n"
        "reader = gevent.spawn(lambda: seen.append((far.recv(1), yields[0])))\n"
        "gevent.sleep(0.01)  # the reader now waits on its socket\n"
        "throttle = Throttle(yield_interval=1)\n"
        "while not seen and yields[0] < 200:\n"
        "    if yields[0] == 20:  # mid-stream, long after the stream's first poll\n"
        "        near.send(b'x')\n"
        "    busy = time.perf_counter() + 0.0005  # a chunk's work on the loop\n"
        "    while time.perf_counter() < busy:\n"
        "        pass\n"
        "    throttle.account(1)\n"
        "    yields[0] += 1\n"
        "print(seen[0][1] - 20 if seen else 'never')\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) <= 3


def test_reads_use_pread_and_leave_the_file_offset_alone(opened: OpenFile) -> None:
    assert opened.fd is not None
    fd = opened.fd
    os.lseek(fd, 123, os.SEEK_SET)
    generator = iter_body(opened, [Span(5000, 6000)], 100)
    next(generator)
    assert os.lseek(fd, 0, os.SEEK_CUR) == 123
    generator.close()


def test_a_file_truncated_between_plan_and_read_raises_truncated_file_error(
    root: Path, opened: OpenFile
) -> None:
    os.truncate(root / "data.bin", 4000)
    generator = iter_body(opened, [Span(0, SIZE)], 1000)
    received = [next(generator) for _ in range(4)]
    assert b"".join(received) == CONTENT[:4000]
    with pytest.raises(TruncatedFileError, match="ended at byte 4000, 6000 short"):
        next(generator)
    assert opened.fd is None


def test_a_span_starting_past_a_truncated_end_fails_before_yielding(
    root: Path, opened: OpenFile
) -> None:
    os.truncate(root / "data.bin", 0)
    with pytest.raises(TruncatedFileError):
        next(iter_body(opened, [Span(100, 200)], 4096))
    assert opened.fd is None


def test_a_grown_file_still_yields_exactly_the_planned_bytes(root: Path, opened: OpenFile) -> None:
    size = opened.representation.size
    with open(root / "data.bin", "ab") as grow:
        grow.write(b"appended after the plan" * 1000)
    produced = b"".join(iter_body(opened, [Span(0, size)], 3000))
    assert produced == CONTENT
    assert opened.fd is None


def test_the_file_is_closed_after_full_iteration(opened: OpenFile) -> None:
    before = open_fds()
    assert b"".join(iter_body(opened, [Span(0, SIZE)], 4096)) == CONTENT
    assert opened.fd is None
    assert open_fds() == before - 1


def test_the_file_is_closed_when_a_partly_consumed_generator_is_closed(
    opened: OpenFile,
) -> None:
    before = open_fds()
    generator = iter_body(opened, [Span(0, SIZE)], 100)
    assert next(generator) == CONTENT[:100]
    assert opened.fd is not None
    generator.close()  # GeneratorExit: the client went away
    assert opened.fd is None
    assert open_fds() == before - 1


def test_the_file_is_closed_when_an_exception_is_thrown_into_the_generator(
    opened: OpenFile,
) -> None:
    generator = iter_body(opened, [Span(0, SIZE)], 100)
    next(generator)
    with pytest.raises(ConnectionResetError):
        generator.throw(ConnectionResetError("client reset"))
    assert opened.fd is None


def test_the_file_is_closed_when_reading_fails(
    opened: OpenFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object) -> bytes:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "pread", fail)
    with pytest.raises(StorageError) as raised:
        list(iter_body(opened, [Span(0, 10)], 4096))
    assert (raised.value.errno_name, raised.value.offset) == ("EIO", 0)
    assert opened.fd is None


def test_an_empty_body_yields_nothing_and_closes_the_file(opened: OpenFile) -> None:
    assert list(iter_body(opened, [], 4096)) == []
    assert opened.fd is None


def test_reading_a_closed_file_is_an_error(opened: OpenFile) -> None:
    opened.close()
    with pytest.raises(ValueError, match="already closed"):
        list(iter_body(opened, [Span(0, 1)], 4096))


def test_nothing_is_read_before_the_first_chunk_is_asked_for(
    opened: OpenFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[tuple[int, int]] = []
    real_pread = os.pread

    def spy(fd: int, length: int, offset: int) -> bytes:
        reads.append((length, offset))
        return real_pread(fd, length, offset)

    monkeypatch.setattr(os, "pread", spy)
    generator = iter_body(opened, [Span(10, 30)], 8)
    assert reads == []
    assert list(generator) == [CONTENT[10:18], CONTENT[18:26], CONTENT[26:30]]
    assert reads == [(8, 10), (8, 18), (4, 26)]


@pytest.mark.parametrize("multipart", [False, True])
def test_a_primed_body_starts_with_the_primed_bytes_and_never_reads_them_twice(
    opened: OpenFile, monkeypatch: pytest.MonkeyPatch, multipart: bool
) -> None:
    """The first file bytes are read before the response starts (so a storage error
    there is a clean 503); the stream then sends exactly them first, also after a
    multipart part's header."""
    spans = [Span(1000, 6000), Span(8000, 9000)]
    body = layout("b0undary", "text/plain", spans, SIZE) if multipart else (spans[0],)
    disk = DiskIO(IOPool(1, 1, 60.0), Mounts())
    primed = prime(opened, body, 4096, disk, zero_copy=False)
    assert primed == Primed(1000, CONTENT[1000:5096])
    reads: list[int] = []
    real_pread = os.pread

    def pread(fd: int, length: int, offset: int) -> bytes:
        reads.append(offset)
        return real_pread(fd, length, offset)

    monkeypatch.setattr(os, "pread", pread)
    produced = b"".join(iter_body(opened, body, 4096, disk=disk, primed=primed))
    assert produced == expected_bytes(body, CONTENT)
    assert 1000 not in reads
    assert reads[0] == 5096


@pytest.mark.parametrize("limited", [False, True])
def test_a_body_primed_whole_is_that_one_chunk_and_no_more_reads(
    opened: OpenFile, monkeypatch: pytest.MonkeyPatch, limited: bool
) -> None:
    """A small range is read in full before the response starts; the stream then yields
    it once, reads nothing more and closes the file. Under a rate limit it is paced as
    any other body (the same bytes, the same single chunk here)."""
    body = (Span(123, 4219),)
    disk = DiskIO(IOPool(1, 1, 60.0), Mounts())
    limit = RateLimit(10**9, 10**6) if limited else None
    primed = prime(opened, body, 65536, disk, zero_copy=False, rate_limit=limit)
    reads: list[int] = []
    monkeypatch.setattr(os, "pread", lambda fd, length, offset: reads.append(offset) or b"")
    chunks = list(iter_body(opened, body, 65536, rate_limit=limit, disk=disk, primed=primed))
    assert chunks == [CONTENT[123:4219]]
    assert reads == []
    assert opened.fd is None


def test_a_storage_error_mid_body_is_reported_and_the_connection_ended(
    opened: OpenFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Sink:
        def __init__(self) -> None:
            self.failures: list[tuple[str, bool]] = []

        def sent_directly(self, count: int) -> None: ...

        def client_left(self) -> None: ...

        def failed(self, error: Exception, headers_sent: bool) -> None:
            self.failures.append((type(error).__name__, headers_sent))

    real_pread = os.pread

    def pread(fd: int, length: int, offset: int) -> bytes:
        if offset >= 4096:
            raise OSError(5, "Input/output error")
        return real_pread(fd, length, offset)

    monkeypatch.setattr(os, "pread", pread)
    sink, ended = Sink(), []
    chunks = list(
        iter_body(opened, [Span(0, SIZE)], 4096, sink=sink, abort=lambda: ended.append(1) or True)
    )
    assert chunks == [CONTENT[:4096]]  # then the generator just stops
    assert sink.failures == [("StorageError", True)]
    assert ended == [1]
    assert opened.fd is None
