"""The request path's door to the data root: catalog calls that never wait on the loop.

On a root on a local file system (:mod:`service.storage.mounts`), a file is opened right on the
event loop when the kernel promises the lookup needs no I/O (``openat2`` with
``RESOLVE_CACHED``: :meth:`Catalog.open_cached`). Any other open, every listing, and
every call on a root on NFS, FUSE or another file system that may wait on a server, runs
in the worker's I/O threads (:mod:`service.storage.iopool`), capped per path and timed.

:class:`RootProbe` answers ``/healthz``: can this worker still make progress on its root?
"""

from __future__ import annotations

import os
import time
from typing import Any

from service.sansio.archive import Member
from service.storage import openat2
from service.storage.catalog import Catalog, FolderEntry, OpenFile
from service.storage.iopool import SATURATED_AFTER, IOPool, gevent_active
from service.storage.mounts import Mounts

#: ``/healthz`` fails when a ``stat`` of the data root takes longer than this.
PROBE_SECONDS = 2.0


class Storage:
    def __init__(self, catalog: Catalog, pool: IOPool, mounts: Mounts) -> None:
        self.catalog = catalog
        self.pool = pool
        self.mounts = mounts
        self._open_on_loop: bool | None = None  # decided on first use, in a thread

    def open_file(self, name: str) -> OpenFile:
        """The file at URL path ``name`` (raises a CatalogError, StorageError included)."""
        if self._fast_open():
            opened = self.catalog.open_cached(name)
            if opened is not None:
                return opened
        return self.pool.call(("path", name), self.catalog.open_file, name, discard=OpenFile.close)

    def list_folder(self, name: str) -> list[FolderEntry]:
        return self.pool.call(("path", name), self.catalog.list_folder, name)

    def walk_tree(self, name: str, max_members: int) -> list[Member]:
        """A folder's whole tree (:meth:`Catalog.walk_tree`), walked in an I/O thread."""
        return self.pool.call(("path", name), self.catalog.walk_tree, name, max_members)

    def _fast_open(self) -> bool:
        if self._open_on_loop is None:
            # The root's device, asked in a thread: the root itself may be a stalled mount.
            try:
                dev = self.pool.call(("root",), _root_device, self.catalog)
            except OSError:
                return False  # the threaded open reports it; decide at the next request
            self._open_on_loop = openat2.supported() and self.mounts.is_local(dev)
        return self._open_on_loop


def _root_device(catalog: Catalog) -> int:
    return os.fstat(catalog.root_fd).st_dev


class RootProbe:
    """Whether the worker can make progress on its data root, for ``/healthz``.

    Unhealthy when the I/O pool has had no free thread for :data:`SATURATED_AFTER`
    seconds, or when a ``stat`` of the root fails or takes over :data:`PROBE_SECONDS`.
    The probe has a thread of its own (so a full pool cannot hide a healthy root, nor a
    stalled root fill the pool); while a stalled probe has not returned, no other starts.
    """

    def __init__(self, root: str, pool: IOPool) -> None:
        self.root = root
        self.pool = pool
        self._thread: Any = None
        self._pid = 0
        self._pending: Any = None  # the AsyncResult of a probe still running
        self._pending_since = 0.0

    def problem(self) -> str | None:
        """None when healthy; else a short reason."""
        saturated = self.pool.saturated_for()
        if saturated > SATURATED_AFTER:
            return f"all {self.pool.threads} I/O threads busy for {saturated:.0f}s"
        return self._stat_root()

    def _stat_root(self) -> str | None:
        if not gevent_active():
            return _stat(self.root)
        pending = self._pending
        if pending is None or pending.ready():  # none running: ask the root now
            pending = self._pending = self._probe_thread().spawn(_stat, self.root)
            self._pending_since = time.monotonic()
        since = self._pending_since
        pending.wait(max(0.0, since + PROBE_SECONDS - time.monotonic()))
        if not pending.ready():
            return f"stat of the data root unanswered for {time.monotonic() - since:.1f}s"
        outcome: str | None = pending.value
        return outcome

    def _probe_thread(self) -> Any:
        if self._thread is None or self._pid != os.getpid():
            from gevent.threadpool import ThreadPool

            self._thread = ThreadPool(1)
            self._pid = os.getpid()
        return self._thread


def _stat(root: str) -> str | None:
    try:
        os.stat(root)
    except OSError as error:
        return f"data root unavailable: {error.strerror or error}"
    return None
