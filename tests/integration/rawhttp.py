"""A tiny raw HTTP/1.x client for the integration tests.

Requests are exact bytes, so header case and whitespace reach the server unchanged.
Responses are parsed strictly: status line, header block, then *exactly* Content-Length
body bytes (or none for HEAD, 1xx, 204 and 304). Every socket has a timeout and every
loop is bounded by a byte count and a deadline, so nothing here can hang.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

TIMEOUT = 5.0
MAX_HEAD = 64 * 1024
MAX_BODY = 256 * 1024 * 1024
_LINGER_ZERO = struct.pack("ii", 1, 0)  # l_onoff=1, l_linger=0: close sends an RST
RECV_SIZE = 256 * 1024

_STATUS_LINE = re.compile(rb"(HTTP/1\.[01]) ([0-9]{3}) ([\x20-\x7e]*)")
_FIELD_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\x20-\x7e]*?)[ \t]*")


#: Header lines: (name, value) pairs, or whole lines as str or exact bytes.
Headers = Sequence[tuple[str, str] | str | bytes]


class ProtocolError(AssertionError):
    """The server sent something that is not a well-formed HTTP/1.x response."""


@dataclass
class RawResponse:
    version: str
    status: int
    reason: str
    head: bytes  # the raw header block: status line up to and including the blank line
    headers: list[tuple[str, str]]
    body: bytes = b""
    framing: str = "length"  # "length", "none", "chunked" or "eof"
    extra: dict[str, object] = field(default_factory=dict)

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        if len(values) > 1:
            raise ProtocolError(f"{name} appears {len(values)} times: {values!r}")
        return values[0] if values else None

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def header_set(self, *ignore: str) -> list[tuple[str, str]]:
        """Header fields (lower-cased names) minus ``ignore`` and X-Request-Id (new for
        every request), sorted for comparison."""
        skip = {name.lower() for name in ignore} | {"x-request-id"}
        return sorted((k.lower(), v) for k, v in self.headers if k.lower() not in skip)


def build_request(
    method: str,
    target: str | bytes,
    headers: Headers | None = None,
    *,
    version: str = "HTTP/1.1",
    host: bool = True,
    body: bytes = b"",
) -> bytes:
    """Request bytes; ``headers`` as (name, value) pairs or whole lines (str or bytes)."""
    if isinstance(target, str):
        target = target.encode("latin-1")
    lines = [method.encode("ascii") + b" " + target + b" " + version.encode("ascii")]
    if host:
        lines.append(b"Host: 127.0.0.1")
    for item in headers or []:
        if isinstance(item, bytes):
            lines.append(item)
        elif isinstance(item, str):
            lines.append(item.encode("latin-1"))
        else:
            name, value = item
            lines.append(f"{name}: {value}".encode("latin-1"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def parse_head(block: bytes) -> RawResponse:
    """Parse a header block (ending with CRLF CRLF) strictly."""
    if not block.endswith(b"\r\n\r\n"):
        raise ProtocolError(f"header block does not end with CRLF CRLF: {block[-40:]!r}")
    lines = block[:-4].split(b"\r\n")
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise ProtocolError(f"bad status line {lines[0][:200]!r}")
    headers = []
    for line in lines[1:]:
        if b"\n" in line or b"\r" in line:
            raise ProtocolError(f"bare CR or LF inside a header line: {line!r}")
        field_match = _FIELD_LINE.fullmatch(line)
        if field_match is None:
            raise ProtocolError(f"malformed header line {line[:200]!r}")
        name, value = field_match.groups()
        headers.append((name.decode("ascii"), value.decode("ascii")))
    version, status, reason = match.groups()
    return RawResponse(version.decode(), int(status), reason.decode("ascii"), block, headers)


class Connection:
    """One client connection to 127.0.0.1 with a receive buffer and strict parsing."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = TIMEOUT,
        rcvbuf: int | None = None,
    ) -> None:
        if host != "127.0.0.1":
            raise ValueError("the tests only talk to 127.0.0.1")
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            if rcvbuf is not None:
                # Before connect, so the window (and the server's run-ahead) stays small.
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.connect((host, port))
        except BaseException:
            self.sock.close()
            raise
        self.buffer = bytearray()
        self.eof = False

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self, *, reset: bool = False) -> None:
        """Close; ``reset=True`` sends an RST (SO_LINGER 0) instead of a FIN."""
        if reset:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
            except OSError:
                pass
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(
        self,
        method: str,
        target: str | bytes,
        headers: Headers | None = None,
        *,
        version: str = "HTTP/1.1",
    ) -> None:
        self.send(build_request(method, target, headers, version=version))

    # -- reading --------------------------------------------------------------------

    def _fill(self, limit: int = RECV_SIZE) -> int:
        """One recv into the buffer; returns the byte count (0 at EOF)."""
        if self.eof:
            return 0
        data = self.sock.recv(limit)
        if not data:
            self.eof = True
        self.buffer += data
        return len(data)

    def read_head(self, deadline: float | None = None) -> RawResponse:
        deadline = deadline or time.monotonic() + self.timeout
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if len(self.buffer) > MAX_HEAD:
                raise ProtocolError("header block too long")
            if time.monotonic() > deadline:
                raise TimeoutError("no complete header block before the deadline")
            if not self._fill():
                raise ProtocolError(f"EOF inside the header block: {bytes(self.buffer)!r}")
        block = bytes(self.buffer[: end + 4])
        del self.buffer[: end + 4]
        return parse_head(block)

    def read_exact(self, count: int, deadline: float | None = None) -> bytes:
        """Exactly ``count`` bytes; raises ProtocolError on EOF first."""
        deadline = deadline or time.monotonic() + max(self.timeout, 30.0)
        while len(self.buffer) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.buffer)} of {count} bytes before the deadline")
            if not self._fill(min(RECV_SIZE, count - len(self.buffer))):
                raise ProtocolError(f"EOF after {len(self.buffer)} of {count} body bytes")
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def read_some(self, limit: int = RECV_SIZE) -> bytes:
        """Buffered bytes, or one recv's worth; b"" at EOF."""
        if not self.buffer:
            self._fill(limit)
        data = bytes(self.buffer[:limit])
        del self.buffer[:limit]
        return data

    def read_to_eof(self, limit: int = MAX_BODY, deadline: float | None = None) -> bytes:
        deadline = deadline or time.monotonic() + max(self.timeout, 30.0)
        while not self.eof:
            if len(self.buffer) > limit:
                raise ProtocolError(f"more than {limit} bytes before EOF")
            if time.monotonic() > deadline:
                raise TimeoutError("no EOF before the deadline")
            self._fill()
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def read_response(self, method: str = "GET", deadline: float | None = None) -> RawResponse:
        response = self.read_head(deadline)
        if method == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200:
            response.framing = "none"
            return response
        if response.get("Transfer-Encoding") is not None:
            response.framing = "chunked"
            response.body = self._read_chunked(deadline)
            return response
        length = response.get("Content-Length")
        if length is None:
            response.framing = "eof"
            response.body = self.read_to_eof(deadline=deadline)
            return response
        if not length.isdigit() or int(length) > MAX_BODY:
            raise ProtocolError(f"bad Content-Length {length!r}")
        response.body = self.read_exact(int(length), deadline)
        return response

    def _read_chunked(self, deadline: float | None) -> bytes:
        body = bytearray()
        for _ in range(100_000):
            line = self._read_line(deadline)
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while self._read_line(deadline):
                    pass
                return bytes(body)
            body += self.read_exact(size, deadline)
            if self.read_exact(2, deadline) != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
            if len(body) > MAX_BODY:
                raise ProtocolError("chunked body too long")
        raise ProtocolError("too many chunks")

    def _read_line(self, deadline: float | None) -> bytes:
        deadline = deadline or time.monotonic() + self.timeout
        while (end := self.buffer.find(b"\r\n")) < 0:
            if time.monotonic() > deadline or len(self.buffer) > MAX_HEAD:
                raise ProtocolError("no line")
            if not self._fill():
                raise ProtocolError("EOF inside a chunk header")
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    def closed_by_peer(self, wait: float = 2.0) -> bool:
        """True when the server has closed (EOF or reset) and sent nothing more.

        Raises ProtocolError if bytes arrive instead: they would be read as a response.
        """
        if self.buffer:
            raise ProtocolError(f"unexpected bytes after the response: {bytes(self.buffer[:80])!r}")
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(RECV_SIZE)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(self.timeout)
        if data:
            raise ProtocolError(f"unexpected bytes after the response: {data[:80]!r}")
        return True


def exchange(
    host: str,
    port: int,
    raw: bytes,
    *,
    method: str = "GET",
    timeout: float = TIMEOUT,
) -> RawResponse:
    """Send ``raw`` on a fresh connection and read one response."""
    with Connection(host, port, timeout=timeout) as conn:
        conn.send(raw)
        return conn.read_response(method)


def get(
    host: str,
    port: int,
    target: str | bytes,
    headers: Headers | None = None,
    *,
    method: str = "GET",
    version: str = "HTTP/1.1",
) -> RawResponse:
    """One request with ``Connection: close`` semantics left to the caller's headers."""
    raw = build_request(method, target, headers, version=version)
    return exchange(host, port, raw, method=method)
