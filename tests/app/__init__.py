"""In-process tests of the Flask app through its test client: no server, no subprocess."""

from __future__ import annotations

import os
from pathlib import Path

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
    """Descriptors open in this process right now."""
    return len(os.listdir("/proc/self/fd"))
