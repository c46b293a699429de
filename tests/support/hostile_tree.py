"""The data tree both fuzz suites attack: files, secrets just outside the root, hidden
entries, symlinks that escape (absolute and relative) or point at hidden files, a link
that stays inside, and a FIFO. Every file and folder gets one fixed mtime, so each
file's ETag is known in advance (``etag_of``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def etag_of(data: bytes, mtime_ns: int) -> str:
    """The service's strong ETag: size and mtime in nanoseconds, both hex."""
    return f'"{len(data):x}-{mtime_ns:x}"'


def build_hostile_tree(
    base: Path, files: Mapping[str, bytes], *, secret: bytes, hidden: bytes, mtime_ns: int
) -> Path:
    """Make ``base/data`` (returned) holding ``files``; ``secret`` lies outside it and
    ``hidden`` in dotfiles inside it, so a test can look for their bytes in answers."""
    (base / "secret.txt").write_bytes(secret)
    (base / "outside-dir").mkdir()
    (base / "outside-dir" / "inner.txt").write_bytes(secret)
    root = base / "data"
    root.mkdir()
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / "sub").mkdir(exist_ok=True)
    (root / ".hidden").write_bytes(hidden)
    (root / "sub" / ".env").write_bytes(hidden)
    (root / ".hiddendir").mkdir()
    (root / ".hiddendir" / "x.txt").write_bytes(hidden)
    (root / "escape").symlink_to(base / "secret.txt")
    (root / "escape-dir").symlink_to(base / "outside-dir")
    (root / "sub" / "relative-escape").symlink_to("../../secret.txt")
    (root / "sub" / "to-hidden").symlink_to("../.hidden")
    (root / "sub" / "inside-link").symlink_to("../a.txt")
    os.mkfifo(root / "pipe")
    for path in [*root.rglob("*"), root]:
        if not path.is_symlink() and path.name != "pipe":
            os.utime(path, ns=(mtime_ns, mtime_ns))
    return root
