"""The worker's event loop, where there is one (a gunicorn gevent worker): yields that
let other connections in, and work deferred to the end of a loop turn. Outside gevent
(tests, tools, other servers) each is the plain blocking equivalent."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

Later = Callable[[Callable[[], None]], Any]

#: Longest stretch, in seconds, of cheap yields before a yield also polls for I/O.
POLL_INTERVAL = 0.001
_last_poll = [0.0]  # when a yield last let this worker's loop poll sockets


def loop_callback() -> Later | None:
    """gevent's "run this before the loop next waits" (``loop.run_callback``), in a
    monkey-patched process; None elsewhere, where the caller does the work at once.
    Call it in the thread whose loop should run the work."""
    if not _patched():
        return None
    import gevent

    return gevent.get_hub().loop.run_callback  # type: ignore[no-any-return]


def pause_cooperatively(seconds: float) -> None:
    """Sleep cooperatively; with no delay due, still let the event loop poll sockets.

    gevent's ``sleep(0)`` only queues a callback, and the hub checks the clock once per
    50 callbacks: a download whose chunk costs 0.5 ms on the loop (a pread that starts
    the kernel's next readahead on a cold file) held every other client for 25 ms. A
    zero-second timer fires only after the loop's next poll for I/O; it costs a poll,
    so it is used once ``POLL_INTERVAL`` has passed since the last one, and a plain
    ``sleep(0)`` between (a fast download yields every few tens of microseconds).
    """
    if seconds > 0 or not _patched():
        time.sleep(seconds)
        return
    now = time.monotonic()
    if now - _last_poll[0] < POLL_INTERVAL:
        time.sleep(0)
        return
    _last_poll[0] = now
    import gevent

    hub = gevent.get_hub()
    with hub.loop.timer(0) as timer:
        hub.wait(timer)


def let_other_connections_in() -> None:
    """Called after each request (gunicorn's ``post_request``). gunicorn's keep-alive
    loop reads a connection's next request at once, and a client that sends it within
    the time the last answer took to finish never makes that greenlet wait: one
    connection was then served for a second and more while the others' requests sat
    unread (random 4 KiB ranges over 64 connections: p50 0.6 ms, p90 1 s, some over 2 s).
    A yield here lets every ready connection take its turn, as nginx's event loop does;
    it polls at most once per ``POLL_INTERVAL``."""
    if _patched():
        pause_cooperatively(0)


def _patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("time"))
