"""SHA-256 digests and CRC-32s of file versions, computed once, in the background, and
kept (the CRC-32 is what a zip archive records for each member).

A version is (URL path below ``/files/``, size, mtime in ns). The request path only asks
:meth:`DigestStore.lookup` (or :meth:`DigestStore.crc32`, for a zip's members): a dict
read, and on a miss a set check and a queue put. It never hashes and never touches
SQLite; an unknown digest is simply absent from that response. One real OS thread per
worker process (started with the store, in the worker, and again after a fork) takes
versions off the queue, asks the SQLite cache, and only if no process has the digest or
is computing it, reads the file once in 64 KiB reads for both its SHA-256 and its CRC-32
(``hashlib``, ``zlib`` and ``pread`` release the GIL, so gevent's event loop keeps
running) at a lower CPU priority. The result is stored only if the file still has the
size and mtime it had when hashing began, so a file changed meanwhile never gets a wrong
digest.

The cache (WAL mode, short transactions, a busy timeout) is shared by every worker and
survives restarts: a worker loads the known digests of its data root when it starts, so
nothing is hashed twice. A row with no digest yet is a claim: the process hashing that
version, so that other workers do not hash it too. A worker's thread also reads what
the others stored every ``REFRESH_SECONDS``, so a digest one worker computed reaches
the answers of every worker within seconds, not only after a miss of its own.

The same pass also hashes each piece of ``DL_PIECE_SIZE`` bytes (SHA-256 of each, the
last one shorter), for Metalink documents that let a client check and re-fetch pieces.

A cache written before CRC-32s or piece hashes were kept gains their columns when
opened; its rows keep their SHA-256, and a version is read again only when a zip asks
for its CRC-32 or a Metalink for its piece hashes. So is a version whose pieces were
hashed at another piece size.
"""

from __future__ import annotations

import _queue
import enum
import hashlib
import heapq
import logging
import math
import os
import sqlite3
import stat
import tempfile
import time
import weakref
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from config import Settings
from service.sansio import Representation
from service.storage.catalog import Catalog, OpenFile
from service.web.errors import CatalogError, StorageError

log = logging.getLogger(__name__)

Key = tuple[str, int, int]  # (URL path below /files/, size, mtime_ns)

CACHE_FILE = "digests.sqlite3"
_CRC32, _PIECES = 3, 4  # their places in a known version's tuple (DigestStore._known)
#: Bytes per piece hash by default (``DL_PIECE_SIZE``).
PIECE_SIZE = 4 * 1024 * 1024
#: Bytes per read while hashing (hashlib and pread release the GIL for each). Below
#: glibc's 128 KiB mmap threshold on purpose: freeing a larger, mmapped buffer raises
#: that threshold and the heap's trim threshold with it, and the worker's RSS then
#: kept about 1 MiB more of freed copy-path buffers. Hashing speed is the same from
#: 64 KiB to 1 MiB reads (about 1.8 GB/s here).
HASH_CHUNK = 64 * 1024
#: A version is hashed once its mtime is this old: a write within the same timestamp
#: tick as the previous one would leave size and mtime unchanged (racy timestamps).
SETTLE_SECONDS = 2.0
#: Seconds between an idle thread's reads of the digests other workers stored.
REFRESH_SECONDS = 2.0
#: Versions waiting at most; more are dropped (a later request asks again).
MAX_QUEUE = 100_000
#: A claim older than this is ignored even if its process still runs.
CLAIM_SECONDS = 3600.0
#: A version whose storage failed while hashing is tried again only after this long
#: (or as soon as its size or mtime change, which makes it another version).
FAILED_RETRY_SECONDS = 600.0
_MAX_FAILED = 10_000
BUSY_TIMEOUT = 5.0
_NICENESS = 10
_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    root TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 BLOB,
    crc32 INTEGER,
    piece_size INTEGER,
    pieces BLOB,
    claimed_by INTEGER,
    claimed_at REAL,
    hashed_at REAL,
    PRIMARY KEY (root, path, size, mtime_ns)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS digests_by_time ON digests (root, hashed_at);
"""


class Hashes(NamedTuple):
    """What one pass over a file version yields."""

    sha256: bytes
    crc32: int  # as zlib computes it: the CRC-32 of ZIP (APPNOTE 4.4.7)
    #: The SHA-256 of each piece of ``piece_size`` bytes, in order, joined (32 bytes
    #: each); empty for an empty file.
    pieces: bytes = b""
    piece_size: int = 0


#: Bytes per second a ``Retry-After`` of an answer waiting for the digest pass assumes
#: it reads (it runs at a lower priority than serving; 0.5-1 GB/s on an idle core here).
HASH_RATE_ESTIMATE = 250_000_000
#: The longest ``Retry-After`` such an answer asks for: a client comes back at least
#: this often and sees the progress.
MAX_RETRY_AFTER = 300


def hashing_wait(pending_bytes: int) -> int:
    """Seconds a client is asked to wait for the digest pass to read this many bytes."""
    return min(1 + math.ceil(pending_bytes / HASH_RATE_ESTIMATE), MAX_RETRY_AFTER)


def with_digest(store: DigestStore | None, rep: Representation, path: str) -> Representation:
    """``rep`` with its SHA-256 when known (a miss queues it); ``path`` is below /files/."""
    sha256 = None if store is None else store.lookup(path, rep.size, rep.mtime_ns)
    if sha256 is None:
        return rep
    # Not dataclasses.replace, which looks the fields up anew: this runs per request.
    return Representation(rep.name, rep.size, rep.mtime_ns, sha256, rep.tag)


def entry_path(folder: str, name: str) -> str:
    """The digest key's path of entry ``name`` of the folder at URL path ``folder``
    below /files/ (``""`` for the root): the path a file request looks it up by."""
    return f"{folder.strip('/')}/{name}" if folder.strip("/") else name


def default_cache_dirs() -> list[Path]:
    """Where the cache goes without ``DL_DIGEST_CACHE``, best first: the user's cache
    folder (``$XDG_CACHE_HOME`` or ``~/.cache``, kept over reboots), then memory-backed
    ``/dev/shm`` (writable in a read-only container; kept over restarts of the service),
    else the temp folder."""
    found = []
    xdg, home = os.environ.get("XDG_CACHE_HOME", ""), os.environ.get("HOME", "")
    if os.path.isabs(xdg):
        found.append(Path(xdg) / "download-service")
    elif os.path.isabs(home) and home != "/":
        found.append(Path(home) / ".cache" / "download-service")
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    found.append(Path(base) / f"download-service-{os.geteuid()}")
    return found


def open_store(settings: Settings, catalog: Catalog) -> DigestStore | None:
    """The worker's store, or None when digests are off or no cache folder can be used
    (then the service runs on without digests and says why in the log)."""
    if not settings.digests:
        return None
    chosen = settings.digest_cache
    errors = []
    for folder in [chosen] if chosen is not None else default_cache_dirs():
        try:
            if chosen is None:
                _private_folder(folder)
            else:
                folder.mkdir(parents=True, exist_ok=True)
            return DigestStore(folder / CACHE_FILE, catalog, piece_size=settings.piece_size)
        except (OSError, sqlite3.Error) as error:
            errors.append(f"{folder}: {error}")
    log.error("digests are off: no usable cache folder (%s)", "; ".join(errors))
    return None


def _private_folder(folder: Path) -> None:
    # A shared, world-writable parent: refuse a folder someone else made or can write,
    # which could plant wrong digests.
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)
    facts = os.lstat(folder)
    if not stat.S_ISDIR(facts.st_mode) or facts.st_uid != os.geteuid():
        raise PermissionError(f"{folder} is not a folder of this user")
    if facts.st_mode & 0o022:
        raise PermissionError(f"{folder} is writable by other users")


class _Claim(enum.Enum):
    KNOWN = "known"
    MINE = "mine"
    BUSY = "busy"  # another live process is hashing this version


class DigestCache:
    """The SQLite cache for one data root; one connection, used by one thread."""

    def __init__(self, path: Path, root: str, piece_size: int = 0) -> None:
        self.root = root
        self.piece_size = piece_size  # the pieces this process hashes (0: none asked)
        self.db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Bring a cache of an older schema up to this one, keeping its rows."""
        added = (("crc32", "INTEGER"), ("piece_size", "INTEGER"), ("pieces", "BLOB"))
        if all(name in self._columns() for name, _ in added):
            return
        with self._transaction():
            present = self._columns()  # another worker may have just added them
            for name, kind in added:
                if name not in present:
                    self.db.execute(f"ALTER TABLE digests ADD COLUMN {name} {kind}")

    def _columns(self) -> set[str]:
        return {row[1] for row in self.db.execute("PRAGMA table_info(digests)")}

    def close(self) -> None:
        self.db.close()

    def known(
        self, since: float = 0.0
    ) -> list[tuple[str, int, int, bytes, int | None, bytes | None, float]]:
        """Digests of this root stored at or after ``since`` (a ``time.time()``), with
        their CRC-32s and piece hashes (None in rows older than them, and pieces of
        another size than this process's)."""
        return self.db.execute(
            "SELECT path, size, mtime_ns, sha256, crc32,"
            " CASE WHEN piece_size = ? THEN pieces END, hashed_at FROM digests"
            " WHERE root = ? AND hashed_at >= ? AND sha256 IS NOT NULL",
            (self.piece_size, self.root, since),
        ).fetchall()

    def claim(self, key: Key, pid: int, now: float) -> tuple[_Claim, Hashes | None]:
        """Every hash if known; else whether this process may hash the version. A row
        with a SHA-256 but no CRC-32 or no pieces of this size (from an older schema or
        setting) keeps its SHA-256 meanwhile."""
        with self._transaction():
            row = self.db.execute(
                "SELECT sha256, crc32, piece_size, pieces, claimed_by, claimed_at FROM digests"
                " WHERE root = ? AND path = ? AND size = ? AND mtime_ns = ?",
                (self.root, *key),
            ).fetchone()
            if row is not None and None not in row[:4] and row[2] == self.piece_size:
                return _Claim.KNOWN, Hashes(bytes(row[0]), row[1], bytes(row[3]), row[2])
            if row is not None and row[4] != pid and _live_claim(row[4], row[5], now):
                return _Claim.BUSY, None
            self.db.execute(
                "INSERT INTO digests (root, path, size, mtime_ns, claimed_by, claimed_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE"
                " SET claimed_by = excluded.claimed_by, claimed_at = excluded.claimed_at",
                (self.root, *key, pid, now),
            )
            return _Claim.MINE, None

    def store(self, key: Key, hashes: Hashes, now: float) -> None:
        path, size, mtime_ns = key
        with self._transaction():
            # Older versions of this path are gone for good: keep one row per file.
            self.db.execute(
                "DELETE FROM digests WHERE root = ? AND path = ? AND sha256 IS NOT NULL"
                " AND NOT (size = ? AND mtime_ns = ?)",
                (self.root, path, size, mtime_ns),
            )
            self.db.execute(
                "INSERT OR REPLACE INTO digests (root, path, size, mtime_ns, sha256,"
                " crc32, piece_size, pieces, hashed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.root,
                    *key,
                    hashes.sha256,
                    hashes.crc32,
                    hashes.piece_size,
                    hashes.pieces,
                    now,
                ),
            )

    def release(self, key: Key, pid: int) -> None:
        """Give up this process's claim: a bare claim row goes, a kept SHA-256 stays."""
        version = "root = ? AND path = ? AND size = ? AND mtime_ns = ? AND claimed_by = ?"
        with self._transaction():
            self.db.execute(
                f"DELETE FROM digests WHERE {version} AND sha256 IS NULL",
                (self.root, *key, pid),
            )
            self.db.execute(
                f"UPDATE digests SET claimed_by = NULL, claimed_at = NULL WHERE {version}",
                (self.root, *key, pid),
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): short write locks."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if kind is not None else "COMMIT")


def _live_claim(pid: int | None, claimed_at: float | None, now: float) -> bool:
    if pid is None or claimed_at is None or now - claimed_at > CLAIM_SECONDS:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def hash_version(
    opened: OpenFile,
    size: int,
    mtime_ns: int,
    chunk: int = HASH_CHUNK,
    piece_size: int = PIECE_SIZE,
) -> Hashes | None:
    """SHA-256, CRC-32 and piece hashes of the open file, in one read of it, or None
    unless it is, before and after, this version."""
    fd = opened.fd
    if fd is None or (opened.representation.size, opened.representation.mtime_ns) != (
        size,
        mtime_ns,
    ):
        return None
    digest = hashlib.sha256()
    pieces = _Pieces(piece_size)
    crc = 0
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    offset = 0
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while True:
            count = os.preadv(fd, [buffer], offset)
            if count == 0:
                break
            digest.update(view[:count])
            crc = zlib.crc32(view[:count], crc)
            pieces.update(view[:count])
            offset += count
        after = os.fstat(fd)
    except OSError as error:
        raise StorageError.from_os_error(error, offset) from error
    if offset != size or (after.st_size, after.st_mtime_ns) != (size, mtime_ns):
        return None  # changed while we read it: this digest belongs to no version
    return Hashes(digest.digest(), crc, pieces.done(), piece_size)


class _Pieces:
    """The SHA-256 of each ``size``-byte piece of what it is fed, in order."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._hashes: list[bytes] = []
        self._current = hashlib.sha256()
        self._left = size  # bytes until the current piece is complete

    def update(self, data: memoryview) -> None:
        while data:
            taken = data[: self._left]
            self._current.update(taken)
            self._left -= len(taken)
            data = data[len(taken) :]
            if not self._left:
                self._hashes.append(self._current.digest())
                self._current, self._left = hashlib.sha256(), self.size

    def done(self) -> bytes:
        """The hashes joined; a last, shorter piece counts too."""
        if self._left != self.size:
            self._hashes.append(self._current.digest())
            self._current, self._left = hashlib.sha256(), self.size
        return b"".join(self._hashes)


class DigestStore:
    """Known digests in memory in front of the shared cache, and the hashing thread."""

    def __init__(
        self,
        cache_path: Path,
        catalog: Catalog,
        *,
        settle_seconds: float = SETTLE_SECONDS,
        chunk: int = HASH_CHUNK,
        piece_size: int = PIECE_SIZE,
    ) -> None:
        self.cache_path = cache_path
        self.catalog = catalog
        self.settle_seconds = settle_seconds
        self.chunk = chunk
        self.piece_size = piece_size
        self.hashed = 0  # files this process has hashed (a restart should add none)
        # path -> (size, mtime_ns, sha256, crc32 or None, pieces or None): one version
        # per path, read without locks.
        self._known: dict[str, tuple[int, int, bytes, int | None, bytes | None]] = {}
        self._pending: set[Key] = set()
        # Versions whose storage failed while hashing -> when (monotonic): not re-read.
        self._failed: dict[Key, float] = {}
        self._queue: Any = None
        self._pid = 0
        self._closed = False
        self._stopped: Any = None
        self._seen = 0.0  # the newest hashed_at loaded from the cache
        self._refresh_failed = False
        cache = DigestCache(
            cache_path, catalog.root, piece_size
        )  # fails here, at start, if it must
        try:
            self._load(cache)
        finally:
            cache.close()
        # Now, in the worker that made the store: its refreshes then bring every other
        # worker's digests from the start, not only after a first miss of its own.
        self._start_thread()

    def lookup(self, path: str, size: int, mtime_ns: int) -> bytes | None:
        """The SHA-256 of this version if known; else None, and it is queued for hashing."""
        sha256 = self.peek(path, size, mtime_ns)
        if sha256 is None and not self._failed_lately((path, size, mtime_ns)):
            self._request((path, size, mtime_ns))
        return sha256

    def peek(self, path: str, size: int, mtime_ns: int) -> bytes | None:
        """The SHA-256 of this version if known, without queueing it when not."""
        known = self._known.get(path)
        if known is not None and known[0] == size and known[1] == mtime_ns:
            return known[2]
        return None

    def has_pieces(self, path: str, size: int, mtime_ns: int) -> bool:
        """Whether this version's piece hashes are known (without queueing it)."""
        known = self._known.get(path)
        return known is not None and known[0:2] == (size, mtime_ns) and known[_PIECES] is not None

    def pieces(self, path: str, size: int, mtime_ns: int) -> bytes | None:
        """The SHA-256 of each ``piece_size`` piece of this version, joined, if known;
        else None, and it is queued for hashing."""
        pieces: bytes | None = self._known_or_queued(path, size, mtime_ns, _PIECES)
        return pieces

    def crc32(self, path: str, size: int, mtime_ns: int) -> int | None:
        """The CRC-32 of this version if known; else None, and it is queued for hashing."""
        crc32: int | None = self._known_or_queued(path, size, mtime_ns, _CRC32)
        return crc32

    def _known_or_queued(self, path: str, size: int, mtime_ns: int, field: int) -> Any:
        """Field ``field`` of this version's known hashes, or None and the version
        queued (a row from before that field was kept has None there)."""
        known = self._known.get(path)
        if known is not None and known[0:2] == (size, mtime_ns) and known[field] is not None:
            return known[field]
        key = (path, size, mtime_ns)
        if not self._failed_lately(key):
            self._request(key)
        return None

    def queue_length(self) -> int:
        """Versions waiting to be looked up or hashed, including the one in progress."""
        return len(self._pending)

    def wait_idle(self, timeout: float) -> bool:
        """Poll until the queue is empty (for tests and tools); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._pending

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread after the version in progress; idempotent."""
        self._closed = True
        queue, self._queue = self._queue, None
        if queue is not None and self._pid == os.getpid():
            queue.put(None)
            self._stopped.acquire(timeout=timeout)

    def _failed_lately(self, key: Key) -> bool:
        failed = self._failed.get(key)
        return failed is not None and time.monotonic() - failed < FAILED_RETRY_SECONDS

    def _request(self, key: Key) -> None:
        if key in self._pending or self._closed or len(self._pending) >= MAX_QUEUE:
            return
        if self._pid != os.getpid():
            self._start_thread()
        self._pending.add(key)
        self._queue.put(key)

    def _start_thread(self) -> None:
        # Real OS primitives even when gevent has patched threading: a C SimpleQueue
        # blocks on a real lock, and gevent's original start_new_thread makes a real
        # thread (a patched one would be a greenlet, and hashing would stall the loop).
        start_new_thread, allocate_lock = _original_thread_functions()
        self._pending.clear()
        self._queue = _queue.SimpleQueue()
        self._stopped = allocate_lock()
        self._stopped.acquire()
        self._pid = os.getpid()
        start_new_thread(_work, (weakref.ref(self), self._queue, self._stopped))
        weakref.finalize(self, self._queue.put, None)  # a forgotten store ends its thread

    def _drain(self, key: Key, queue: Any, deferred: list[tuple[float, Key]]) -> bool:
        """Settle ``key`` and every version queued meanwhile, over one connection that is
        closed when the queue is empty; False when told to stop. A version modified
        too recently is deferred (it stays queued) and the thread goes on meanwhile."""
        done: list[Key] = []
        cache = DigestCache(self.cache_path, self.catalog.root, self.piece_size)
        try:
            self._load(cache)  # what other workers stored since we last looked
            next_key: Any = key
            while next_key is not None and next_key is not _STOP:
                wait = self._unsettled_for(next_key[2])
                if wait > 0:
                    heapq.heappush(deferred, (time.monotonic() + wait, next_key))
                    next_key = _queued(queue)
                    continue
                try:
                    self._settle(cache, next_key)
                except Exception:  # one bad file must not end the thread
                    log.exception("digest of %r failed", next_key[0])
                done.append(next_key)
                next_key = _queued(queue)
            return next_key is not _STOP
        finally:
            cache.close()
            self._pending.difference_update(done)

    def _refresh(self) -> None:
        """Read what other workers stored since the last look; a failure (the cache
        locked past its busy timeout, say) waits for the next look."""
        try:
            cache = DigestCache(self.cache_path, self.catalog.root, self.piece_size)
            try:
                self._load(cache)
            finally:
                cache.close()
        except (OSError, sqlite3.Error) as error:
            if not self._refresh_failed:  # once, not every few seconds
                log.warning("digest cache not read: %s", error)
            self._refresh_failed = True
        else:
            self._refresh_failed = False

    def _load(self, cache: DigestCache) -> None:
        for path, size, mtime_ns, sha256, crc32, pieces, hashed_at in cache.known(self._seen):
            pieces = None if pieces is None else bytes(pieces)
            self._known[path] = (size, mtime_ns, bytes(sha256), crc32, pieces)
            self._seen = max(self._seen, hashed_at)

    def _settle(self, cache: DigestCache, key: Key) -> None:
        path, size, mtime_ns = key
        pid = os.getpid()
        claim, hashes = cache.claim(key, pid, time.time())
        if claim is _Claim.BUSY:
            return  # another worker hashes it; a later request here finds it in the cache
        if hashes is None:
            try:
                hashes = self._hash(key)
            except StorageError as error:
                cache.release(key, pid)
                self._remember_failure(key, error)
                return
            if hashes is None:
                cache.release(key, pid)
                return
            cache.store(key, hashes, time.time())
            self.hashed += 1
        self._known[path] = (size, mtime_ns, hashes.sha256, hashes.crc32, hashes.pieces)

    def _remember_failure(self, key: Key, error: StorageError) -> None:
        """One log line per failed version; requests do not queue it again for a while."""
        if len(self._failed) >= _MAX_FAILED:
            self._failed.clear()
        self._failed[key] = time.monotonic()
        where = "" if error.offset is None else f" at byte {error.offset}"
        log.error(
            "digest of %r not computed: storage error %s%s; tried again when the file"
            " changes, or in %.0f s",
            key[0], error.errno_name, where, FAILED_RETRY_SECONDS,
        )  # fmt: skip

    def _unsettled_for(self, mtime_ns: int) -> float:
        """Seconds until a version modified at ``mtime_ns`` may be hashed."""
        age = time.time() - mtime_ns / 1e9
        return self.settle_seconds - age if 0 <= age < self.settle_seconds else 0.0

    def _hash(self, key: Key) -> Hashes | None:
        path, size, mtime_ns = key
        try:
            opened = self.catalog.open_file(path)
        except StorageError:
            raise
        except (CatalogError, OSError):
            return None  # gone or replaced: a request for the new version asks again
        try:
            return hash_version(opened, size, mtime_ns, self.chunk, self.piece_size)
        finally:
            opened.close()


def _work(store_ref: weakref.ref[DigestStore], queue: Any, stopped: Any) -> None:
    """The hashing thread. Idle, it holds neither its store (a store nobody uses any
    more, an app in a test, ends its thread) nor any descriptor."""
    _lower_priority()
    deferred: list[tuple[float, Key]] = []  # (monotonic due time, version): not settled yet
    try:
        while (key := _next(queue, deferred)) is not None:
            store = store_ref()
            if store is None:
                break
            if key is _REFRESH:
                store._refresh()
            elif not store._drain(key, queue, deferred):
                break
            del store
    except Exception:
        log.exception("the digest thread stopped")
        if (store := store_ref()) is not None:
            store._closed = True
    finally:
        stopped.release()


_STOP = object()
#: From _next: nothing to do for a while, read the cache (compared by identity).
_REFRESH: Key = ("", -1, -1)


def _queued(queue: Any) -> Any:
    """A version already queued, else None (the batch is over); _STOP when told to stop."""
    try:
        key = queue.get_nowait()
    except _queue.Empty:
        return None
    return _STOP if key is None else key


def _next(queue: Any, deferred: list[tuple[float, Key]]) -> Key | None:
    """The next queued version, a deferred one once it is due, or ``_REFRESH`` after
    ``REFRESH_SECONDS`` without either; None: stop."""
    due = deferred[0][0] - time.monotonic() if deferred else REFRESH_SECONDS
    if due > 0:
        try:
            key: Key | None = queue.get(timeout=min(due, REFRESH_SECONDS))
            return key
        except _queue.Empty:
            pass
    if deferred and deferred[0][0] <= time.monotonic():
        return heapq.heappop(deferred)[1]
    return _REFRESH


def _original_thread_functions() -> tuple[Callable[..., Any], Callable[[], Any]]:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        import _thread

        return _thread.start_new_thread, _thread.allocate_lock
    return (
        monkey.get_original("_thread", "start_new_thread"),
        monkey.get_original("_thread", "allocate_lock"),
    )


def _lower_priority() -> None:
    """On Linux the nice value is per thread: hashing yields the CPU to serving."""
    # Linux applies PRIO_PROCESS with ``who`` 0 to the calling thread only.
    try:
        niceness = os.getpriority(os.PRIO_PROCESS, 0) + _NICENESS
        os.setpriority(os.PRIO_PROCESS, 0, min(19, niceness))
    except (AttributeError, OSError):
        pass
