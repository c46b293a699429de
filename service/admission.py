"""Admission: how many downloads each client has in flight, counted across workers.

gunicorn forks its workers from one master, so a table in anonymous shared memory,
made in the master before the fork (``share_across_workers``, called from
gunicorn.conf.py), is seen by every worker. Without it (one process, tests) the table
is made on first use. A slot holds a client address (16 bytes, IPv4 mapped into IPv6)
and a count; lookups probe a short run of slots under one process-shared lock, held
for microseconds and never across I/O. A full table admits rather than refuses.
"""

from __future__ import annotations

import ipaddress
import mmap
import multiprocessing
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_SLOT = struct.Struct("=16sI")  # address, downloads in flight
_PROBES = 64
#: Seconds to wait for the table's lock (held for microseconds in normal operation).
LOCK_TIMEOUT = 0.1


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted download; ``release`` (idempotent) when its body ends."""

    release: Callable[[], None]


class ClientTable:
    """Counts of downloads in flight per client address."""

    def __init__(self, slots: int = 8192, lock: Any = None) -> None:
        self._slots = slots
        self._memory = mmap.mmap(-1, slots * _SLOT.size)  # MAP_SHARED: survives fork
        self._lock = lock if lock is not None else threading.Lock()

    def admit(self, client: str, limit: int) -> Ticket | None:
        """A ticket when ``client`` has fewer than ``limit`` downloads in flight."""
        key = _key(client)
        with self._locked() as locked:
            index = self._find(key) if locked else None
            if index is None:
                return Ticket(lambda: None)  # table full or lock wedged: fail open
            count = self._count(index)
            if count >= limit:
                return None
            _SLOT.pack_into(self._memory, index * _SLOT.size, key, count + 1)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._release(key)

        return Ticket(release)

    def release(self, client: str) -> None:
        """Free one of ``client``'s slots without its ticket: for a download whose end is
        reported from elsewhere (nginx, with ``DL_OFFLOAD``). Never goes below zero."""
        self._release(_key(client))

    def in_flight(self, client: str) -> int:
        key = _key(client)
        with self._locked() as locked:
            index = self._find(key) if locked else None
            return 0 if index is None else self._count(index)

    def _release(self, key: bytes) -> None:
        with self._locked() as locked:
            index = self._find(key) if locked else None
            if index is not None and self._count(index) > 0:
                _SLOT.pack_into(self._memory, index * _SLOT.size, key, self._count(index) - 1)

    @contextmanager
    def _locked(self) -> Iterator[bool]:
        """The lock, or False after a short wait: a worker killed while holding it must
        not stall every other worker, so the cap then fails open."""
        acquired = bool(self._lock.acquire(timeout=LOCK_TIMEOUT))
        try:
            yield acquired
        finally:
            if acquired:
                self._lock.release()

    def _find(self, key: bytes) -> int | None:
        """The slot counting ``key``, else the first free one on its probe run."""
        start = int.from_bytes(key[-8:], "big") * 0x9E3779B97F4A7C15 % self._slots
        free = None
        for step in range(_PROBES):
            index = (start + step) % self._slots
            address, count = _SLOT.unpack_from(self._memory, index * _SLOT.size)
            if count and address == key:
                return index
            if not count and free is None:
                free = index
        return free

    def _count(self, index: int) -> int:
        return int(_SLOT.unpack_from(self._memory, index * _SLOT.size)[1])


def _key(client: str) -> bytes:
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client.encode("utf-8", "replace")[:16].ljust(16, b"\0")  # e.g. a unix socket
    if isinstance(address, ipaddress.IPv4Address):
        address = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + address.packed)
    return address.packed


_shared: ClientTable | None = None


def share_across_workers() -> None:
    """Make the table now, in gunicorn's master, so every forked worker shares it."""
    global _shared
    _shared = ClientTable(lock=multiprocessing.Lock())


def table() -> ClientTable:
    global _shared
    if _shared is None:
        _shared = ClientTable()
    return _shared
