"""service.storage.mounts: which devices the event loop may trust, from /proc/self/mountinfo."""

from __future__ import annotations

import os
from pathlib import Path

from service.storage.mounts import Mounts, read_mount_types

MOUNTINFO = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw
42 27 0:39 / /srv/fuse ro,nosuid - fuse faultfs ro,user_id=0
43 27 0:40 / /srv/nfs rw shared:7 - nfs4 server:/export rw,vers=4.2
44 27 0:41 / /srv/s3 rw - fuse.rclone remote: rw
"""


def mountinfo(tmp_path: Path, text: str = MOUNTINFO) -> str:
    path = tmp_path / "mountinfo"
    path.write_text(text)
    return str(path)


def test_every_mount_line_gives_its_device_and_type(tmp_path: Path) -> None:
    types = read_mount_types(mountinfo(tmp_path))
    assert types == {
        os.makedev(254, 0): "ext4",
        os.makedev(0, 23): "tmpfs",
        os.makedev(0, 39): "fuse",
        os.makedev(0, 40): "nfs4",  # optional fields before the " - " are skipped
        os.makedev(0, 41): "fuse.rclone",
    }


def test_only_local_file_systems_are_trusted(tmp_path: Path) -> None:
    mounts = Mounts(mountinfo(tmp_path))
    assert mounts.is_local(os.makedev(254, 0))
    assert mounts.is_local(os.makedev(0, 23))
    for remote in (os.makedev(0, 39), os.makedev(0, 40), os.makedev(0, 41)):
        assert not mounts.is_local(remote)
        assert not mounts.probeable(remote)


def test_a_device_not_mounted_here_counts_as_not_local(tmp_path: Path) -> None:
    mounts = Mounts(mountinfo(tmp_path))
    assert mounts.fs_type(os.makedev(8, 99)) == "unknown"
    assert not mounts.probeable(os.makedev(8, 99))


def test_a_mount_made_after_start_is_found(tmp_path: Path) -> None:
    path = mountinfo(tmp_path, MOUNTINFO.splitlines()[0] + "\n")
    mounts = Mounts(path)
    assert mounts.is_local(os.makedev(254, 0))
    Path(path).write_text(MOUNTINFO)
    assert mounts.fs_type(os.makedev(0, 40)) == "nfs4"


def test_a_device_that_cannot_probe_is_marked_alone(tmp_path: Path) -> None:
    mounts = Mounts(mountinfo(tmp_path))
    mounts.cannot_probe(os.makedev(254, 0))
    assert not mounts.probeable(os.makedev(254, 0))
    assert mounts.probeable(os.makedev(0, 23))


def test_without_proc_every_device_counts_as_not_local(tmp_path: Path) -> None:
    assert read_mount_types(str(tmp_path / "missing")) == {}
    assert not Mounts(str(tmp_path / "missing")).is_local(os.makedev(254, 0))
