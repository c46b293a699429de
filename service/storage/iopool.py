"""The worker's threads for storage calls that may block: bounded, capped per file, timed.

Under gevent an ``open``, ``stat`` or read that waits for storage freezes every greenlet
of the worker, and the worker's heartbeat with it. Such calls run here, in at most
``threads`` real threads, while the calling greenlet waits cooperatively:

- one file (a key: a path or an inode) has at most ``per_key`` calls at once. A call
  beyond that waits for one of them to end, and is refused at once
  (:class:`StorageBusyError`) when every call of that file has been running longer than
  :data:`STALLED_AFTER`: a stalled file keeps its own threads, never all of them;
- the pool as a whole follows the same rule: a call waits for a free thread, and is
  refused at once when every thread has been stuck longer than :data:`STALLED_AFTER`;
- a call that has not returned after ``timeout`` seconds (waiting included) raises
  :class:`StorageTimeoutError` in its caller. Its thread stays busy, and counted, until
  the call returns; what it returns then is discarded (a descriptor is closed).

Without gevent (tests, tools, the digest thread) calls run inline, as plain calls.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from service.web.errors import StorageBusyError, StorageTimeoutError

T = TypeVar("T")

#: A call running longer than this counts as stuck: a thread waiting on it is refused
#: at once rather than queued behind it.
STALLED_AFTER = 1.0
#: The pool is unhealthy (``/healthz``) after having no free thread for this long.
SATURATED_AFTER = 5.0


def gevent_active() -> bool:
    """True in a gevent worker, where a blocking call must leave the event loop."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


class IOPool:
    """Blocking calls for one worker process; the threads start on first use (after the
    fork, in the worker)."""

    def __init__(self, threads: int, per_key: int, timeout: float) -> None:
        if threads < 1 or per_key < 1 or timeout <= 0:
            raise ValueError(f"invalid pool: {threads} threads, {per_key} per key, {timeout}s")
        self.threads = threads
        self.per_key = min(per_key, threads)
        self.timeout = timeout
        self._pool: Any = None
        self._pid = 0
        self._calls: dict[Hashable, list[float]] = {}  # key -> start times of calls in flight
        self._in_flight = 0
        self._full_since: float | None = None  # monotonic time the last thread was taken
        self._changed: Any = None  # an Event set (and replaced) whenever a call ends

    def call(
        self,
        key: Hashable,
        function: Callable[..., T],
        *args: Any,
        when_done: Callable[[], None] | None = None,
        discard: Callable[[T], None] | None = None,
    ) -> T:
        """``function(*args)`` in a thread; its exceptions are raised here, unchanged.

        ``when_done`` runs once the call is over for good: when the thread returns, or at
        once if the call never started. ``discard`` gets the result of a call that
        returns after its caller gave up (to close a descriptor nobody will use).
        """
        if not gevent_active():
            try:
                return function(*args)
            finally:
                if when_done is not None:
                    when_done()
        import gevent

        deadline = time.monotonic() + self.timeout
        try:
            self._wait_for_room(key, deadline)
        except BaseException:
            if when_done is not None:
                when_done()
            raise
        started = time.monotonic()
        self._enter(key, started)
        result = self._threads().spawn(_captured, function, args)

        def finished(_: Any) -> None:
            self._leave(key, started)
            if when_done is not None:
                when_done()

        result.rawlink(finished)
        try:
            ok, value = result.get(timeout=max(0.0, deadline - time.monotonic()))
        except BaseException as error:  # the timeout, or this greenlet killed meanwhile
            if discard is not None:
                result.rawlink(lambda done: _discard(done.value, discard))
            if isinstance(error, gevent.Timeout):
                raise StorageTimeoutError(self.timeout) from None
            raise
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def saturated_for(self, now: float | None = None) -> float:
        """Seconds since the pool last had a free thread (0 while it has one)."""
        if self._full_since is None:
            return 0.0
        return (time.monotonic() if now is None else now) - self._full_since

    def in_flight(self) -> int:
        return self._in_flight

    def _threads(self) -> Any:
        import os

        if self._pool is None or self._pid != os.getpid():
            from gevent.threadpool import ThreadPool

            self._pool = ThreadPool(self.threads)
            self._pid = os.getpid()
        return self._pool

    def _wait_for_room(self, key: Hashable, deadline: float) -> None:
        from gevent.event import Event

        while True:
            now = time.monotonic()
            calls = self._calls.get(key, ())
            key_full = len(calls) >= self.per_key
            pool_full = self._in_flight >= self.threads
            if not key_full and not pool_full:
                return
            if key_full and _all_stuck(calls, now):
                raise StorageBusyError("every thread this file uses is stuck")
            if pool_full and _all_stuck(self._start_times(), now):
                raise StorageBusyError("every I/O thread is stuck")
            if now >= deadline:
                raise StorageTimeoutError(self.timeout)
            if self._changed is None:
                self._changed = Event()
            # Woken when a call ends, or when the oldest call becomes stuck.
            self._changed.wait(min(deadline - now, STALLED_AFTER / 2))

    def _start_times(self) -> list[float]:
        return [start for calls in self._calls.values() for start in calls]

    def _enter(self, key: Hashable, started: float) -> None:
        self._calls.setdefault(key, []).append(started)
        self._in_flight += 1
        if self._in_flight >= self.threads and self._full_since is None:
            self._full_since = started

    def _leave(self, key: Hashable, started: float) -> None:
        """Runs on the event loop when a thread's call returns, abandoned or not."""
        calls = self._calls.get(key)
        if calls is not None:
            calls.remove(started)
            if not calls:
                del self._calls[key]
        self._in_flight -= 1
        if self._in_flight < self.threads:
            self._full_since = None
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()


def _all_stuck(starts: Any, now: float) -> bool:
    return bool(starts) and all(now - start > STALLED_AFTER for start in starts)


def _discard(outcome: tuple[bool, Any] | None, discard: Callable[[Any], None]) -> None:
    if outcome is not None and outcome[0]:
        discard(outcome[1])


def _captured(function: Callable[..., T], args: tuple[Any, ...]) -> tuple[bool, Any]:
    """Runs in the thread. An exception comes back as a value: raised from the pool, gevent
    would print it as an unhandled error of the hub before the caller saw it."""
    try:
        return True, function(*args)
    except BaseException as error:
        return False, error
