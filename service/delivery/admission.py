"""Admission: how many downloads each client has in flight, counted across workers.

gunicorn forks its workers from one master, so a table in anonymous shared memory,
made in the master before the fork (``share_across_workers``, called from
gunicorn.conf.py), is seen by every worker. Without it (one process, tests) the table
is made on first use. A slot holds a client address (16 bytes, IPv4 mapped into IPv6),
the pid of the worker that admitted the downloads and their count; a client's count is
the sum over its slots. Lookups probe a run of slots (linear probing, at most
``_PROBES``) under one process-shared lock, held for microseconds and never across
I/O. A slot keeps its address and pid when its count drops to zero, so a run ends at
the first slot never used (pid 0): with few clients a lookup reads a slot or two, not
the whole window. A full table admits rather than refuses.

A worker that dies without running its ``finally`` blocks (SIGKILL, the OOM killer,
gunicorn's timeout) cannot release its slots, so the master calls ``forget_worker``
from gunicorn's ``child_exit`` hook and the dead worker's counts are dropped.
"""

from __future__ import annotations

import ipaddress
import mmap
import multiprocessing
import os
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_SLOT = struct.Struct("=16sII")  # address, admitting worker's pid, downloads in flight
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
        key, pid = _key(client), os.getpid()
        lock = self._lock
        if not lock.acquire(timeout=LOCK_TIMEOUT):  # not _locked(): this runs per download
            return Ticket(_nothing)  # lock wedged: fail open
        try:
            run = self._scan(key, pid)
            if run.total >= limit:
                return None
            index = run.own if run.own is not None else run.free
            if index is None:
                return Ticket(_nothing)  # table full: fail open
            self._store(index, key, pid, self._slot(index)[2] + 1)
        finally:
            lock.release()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._release(key, pid, anyone=False)

        return Ticket(release)

    def release(self, client: str, worker: int | None = None) -> None:
        """Free one of ``client``'s slots without its ticket: for a download whose end is
        reported from elsewhere (nginx, with ``DL_OFFLOAD``). The count of ``worker``,
        the pid that admitted it, if it still has one, else any other. Never goes below
        zero."""
        self._release(_key(client), os.getpid() if worker is None else worker, anyone=True)

    def in_flight(self, client: str) -> int:
        key = _key(client)
        with self._locked() as locked:
            run = self._scan(key, os.getpid()) if locked else None
            return 0 if run is None else run.total

    def forget(self, pid: int) -> int:
        """Drop every count held by worker ``pid`` (it has died); how many there were."""
        dropped = 0
        with self._locked() as locked:
            for index in range(self._slots) if locked else ():
                address, owner, count = self._slot(index)
                if count and owner == pid:
                    dropped += count
                    self._store(index, address, owner, 0)
        return dropped

    def _release(self, key: bytes, pid: int, anyone: bool) -> None:
        lock = self._lock
        if not lock.acquire(timeout=LOCK_TIMEOUT):
            return
        try:
            run = self._scan(key, pid)
            index = run.own
            if index is None and anyone:
                index = run.other
            if index is not None:  # a slot the scan found counting key: count > 0
                address, owner, count = self._slot(index)
                self._store(index, address, owner, count - 1)
        finally:
            lock.release()

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

    def _scan(self, key: bytes, pid: int) -> _Run:
        """The probe run of ``key``: its total count, the slot ``pid`` counts it in, any
        other slot counting it, and the first free slot.

        Every slot that counts ``key`` lies before the first never-used slot of its run:
        a count is only ever stored in the first free slot, which is at or before it,
        and a used slot never becomes unused again (its pid stays, never 0)."""
        start = int.from_bytes(key[-8:], "big") * 0x9E3779B97F4A7C15 % self._slots
        run = _Run()
        for step in range(_PROBES):
            index = (start + step) % self._slots
            address, owner, count = self._slot(index)
            if not count:
                if run.free is None:
                    run.free = index
                if not owner:
                    break  # never used: the run ends here
            elif address == key:
                run.total += count
                if owner == pid:
                    run.own = index
                elif run.other is None:
                    run.other = index
        return run

    def _store(self, index: int, key: bytes, pid: int, count: int) -> None:
        _SLOT.pack_into(self._memory, index * _SLOT.size, key, pid, count)

    def _slot(self, index: int) -> tuple[bytes, int, int]:
        address, owner, count = _SLOT.unpack_from(self._memory, index * _SLOT.size)
        return address, owner, count


@dataclass(slots=True)
class _Run:
    total: int = 0
    own: int | None = None
    other: int | None = None
    free: int | None = None


def _key(client: str) -> bytes:
    """The slot's 16-byte address for ``client``, parsed once per address."""
    key = _keys.get(client)
    if key is None:
        if len(_keys) >= _KEYS_KEPT:
            _keys.clear()
        key = _keys[client] = _parse_key(client)
    return key


def _parse_key(client: str) -> bytes:
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client.encode("utf-8", "replace")[:16].ljust(16, b"\0")  # e.g. a unix socket
    if isinstance(address, ipaddress.IPv4Address):
        address = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + address.packed)
    return address.packed


def _nothing() -> None:
    return None


_KEYS_KEPT = 1024
_keys: dict[str, bytes] = {}  # client address -> its key (a client asks again and again)
_shared: ClientTable | None = None


def share_across_workers() -> None:
    """Make the table now, in gunicorn's master, so every forked worker shares it."""
    global _shared
    _shared = ClientTable(lock=multiprocessing.Lock())


def forget_worker(pid: int) -> int:
    """In gunicorn's master, once worker ``pid`` has exited: drop the counts it held."""
    return 0 if _shared is None else _shared.forget(pid)


def table() -> ClientTable:
    global _shared
    if _shared is None:
        _shared = ClientTable()
    return _shared
