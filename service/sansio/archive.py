"""Folder archives, format-independent: the members, their order, the archive's
validators and name, and how a range of an archive maps onto header bytes and spans of
member files.

A format module (:mod:`service.sansio.tar`, :mod:`service.sansio.zip`) lays members
out; the layout is arithmetic only: offsets are computed up front, header bytes are
built when a range reaches them, so memory grows with the number of members, never with
the archive's size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from service.sansio.validators import EntityTag

#: Bumped whenever the bytes of a layout change for the same members, so an ETag
#: never names two different archives (a resume must then start over).
LAYOUT_VERSION = 1
#: The name of the root folder's archive: the URL path it is served under.
ROOT_NAME = "files"
#: The ``?format=`` values that name an archive of a folder.
FORMATS = ("tar", "zip")


@dataclass(frozen=True, slots=True)
class Member:
    """One entry of a folder's tree, as the archive records it."""

    path: str  # below the archive's folder, "/"-separated, no trailing "/"
    size: int  # 0 for a folder
    mtime_ns: int
    is_folder: bool = False
    executable: bool = False  # any execute bit set on the file
    crc32: int | None = None


@dataclass(frozen=True, slots=True)
class MemberSpan:
    """Bytes ``[start, stop)`` of member number ``member``'s file."""

    member: int
    start: int
    stop: int

    @property
    def length(self) -> int:
        return self.stop - self.start


Piece = bytes | MemberSpan


class Layout(Protocol):
    """An archive's bytes: ``length`` of them, any range as pieces in order."""

    members: Sequence[Member]

    @property
    def length(self) -> int: ...

    def pieces(self, start: int, stop: int) -> Iterator[Piece]: ...


def ordered(members: Iterable[Member]) -> list[Member]:
    """The stable member order: sorted by path bytes (a folder precedes its contents)."""
    return sorted(members, key=lambda member: member.path.encode("utf-8", "surrogateescape"))


def archive_etag(kind: str, members: Sequence[Member]) -> EntityTag:
    """A strong tag from what decides the archive's bytes: the format, the layout version
    and every member's path, type, mode class, size and mtime. No inode and no clock, so
    every replica holding the same tree sends the same tag."""
    digest = hashlib.sha256(f"{kind}\0{LAYOUT_VERSION}\n".encode())
    for member in members:
        kind_mark = "d" if member.is_folder else ("x" if member.executable else "f")
        line = f"{member.path}\0{kind_mark}\0{member.size}\0{member.mtime_ns}\n"
        digest.update(line.encode("utf-8", "surrogateescape"))
    return EntityTag(f"{kind}-{digest.hexdigest()[:32]}")


def newest_mtime_ns(members: Sequence[Member]) -> int:
    """Last-Modified of an archive: its newest member's (0 for an empty folder)."""
    return max((member.mtime_ns for member in members), default=0)


def archive_filename(folder: str, extension: str) -> str:
    """``<folder>.<extension>`` from the folder's URL path; the root is :data:`ROOT_NAME`."""
    name = folder.rstrip("/").rpartition("/")[2] or ROOT_NAME
    return f"{name}.{extension}"


def signed_path(folder: str, kind: str) -> str:
    """The path a signed link to ``folder``'s archive covers: ``sub/?format=tar``
    (``?format=tar`` for the root's). No listing or file path has this form, so a
    listing's signature never opens its archive, nor an archive's the listing."""
    return f"{folder}?format={kind}"


def clipped(data: bytes, at: int, start: int, stop: int) -> bytes:
    """The part of ``data`` (placed at offset ``at``) inside ``[start, stop)``."""
    if at >= stop or at + len(data) <= start:
        return b""
    return data[max(0, start - at) : min(len(data), stop - at)]


def merged(pieces: Iterable[Piece]) -> Iterator[Piece]:
    """Adjacent header bytes joined into one piece (one write instead of several)."""
    pending: list[bytes] = []
    for piece in pieces:
        if isinstance(piece, bytes):
            if piece:
                pending.append(piece)
            continue
        if pending:
            yield b"".join(pending)
            pending = []
        yield piece
    if pending:
        yield b"".join(pending)
