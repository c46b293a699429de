"""The stack's ceiling: a bare WSGI function under the service's gunicorn + gevent worker.

Per request it does the least a correct range answer needs: parse one ``bytes=a-b``
(or ``a-``, ``-n``) range, open and ``fstat`` the file, ``pread`` the bytes, close, and
answer 206 with ``Content-Range``, ``Content-Length``, ``ETag`` and ``Last-Modified``
(200 without a Range). No Flask, no validation beyond that, no log, no metrics: what
is left of the service's cost per request above it is the service's own.

``gunicorn -c gunicorn.conf.py bench.peers.bare_wsgi:app`` with ``DL_DATA_ROOT`` set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any

ROOT = os.path.realpath(os.environ["DL_DATA_ROOT"])
PREFIX = "/files/"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/healthz":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return [b"ok\n"]
    name = path[len(PREFIX) :] if path.startswith(PREFIX) else ""
    if not name or ".." in name.split("/"):
        return _status(start_response, "404 Not Found")
    try:
        fd = os.open(os.path.join(ROOT, name), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return _status(start_response, "404 Not Found")
    try:
        facts = os.fstat(fd)
        size = facts.st_size
        span = _range(environ.get("HTTP_RANGE"), size)
        if span is None:
            return _status(start_response, "416 Range Not Satisfiable")
        start, stop = span
        data = os.pread(fd, stop - start, start)
    finally:
        os.close(fd)
    headers = [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(len(data))),
        ("ETag", f'"{facts.st_mtime_ns:x}-{size:x}"'),
        ("Last-Modified", formatdate(facts.st_mtime, usegmt=True)),
        ("Accept-Ranges", "bytes"),
    ]
    if environ.get("HTTP_RANGE"):
        headers.append(("Content-Range", f"bytes {start}-{stop - 1}/{size}"))
        start_response("206 Partial Content", headers)
    else:
        start_response("200 OK", headers)
    return [data]


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """One range as (start, stop); the whole file without a header; None if unsatisfiable."""
    if not header:
        return 0, size
    first, _, last = header.removeprefix("bytes=").partition("-")
    if not first:
        start, stop = max(0, size - int(last)), size
    else:
        start = int(first)
        stop = min(size, int(last) + 1) if last else size
    return (start, stop) if start < stop else None


def _status(start_response: Callable[..., Any], status: str) -> list[bytes]:
    start_response(status, [("Content-Length", "0")])
    return []
