"""The files served: random data written once into a temporary data root.

``big.bin`` stays in the page cache (warmed after writing); ``cold.bin`` is the same
size and is dropped from the cache before each cold download. ``many/`` is a folder of
small files, for walking a listing and for the first byte of its archive; ``eight/``
holds eight files with as many bytes as ``big.bin`` between them, for an archive's
throughput against one file's.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

_STEP = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DataFile:
    path: Path
    size: int

    @property
    def url_path(self) -> str:
        return "/files/" + self.path.name


@dataclass(frozen=True, slots=True)
class DataSet:
    root: Path
    big: DataFile
    cold: DataFile
    folder: str  # the URL path of a folder of ``entries`` small files
    entries: int
    parts: tuple[DataFile, ...]  # the files of ``parts_folder``
    parts_folder: str  # its URL path

    def warm_all(self) -> None:
        """Every hot file back in the page cache (the host reclaims it slowly)."""
        for file in (self.big, *self.parts):
            warm(file.path)


def create(root: Path, big_size: int, entries: int) -> DataSet:
    root.mkdir(parents=True, exist_ok=True)
    big = _write_random(root / "big.bin", big_size)
    cold = _write_random(root / "cold.bin", big_size)
    eight = root / "eight"
    eight.mkdir(exist_ok=True)
    parts = tuple(_write_random(eight / f"part-{n}.bin", big_size // 8) for n in range(8))
    many = root / "many"
    many.mkdir(exist_ok=True)
    for number in range(entries):
        (many / f"entry {number:05d}.dat").write_bytes(b"x" * (number % 97))
    drop_from_cache(cold.path)
    data = DataSet(root, big, cold, "/files/many/", entries, parts, "/files/eight/")
    data.warm_all()
    return data


def _write_random(path: Path, size: int) -> DataFile:
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(_STEP, left))
            out.write(block)
            left -= len(block)
        out.flush()
        os.fsync(out.fileno())  # dirty pages cannot be dropped from the cache
    return DataFile(path, size)


def warm(path: Path) -> None:
    """Read the file once so every page is in the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        offset = 0
        while chunk := os.pread(fd, _STEP, offset):
            offset += len(chunk)
    finally:
        os.close(fd)


def drop_from_cache(path: Path) -> None:
    """Evict the file's (clean) pages: the next read goes to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cached_fraction(path: Path) -> float | None:
    """Share of the file in the page cache, from util-linux ``fincore`` (None if absent)."""
    try:
        done = subprocess.run(
            ["fincore", "--bytes", "--noheadings", "--output", "RES,SIZE", str(path)],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        resident, size = (int(v) for v in done.stdout.split())
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return resident / size if size else 1.0


def read_range(path: Path, start: int, length: int) -> bytes:
    with open(path, "rb") as file:
        file.seek(start)
        return file.read(length)
