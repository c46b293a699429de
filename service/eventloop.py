"""The worker's event loop, where there is one (a gunicorn gevent worker): work deferred
to the end of a loop turn. Outside gevent (tests, tools, other servers) callers do the
work at once."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

Later = Callable[[Callable[[], None]], Any]

def loop_callback() -> Later | None:
    """gevent's "run this before the loop next waits" (``loop.run_callback``), in a
    monkey-patched process; None elsewhere, where the caller does the work at once.
    Call it in the thread whose loop should run the work."""
    if not _patched():
        return None
    import gevent

    return gevent.get_hub().loop.run_callback  # type: ignore[no-any-return]


def _patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("time"))
