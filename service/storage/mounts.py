"""What a worker knows of each file system it reads from, by device number (``st_dev``).

Two facts decide whether a storage call may run on the event loop:

- *local*: the file system keeps the inodes of open files in memory (ext4, xfs, btrfs,
  tmpfs, ...), so ``fstat`` of an open file never waits, and a read the kernel reports
  cached is a memory copy. Network and FUSE file systems (NFS, CephFS, SMB, 9p, s3fs,
  rclone mount, gcsfuse, ...) may ask a server on any call: every call on them goes to
  a thread. A device missing from ``/proc/self/mountinfo`` counts as not local.
- *probeable*: ``preadv2(RWF_NOWAIT)`` works there. A local file system that answers
  ``EOPNOTSUPP`` is marked for that device alone, never for the whole process; its
  reads then go to a thread too.

Reading ``/proc/self/mountinfo`` never touches storage; it is read again for a device
not seen before, so a mount made after start is found.
"""

from __future__ import annotations

import os

#: File systems whose open files' metadata and cached pages never wait on a server.
LOCAL_TYPES = frozenset(
    {
        "ext2",
        "ext3",
        "ext4",
        "xfs",
        "btrfs",
        "f2fs",
        "zfs",
        "bcachefs",
        "jfs",
        "reiserfs",
        "tmpfs",
        "ramfs",
        "overlay",
        "squashfs",
        "erofs",
        "iso9660",
        "udf",
        "vfat",
        "exfat",
        "ntfs3",
        "hfsplus",
    }
)
MOUNTINFO = "/proc/self/mountinfo"


class Mounts:
    def __init__(self, mountinfo: str = MOUNTINFO) -> None:
        self.mountinfo = mountinfo
        self._types: dict[int, str] = {}
        self._unprobeable: set[int] = set()

    def fs_type(self, dev: int) -> str:
        """The file system type of device ``dev`` (``"unknown"`` when not mounted here)."""
        found = self._types.get(dev)
        if found is None:
            self._types.update(read_mount_types(self.mountinfo))
            found = self._types.setdefault(dev, "unknown")
        return found

    def is_local(self, dev: int) -> bool:
        return self.fs_type(dev) in LOCAL_TYPES

    def probeable(self, dev: int) -> bool:
        """Whether the kernel can say, without waiting, that a read of ``dev`` won't wait."""
        return dev not in self._unprobeable and self.is_local(dev)

    def cannot_probe(self, dev: int) -> None:
        """``RWF_NOWAIT`` is not supported on ``dev``: its reads leave the event loop."""
        self._unprobeable.add(dev)


def read_mount_types(path: str = MOUNTINFO) -> dict[int, str]:
    """Device number -> file system type, from a ``mountinfo`` file (proc(5))."""
    types: dict[int, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                fields = line.split()
                if " - " not in line or len(fields) < 3:
                    continue
                major, _, minor = fields[2].partition(":")
                after = line.split(" - ", 1)[1].split()
                if major.isdigit() and minor.isdigit() and after:
                    types[os.makedev(int(major), int(minor))] = after[0]
    except OSError:
        pass  # no /proc: every device counts as not local, and its calls go to threads
    return types
