"""``python -m service.healthcheck``: ask the local server's ``/healthz``, wherever
``DL_BIND`` put it; exit 0 when it answers 200, else 1 with the reason on stderr.

The container's HEALTHCHECK runs it (the image has no curl): a wildcard bind
(``0.0.0.0``, ``[::]``) is asked on loopback, ``unix:/path`` over its socket. Reads
``DL_BIND`` alone, so it works without a data root and starts fast.
"""

from __future__ import annotations

import http.client
import socket
import sys

from config.settings import SettingsError, read_setting

TIMEOUT = 2.0
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "[::]": "::1", "::": "::1", "": "127.0.0.1"}


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def connection(bind: str, timeout: float = TIMEOUT) -> http.client.HTTPConnection:
    """A connection to the server listening on ``bind`` (a ``DL_BIND`` value)."""
    if bind.startswith("unix:"):
        return _UnixConnection(bind.removeprefix("unix:"), timeout)
    host, _, port = bind.rpartition(":")
    host = _LOOPBACK.get(host, host).removeprefix("[").removesuffix("]")
    return http.client.HTTPConnection(host, int(port), timeout=timeout)


def check(bind: str, timeout: float = TIMEOUT) -> str | None:
    """None when ``/healthz`` answers 200, else why not."""
    conn = connection(bind, timeout)
    try:
        conn.request("GET", "/healthz", headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read(200).decode(errors="replace").strip()
    except OSError as error:
        return f"{bind}: {error}"
    finally:
        conn.close()
    return None if response.status == 200 else f"{bind}: {response.status} {body}"


def main() -> int:
    try:
        bind = read_setting("bind")
    except SettingsError as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    problem = check(bind)
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
