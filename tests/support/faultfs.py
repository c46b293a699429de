"""A read-only FUSE passthrough of a folder that injects storage faults on command.

Run by Debian's Python with its ``python3-fusepy``:
``/usr/bin/python3 faultfs.py SOURCE MOUNTPOINT CONTROL``. CONTROL is a JSON file, read
again whenever it changes, with a list of rules::

    {"rules": [
        {"path": "/big.bin", "op": "read", "stall": 20},
        {"path": "/bad.bin", "op": "read", "errno": "EIO", "offset": 1048576},
        {"path": "/", "op": "getattr", "stall": 3},
        {"path": "/short.bin", "op": "read", "size": 1000}
    ]}

- ``op`` is ``read``, ``open``, ``getattr`` or ``readdir``; ``path`` is below the mount.
- ``stall``: the call waits that many seconds, or until the rule is removed, then goes on.
- ``errno``: the call fails with that error.
- ``offset``: a read rule applies only to reads reaching that byte.
- ``size``: reads behave as if the file ended there (it shrank after it was opened).

Files are opened ``direct_io`` and attributes are never cached, so every call of the service
reaches this process and each fault applies exactly when the rule says. The process
serves each call in its own thread: a stalled call holds only its own.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import threading
import time
from typing import Any

import fusepy  # Debian's python3-fusepy names its module so

#: How often a stalled call looks whether its rule is gone.
POLL = 0.05


class Rules:
    def __init__(self, control: str) -> None:
        self.control = control
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._rules: list[dict[str, Any]] = []

    def matching(self, op: str, path: str) -> list[dict[str, Any]]:
        self._reload()
        return [rule for rule in self._rules if rule["op"] == op and rule["path"] == path]

    def _reload(self) -> None:
        try:
            facts = os.stat(self.control)  # each change is a new file: a new inode
            stamp = (facts.st_ino, facts.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp == self._stamp:
                return
            self._stamp = stamp
            if stamp is None:
                self._rules = []
                return
            with open(self.control, encoding="utf-8") as source:
                self._rules = json.load(source).get("rules", [])

    def still_there(self, rule: dict[str, Any]) -> bool:
        self._reload()
        return rule in self._rules


class FaultFS(fusepy.Operations):  # type: ignore[misc]
    use_ns = True  # fusepy: times in integer nanoseconds (the service's ETag uses them)

    def __init__(self, source: str, rules: Rules) -> None:
        self.source = source
        self.rules = rules

    def _real(self, path: str) -> str:
        return os.path.join(self.source, path.lstrip("/"))

    def _faults(self, op: str, path: str, offset: int | None = None, size: int = 0) -> None:
        for rule in self.rules.matching(op, path):
            if offset is not None and offset + size <= int(rule.get("offset", 0)):
                continue  # a read that ends before the faulty part
            if "stall" in rule:
                deadline = time.monotonic() + float(rule["stall"])
                while time.monotonic() < deadline and self.rules.still_there(rule):
                    time.sleep(POLL)
            if "errno" in rule:
                raise fusepy.FuseOSError(getattr(errno, rule["errno"]))

    def _shrunk_to(self, path: str) -> int | None:
        sizes = [int(rule["size"]) for rule in self.rules.matching("read", path) if "size" in rule]
        return min(sizes) if sizes else None

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        self._faults("getattr", path)
        try:
            facts = os.lstat(self._real(path))
        except OSError as error:
            raise fusepy.FuseOSError(error.errno) from None
        found = {key: getattr(facts, key) for key in ("st_mode", "st_nlink", "st_uid", "st_gid")}
        found["st_size"] = facts.st_size
        found["st_ino"] = facts.st_ino
        for name in ("st_atime", "st_mtime", "st_ctime"):
            found[name] = getattr(facts, name + "_ns")  # use_ns: integers in nanoseconds
        return found

    def readdir(self, path: str, fh: int) -> list[str]:
        self._faults("readdir", path)
        return [".", "..", *os.listdir(self._real(path))]

    def readlink(self, path: str) -> str:
        return os.readlink(self._real(path))

    def open(self, path: str, info: Any) -> int:
        self._faults("open", path)
        try:
            info.fh = os.open(self._real(path), info.flags)
        except OSError as error:
            raise fusepy.FuseOSError(error.errno) from None
        # Reads bypass the page cache and its readahead: each read of the service is one
        # call here. (Page-cache readahead goes out as "background" requests, at most
        # max_background of them per mount, so one stalled file would stall the others.)
        info.direct_io = 1
        return 0

    def read(self, path: str, size: int, offset: int, info: Any) -> bytes:
        self._faults("read", path, offset, size)
        end = self._shrunk_to(path)
        if end is not None:
            size = max(0, min(size, end - offset))
        return os.pread(info.fh, size, offset)

    def release(self, path: str, info: Any) -> int:
        os.close(info.fh)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        facts = os.statvfs(self._real(path))
        return {key: getattr(facts, key) for key in ("f_bsize", "f_blocks", "f_bfree", "f_bavail")}


def main() -> None:
    source, mountpoint, control = sys.argv[1:4]
    fusepy.FUSE(
        FaultFS(os.path.realpath(source), Rules(control)),
        mountpoint,
        raw_fi=True,  # open() sets direct_io on the file info itself
        foreground=True,
        nothreads=False,
        ro=True,
        use_ino=True,
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
        fsname="faultfs",
    )


if __name__ == "__main__":
    main()
