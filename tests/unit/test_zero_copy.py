"""The zero-copy path of service.delivery.streaming: sendfile onto the client socket.

Runs against a real socket pair (a reader thread drains the far end), so the kernel's
sendfile really carries the bytes; the choice of path is tested on WSGI environs.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import gevent.socket
import gevent.ssl
import pytest

from service.delivery.streaming import (
    OFF_GRID,
    PRIMER,
    SENDFILE_STEP,
    SMALL_BODY,
    iter_body,
    zero_copy_socket,
)
from service.sansio import Span
from service.sansio.multipart import layout
from service.storage.catalog import OpenFile
from service.storage.diskio import DiskIO
from service.web.errors import TruncatedFileError

SIZE = 3 * 1024 * 1024 + 17
CONTENT = os.urandom(SIZE)


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(CONTENT)
    return path


def open_file(path: Path) -> OpenFile:
    fd = os.open(path, os.O_RDONLY)
    return OpenFile(fd, path.name, os.fstat(fd))


class Drain:
    """Reads everything the far end of a socket pair receives, in a thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = bytearray()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while data := self.sock.recv(1 << 20):
            self.received += data

    def result(self) -> bytes:
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
        return bytes(self.received)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    near, far = socket.socketpair()
    yield near, far
    near.close()
    far.close()


def deliver(file: OpenFile, body: list, near: socket.socket, far: socket.socket) -> bytes:
    """What a server would put on the wire: the yielded bytes, then what sendfile sent."""
    drain = Drain(far)
    for chunk in iter_body(file, body, 256 * 1024, 1024 * 1024, near):
        near.sendall(chunk)  # as the WSGI server writes what the generator yields
    near.shutdown(socket.SHUT_WR)
    return drain.result()


def test_whole_file_yields_only_the_primer_and_sendfiles_the_rest(big_file: Path, pair) -> None:
    near, far = pair
    file = open_file(big_file)
    drain = Drain(far)
    yielded = b"".join(
        chunk for chunk in iter_body(file, [Span(0, SIZE)], 256 * 1024, 1 << 20, near)
    )
    near.shutdown(socket.SHUT_WR)
    assert yielded == CONTENT[:PRIMER]
    assert drain.result() == CONTENT[PRIMER:]
    assert file.fd is None
    # gunicorn holds the last chunk it wrote during the whole sendfile transfer: a
    # slow client must not pin a buffer that way; but at least 128 bytes, for REDbot.
    assert 128 <= len(yielded) <= 512


def test_ranges_and_multipart_bodies_arrive_exactly(big_file: Path, pair) -> None:
    near, far = pair
    spans = [Span(5, 70_000), Span(2_000_000, SIZE), Span(100_000, 100_001)]
    body = list(layout("b0undary", "application/octet-stream", spans, SIZE))
    expected = b"".join(CONTENT[s.start : s.stop] if isinstance(s, Span) else s for s in body)
    assert deliver(open_file(big_file), body, near, far) == expected


def test_a_small_body_never_reaches_sendfile(big_file: Path, pair, monkeypatch) -> None:
    near, far = pair
    monkeypatch.setattr(os, "sendfile", lambda *args: pytest.fail("sendfile called"))
    assert (
        deliver(open_file(big_file), [Span(10, 10 + PRIMER)], near, far)
        == CONTENT[10 : 10 + PRIMER]
    )


def test_a_body_up_to_small_body_is_copied_in_one_chunk(big_file: Path, pair, monkeypatch) -> None:
    near, far = pair
    monkeypatch.setattr(os, "sendfile", lambda *args: pytest.fail("sendfile called"))
    drain = Drain(far)
    chunks = list(iter_body(open_file(big_file), [Span(7, 7 + SMALL_BODY)], 1 << 20, 1 << 20, near))
    near.shutdown(socket.SHUT_WR)
    assert chunks == [CONTENT[7 : 7 + SMALL_BODY]]
    assert drain.result() == b""


def test_a_body_over_small_body_goes_through_sendfile(big_file: Path, pair) -> None:
    near, far = pair
    drain = Drain(far)
    span = Span(7, 7 + SMALL_BODY + 1)
    chunks = list(iter_body(open_file(big_file), [span], 1 << 20, 1 << 20, near))
    near.shutdown(socket.SHUT_WR)
    assert chunks == [CONTENT[7 : 7 + PRIMER]]
    assert drain.result() == CONTENT[7 + PRIMER : span.stop]


def test_no_sendfile_call_reads_from_a_page_aligned_offset(
    big_file: Path, pair, monkeypatch
) -> None:
    """Aligned sendfile calls cost a fifth more here: a span that starts on a page
    (an archive member's body, a part of a multipart answer) has its first bytes
    copied, and the bytes on the wire are the same."""
    near, far = pair
    offsets: list[int] = []
    real_sendfile = os.sendfile

    def sendfile(out: int, fd: int, offset: int, count: int) -> int:
        offsets.append(offset)
        return real_sendfile(out, fd, offset, count)

    monkeypatch.setattr(os, "sendfile", sendfile)
    spans = [Span(4096 - PRIMER, SIZE), Span(8192, 8192 + OFF_GRID + 1)]
    body = list(layout("b0undary", "application/octet-stream", spans, SIZE))
    expected = b"".join(CONTENT[s.start : s.stop] if isinstance(s, Span) else s for s in body)
    assert deliver(open_file(big_file), body, near, far) == expected
    assert offsets
    assert [offset for offset in offsets if offset % 4096 == 0] == []
    assert 8192 + OFF_GRID in offsets  # the span at 8192: its first bytes copied


def test_a_slow_client_costs_one_cache_probe_per_step_not_per_call(
    big_file: Path, pair, monkeypatch
) -> None:
    near, far = pair
    near.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
    near.settimeout(10)  # non-blocking inside, as under gevent: partial calls, EAGAIN
    probes: list[tuple[int, int]] = []
    calls: list[int] = []
    real_probe, real_sendfile = DiskIO.ensure_cached, os.sendfile

    def probe(self: DiskIO, file: OpenFile, offset: int, length: int) -> None:
        probes.append((offset, length))
        real_probe(self, file, offset, length)

    def sendfile(out: int, fd: int, offset: int, count: int) -> int:
        calls.append(count)
        return real_sendfile(out, fd, offset, count)

    monkeypatch.setattr(DiskIO, "ensure_cached", probe)
    monkeypatch.setattr(os, "sendfile", sendfile)
    assert deliver(open_file(big_file), [Span(0, SIZE)], near, far) == CONTENT
    starts = [offset for offset, _ in probes]
    assert starts == list(range(PRIMER, SIZE, SENDFILE_STEP))  # each byte probed once
    assert sum(length for _, length in probes) == SIZE - PRIMER
    assert len(calls) > len(probes)  # partial sends happened: per-call probes would show


def test_a_file_truncated_mid_transfer_raises(big_file: Path, pair) -> None:
    near, far = pair
    file = open_file(big_file)
    drain = Drain(far)
    chunks = iter_body(file, [Span(0, SIZE)], 256 * 1024, 1 << 20, near)
    assert next(chunks) == CONTENT[:PRIMER]
    os.truncate(big_file, PRIMER + 1000)
    with pytest.raises(TruncatedFileError):
        next(chunks)
    near.shutdown(socket.SHUT_WR)
    assert drain.result() == CONTENT[PRIMER : PRIMER + 1000]
    assert file.fd is None


def test_a_client_that_left_ends_the_connection_quietly(big_file: Path, pair) -> None:
    near, far = pair
    file = open_file(big_file)
    chunks = iter_body(file, [Span(0, SIZE)], 256 * 1024, 1 << 20, near)
    next(chunks)
    far.close()
    assert list(chunks) == []  # no exception reaches the server: it would log a traceback
    assert file.fd is None
    with pytest.raises(BrokenPipeError):
        near.sendall(b"x" * 1_000_000)  # shut down: the server cannot reuse it


def test_a_stalled_client_times_out_on_a_nonblocking_socket(big_file: Path, pair) -> None:
    near, _far = pair
    near.settimeout(0.2)  # non-blocking underneath, as gevent keeps client sockets
    file = open_file(big_file)
    chunks = iter_body(file, [Span(0, SIZE)], 256 * 1024, 1 << 20, near)
    next(chunks)
    assert list(chunks) == []  # the far end never reads: EAGAIN, wait, time out
    assert file.fd is None


def environ(sock: object, protocol: str = "HTTP/1.1") -> dict[str, object]:
    return {"gunicorn.socket": sock, "SERVER_PROTOCOL": protocol}


def test_zero_copy_is_chosen_for_gunicorns_plain_tcp_socket() -> None:
    with socket.socket() as sock:
        assert zero_copy_socket(environ(sock), enabled=True) is sock
        assert zero_copy_socket(environ(sock, "HTTP/1.0"), enabled=True) is sock


def test_zero_copy_is_not_chosen_when_unsafe_or_off() -> None:
    class TLSSocket(socket.socket):
        def getpeercert(self) -> None:
            return None

    with socket.socket() as sock, TLSSocket() as tls:
        assert zero_copy_socket(environ(sock), enabled=False) is None
        assert zero_copy_socket(environ(sock, "HTTP/2"), enabled=True) is None
        assert zero_copy_socket(environ(tls), enabled=True) is None
        assert zero_copy_socket({"SERVER_PROTOCOL": "HTTP/1.1"}, enabled=True) is None
        assert zero_copy_socket(environ(object()), enabled=True) is None


def test_zero_copy_is_not_chosen_for_a_real_tls_socket() -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    plain = socket.socket()
    with context.wrap_socket(plain, server_hostname="x", do_handshake_on_connect=False) as tls:
        assert zero_copy_socket(environ(tls), enabled=True) is None


def test_gevents_tls_socket_class_is_told_apart_from_its_plain_one() -> None:
    """In a gevent worker ``socket.socket`` is gevent's: the check asks the class."""
    assert hasattr(gevent.ssl.SSLSocket, "getpeercert")
    assert issubclass(gevent.ssl.SSLSocket, gevent.socket.socket)
    assert not hasattr(gevent.socket.socket, "getpeercert")
