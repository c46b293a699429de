"""The catalog owns every filesystem decision: which names are valid, what lies inside the
data root, what may be served, and the one ``open`` + ``fstat`` per download.

Rules: a URL path is checked segment by segment before it touches the filesystem (no
``..``, ``.``, empty segments, NUL or backslashes); the real path must stay inside the
root unless outside symlinks are allowed; hidden names are refused unless enabled; only
regular files are opened, never blocking (FIFOs and devices are refused by ``stat``
first, and ``O_NONBLOCK`` guards the race). Size and mtime come from ``fstat`` of the
descriptor the bytes will be read from, so headers and body describe one file version.
"""

from __future__ import annotations

import errno
import os
import posix
import stat
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from service.sansio import Representation
from service.sansio.archive import Member
from service.storage.openat2 import (
    RESOLVE_BENEATH,
    RESOLVE_CACHED,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
    openat2,
)
from service.web.errors import (
    BadPathError,
    CatalogError,
    ForbiddenError,
    IsFolderError,
    NotFoundError,
    StorageError,
    TooManyMembersError,
)

#: The plain ``close(2)``. gevent's patched ``os.close`` first ``fstat``s the descriptor,
#: on the event loop: a failing file system then raises EIO from the close and leaves the
#: descriptor open, and a stalled one freezes the worker. Every descriptor closed here is
#: a regular file or an ``O_PATH`` one, which no gevent watcher ever holds.
_close = posix.close

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | os.O_NOFOLLOW
#: Errors that mean "no such servable file" (404), not a failing storage.
_NOT_THERE = frozenset(
    (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.ENXIO, errno.ENODEV)
)
#: openat2 resolution for :meth:`Catalog.open_cached`: from the dentry cache only, no
#: symlinks, no mount crossed, never above the root.
_CACHED_ONLY = (
    RESOLVE_CACHED | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV | RESOLVE_BENEATH
)
_MAX_PATH_BYTES = 4096


class OpenFile:
    """An open regular file and the facts of the version it holds. Closing is idempotent.

    While a thread uses the descriptor (:meth:`pin`), closing waits for it to be done
    (:meth:`unpin`): the number must not be reused by another open under its feet.
    """

    __slots__ = ("_close_pending", "_pins", "dev", "fd", "ino", "path", "representation")

    def __init__(self, fd: int, name: str, facts: os.stat_result, path: str = "") -> None:
        self.fd: int | None = fd
        self.path = path  # the resolved real path that was opened (for nginx offload)
        self.representation = Representation(name, facts.st_size, facts.st_mtime_ns)
        self.dev = facts.st_dev
        self.ino = facts.st_ino
        self._pins = 0
        self._close_pending = False

    def pin(self) -> None:
        self._pins += 1

    def unpin(self) -> None:
        self._pins -= 1
        if self._pins == 0 and self._close_pending:
            self.close()

    def close(self) -> None:
        if self._pins:
            self._close_pending = True
            return
        fd, self.fd = self.fd, None
        if fd is not None:
            _close(fd)


@dataclass(frozen=True, slots=True)
class FolderEntry:
    name: str
    is_folder: bool
    size: int
    mtime_ns: int
    #: Why the entry could not be examined (an errno name): its type, size and mtime
    #: are then unknown, and it is listed all the same.
    error: str | None = None


class Catalog:
    def __init__(
        self, root: Path, *, serve_hidden: bool = False, allow_outside_symlinks: bool = False
    ) -> None:
        self.root = os.path.realpath(root)
        self._root_prefix = os.path.join(self.root, "")  # one separator, also for "/"
        self.serve_hidden = serve_hidden
        self.allow_outside_symlinks = allow_outside_symlinks
        #: An ``O_PATH`` descriptor of the root, for lookups relative to it; opened with
        #: the catalog (in the worker), closed with it.
        self.root_fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        weakref.finalize(self, os.close, self.root_fd)

    def open_cached(self, url_path: str) -> OpenFile | None:
        """The file at ``url_path`` opened without waiting for storage, or None when that
        cannot be promised: a lookup not in the kernel's dentry cache, a symlink on the
        path, a mount crossed. The caller then runs :meth:`open_file` in a thread.

        Only for a root on a local file system (``service.storage.mounts``): there ``fstat`` of
        an open file is a memory read. The name rules are :meth:`open_file`'s; with no
        symlink and no ``..``, the path cannot leave the root.
        """
        segments = self._segments(url_path)
        if not segments:
            raise IsFolderError
        relative = "/".join(segments).encode("utf-8", "surrogateescape")
        try:
            probe = openat2(self.root_fd, relative, os.O_PATH | os.O_CLOEXEC, _CACHED_ONLY)
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ENOTDIR):
                raise NotFoundError from error  # a negative dentry, from the cache
            return None  # EAGAIN (not cached), ELOOP (a symlink), EXDEV, EACCES, ...
        try:
            kind = os.fstat(probe).st_mode  # an O_PATH descriptor: no open() of a device
            if stat.S_ISDIR(kind):
                raise IsFolderError
            if not stat.S_ISREG(kind):
                raise NotFoundError
            fd = openat2(self.root_fd, relative, _OPEN_FLAGS, _CACHED_ONLY)
        except OSError:
            return None
        finally:
            _close(probe)
        try:
            facts = os.fstat(fd)
        except OSError:
            facts = None
        if facts is None or not stat.S_ISREG(facts.st_mode):  # replaced between the opens
            _close(fd)
            return None
        return OpenFile(fd, segments[-1], facts, os.path.join(self.root, *segments))

    def open_file(self, url_path: str) -> OpenFile:
        """Open the regular file at ``url_path`` for reading (raises a CatalogError)."""
        real, kind = self._locate(self._segments(url_path))
        if stat.S_ISDIR(kind):
            raise IsFolderError
        if not stat.S_ISREG(kind):
            raise NotFoundError
        with _os_errors():
            fd = os.open(real, _OPEN_FLAGS)
            try:
                facts = os.fstat(fd)
            except OSError:
                _close(fd)
                raise
        if not stat.S_ISREG(facts.st_mode):  # replaced between stat and open
            _close(fd)
            raise NotFoundError
        return OpenFile(fd, os.path.basename(real), facts, real)

    def list_folder(self, url_path: str) -> list[FolderEntry]:
        """The servable entries of the folder at ``url_path``, sorted by name."""
        segments = self._segments(url_path.removesuffix("/"))
        real = self._resolve(segments)
        if not stat.S_ISDIR(_file_type(real)):
            raise NotFoundError
        with _os_errors(), os.scandir(real) as scan:
            entries = [entry for item in scan if (entry := self._folder_entry(item))]
        return sorted(entries, key=lambda entry: entry.name)

    def _folder_entry(self, item: os.DirEntry[str]) -> FolderEntry | None:
        """The entry as listed; None for what is never served. An entry whose ``stat``
        fails with a storage error is listed with that error, not left out."""
        if not self._servable_name(item.name):
            return None
        try:
            if item.is_symlink():
                self._check_inside(os.path.realpath(item.path))
            facts = item.stat()
        except CatalogError:
            return None
        except OSError as error:
            if error.errno in _NOT_THERE:
                return None  # removed since it was read from the folder, or a dangling link
            return FolderEntry(item.name, False, 0, 0, _errno_name(error))
        if not (stat.S_ISREG(facts.st_mode) or stat.S_ISDIR(facts.st_mode)):
            return None
        is_folder = stat.S_ISDIR(facts.st_mode)
        size = 0 if is_folder else facts.st_size
        return FolderEntry(item.name, is_folder, size, facts.st_mtime_ns)

    def walk_tree(self, url_path: str, max_members: int) -> list[Member]:
        """Every servable entry below the folder at ``url_path``, recursively, as archive
        members (paths below it, in no particular order): what the listings of the folder
        and its subfolders show, by the same rules. A symlinked folder that leads back to
        one of its own ancestors is left out (it would never end). Raises
        TooManyMembersError past ``max_members``, StorageError when an entry cannot be
        examined (an archive with a hole would not be the folder)."""
        segments = self._segments(url_path.removesuffix("/"))
        top = self._resolve(segments)
        with _os_errors():
            facts = os.stat(top)
        if not stat.S_ISDIR(facts.st_mode):
            raise NotFoundError
        members: list[Member] = []
        pending = [("", top, frozenset({(facts.st_dev, facts.st_ino)}))]
        while pending:
            prefix, real, ancestors = pending.pop()
            with _os_errors(), os.scandir(real) as scan:
                items = list(scan)
            for item in items:
                found = self._tree_entry(item)
                if found is None:
                    continue
                facts = found
                path = prefix + item.name
                if stat.S_ISDIR(facts.st_mode):
                    node = (facts.st_dev, facts.st_ino)
                    if node in ancestors:
                        continue
                    members.append(Member(path, 0, facts.st_mtime_ns, is_folder=True))
                    pending.append((path + "/", item.path, ancestors | {node}))
                else:
                    executable = bool(facts.st_mode & 0o111)
                    members.append(
                        Member(path, facts.st_size, facts.st_mtime_ns, False, executable)
                    )
                if len(members) > max_members:
                    raise TooManyMembersError
        return members

    def _tree_entry(self, item: os.DirEntry[str]) -> os.stat_result | None:
        """The facts of a folder's entry for an archive; None for what is never served."""
        if not self._servable_name(item.name):
            return None
        try:
            if item.is_symlink():
                self._check_inside(os.path.realpath(item.path))
            facts = item.stat()
        except CatalogError:
            return None
        except OSError as error:
            if error.errno in _NOT_THERE:
                return None
            raise StorageError.from_os_error(error) from error
        if not (stat.S_ISREG(facts.st_mode) or stat.S_ISDIR(facts.st_mode)):
            return None
        return facts

    def relative_path(self, real: str) -> str | None:
        """``real`` (a path from :meth:`open_file`) below the root, or None when outside."""
        prefix = self._root_prefix
        if not real.startswith(prefix) or len(real) == len(prefix):
            return None
        return real[len(prefix) :]  # paths from open_file are normalised: no relpath needed

    def _servable_name(self, name: str) -> bool:
        if name.startswith(".") and not self.serve_hidden:
            return False
        # List only names a URL can reach: a backslash is refused in any path segment
        # (see _segments), and the router's path pattern never matches a line feed.
        if "\\" in name or "\n" in name:
            return False
        try:
            name.encode("utf-8")  # undecodable names could not be requested by URL
        except UnicodeEncodeError:
            return False
        return True

    def _segments(self, url_path: str) -> list[str]:
        if len(url_path.encode("utf-8", "surrogatepass")) > _MAX_PATH_BYTES:
            raise NotFoundError
        if url_path == "":
            return []
        segments = url_path.split("/")
        for segment in segments:
            if segment in ("", ".", "..") or "\x00" in segment or "\\" in segment:
                raise BadPathError
            if segment.startswith(".") and not self.serve_hidden:
                raise NotFoundError
        return segments

    def _locate(self, segments: list[str]) -> tuple[str, int]:
        """The real path of ``segments`` and its file type. A path without symlinks (the
        usual case) costs one ``lstat`` per segment below the root, where ``realpath``
        would ``lstat`` every component from ``/`` and a ``stat`` would follow; the
        first symlink hands over to :meth:`_resolve`, which applies the symlink rules."""
        path = self.root
        mode = stat.S_IFDIR
        for segment in segments:
            path = os.path.join(path, segment)
            with _os_errors():
                mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                real = self._resolve(segments)
                return real, _file_type(real)
        return path, mode

    def _resolve(self, segments: list[str]) -> str:
        real = os.path.realpath(os.path.join(self.root, *segments))
        self._check_inside(real)
        return real

    def _check_inside(self, real: str) -> None:
        # join(root, "") ends in exactly one separator, also for a root of "/".
        inside = real == self.root or real.startswith(os.path.join(self.root, ""))
        if not inside:
            if not self.allow_outside_symlinks:
                raise NotFoundError
            return
        # A symlink inside the root must not lead to a hidden name either.
        relative = os.path.relpath(real, self.root)
        if not self.serve_hidden and any(
            part.startswith(".") and part != "." for part in relative.split(os.sep)
        ):
            raise NotFoundError


def _file_type(real: str) -> int:
    with _os_errors():
        return os.stat(real).st_mode


@contextmanager
def _os_errors() -> Iterator[None]:
    """Map OSError to the catalog's errors: missing or odd names 404, no permission 403,
    anything else (EIO, ESTALE, ENOTCONN, EMFILE, ...) a storage error, 503."""
    try:
        yield
    except OSError as error:
        if error.errno in _NOT_THERE:
            raise NotFoundError from error
        if error.errno in (errno.EACCES, errno.EPERM):
            raise ForbiddenError from error
        raise StorageError.from_os_error(error) from error


def _errno_name(error: OSError) -> str:
    return StorageError.from_os_error(error).errno_name
