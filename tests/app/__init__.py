"""In-process tests of the Flask app through its test client: no server, no subprocess."""

from __future__ import annotations

import gc
import io
import os
from pathlib import Path
from typing import Any

#: A fixed modification time in the past (2023-11-14T22:13:20Z), so Last-Modified is
#: the file's own and never clipped to "now".
MTIME_NS = 1_700_000_000_000_000_000
BIG_SIZE = 100_000
BIG = bytes((i * 31 + i // 256) % 256 for i in range(BIG_SIZE))


def build_tree(root: Path) -> Path:
    """The data root every app test serves."""
    files = {
        "a.txt": b"hello, world\n",
        "big.bin": BIG,
        "empty.txt": b"",
        "video.mp4": b"\x00\x00\x00\x18ftypmp42",
        "sub/b.txt": b"in a folder\n",
        "sub/deeper/c.txt": b"deeper\n",
        ".hidden": b"secret",
        "sub/.env": b"TOKEN=1",
    }
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.utime(path, ns=(MTIME_NS, MTIME_NS))
    return root


def open_fds() -> int:
    """Descriptors that live objects of this process hold: garbage is collected first
    (a catalog of an earlier test, still to be collected, holds its root's descriptor)."""
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def wsgi_call(app: Any, path: str, **extra: Any) -> tuple[list[Any], Any]:
    """The WSGI call as a server makes it, with ``extra`` environ keys (``REMOTE_ADDR``
    at least): (start_response's arguments, the body iterable, still to be closed)."""
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "t",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        **extra,
    }
    started: list[Any] = []
    body = app(environ, lambda status, headers, exc_info=None: started.extend([status, headers]))
    return started, body
