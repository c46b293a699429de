"""service.storage.iopool: blocking calls in threads, capped per file and for the pool, timed.

Each scenario runs in a monkey-patched subprocess, as in a gevent worker.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from service.storage.iopool import IOPool

REPO = Path(__file__).resolve().parents[2]

PRELUDE = """
from gevent import monkey
monkey.patch_all()
import threading, time, gevent
from service.web.errors import StorageBusyError, StorageTimeoutError
from service.storage.iopool import IOPool
real_sleep = monkey.get_original("time", "sleep")
RealEvent = monkey.get_original("threading", "Event")
release = RealEvent()

def stuck(value="done"):
    release.wait(30)  # a stalled read: only the test lets it go
    return value

def outcome(function, *args, **kwargs):
    started = time.monotonic()
    try:
        value = function(*args, **kwargs)
    except Exception as error:
        value = type(error).__name__
    return value, round(time.monotonic() - started, 2)
"""


def run(scenario: str) -> list[str]:
    script = PRELUDE + textwrap.dedent(scenario)
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr  # gevent printed nothing
    return result.stdout.split()


def test_a_call_runs_in_another_thread_while_the_loop_keeps_running() -> None:
    out = run("""
        pool = IOPool(4, 2, 10)
        main = threading.get_native_id()
        ticks = []
        ticker = gevent.spawn(lambda: [ticks.append(1) or gevent.sleep(0.01) for _ in range(5)])
        def blocking():
            real_sleep(0.2)  # blocks this thread, as a disk wait would
            return threading.get_native_id()
        print(pool.call("a", blocking) != main, len(ticks))
    """)
    assert out == ["True", "5"]


def test_errors_of_the_call_reach_the_caller_unchanged() -> None:
    out = run("""
        pool = IOPool(4, 2, 10)
        def fail():
            raise FileNotFoundError(2, "gone")
        print(outcome(pool.call, "a", fail)[0])
    """)
    assert out == ["FileNotFoundError"]


def test_a_stalled_file_keeps_its_threads_and_is_refused_at_once_beyond_them() -> None:
    """Two calls stuck on one file use its two threads; past STALLED_AFTER a third call
    for it is refused without waiting, while another file is served meanwhile."""
    out = run("""
        pool = IOPool(8, 2, 20)
        stalled = [gevent.spawn(pool.call, "slow", stuck) for _ in range(2)]
        gevent.sleep(1.3)
        value, seconds = outcome(pool.call, "slow", stuck)
        print(value, seconds < 0.2)
        print(*outcome(pool.call, "other", lambda: "served"))
        release.set()
        print([g.get() for g in stalled] == ["done", "done"], pool.in_flight())
    """)
    assert out[0:2] == ["StorageBusyError", "True"]
    assert out[2] == "served"
    assert float(out[3]) < 0.5
    assert out[4:] == ["True", "0"]


def test_a_busy_file_that_is_not_stuck_makes_its_caller_wait_for_a_thread() -> None:
    out = run("""
        pool = IOPool(8, 1, 20)
        first = gevent.spawn(pool.call, "file", lambda: real_sleep(0.3) or "first")
        gevent.sleep(0.05)
        print(*outcome(pool.call, "file", lambda: "second"), first.get())
    """)
    assert out[0] == "second"
    assert 0.15 < float(out[1]) < 1.0
    assert out[2] == "first"


def test_every_thread_stuck_refuses_new_calls_and_reports_saturation() -> None:
    out = run("""
        pool = IOPool(2, 2, 20)
        stalled = [gevent.spawn(pool.call, f"file{n}", stuck) for n in range(2)]
        gevent.sleep(1.3)
        value, seconds = outcome(pool.call, "third", lambda: "never")
        print(value, seconds < 0.2, pool.saturated_for() > 1.0)
        release.set()
        gevent.joinall(stalled)
        print(pool.saturated_for(), pool.call("third", lambda: "served"))
    """)
    assert out == ["StorageBusyError", "True", "True", "0.0", "served"]


def test_a_call_past_the_timeout_is_abandoned_and_cleaned_up_when_it_returns() -> None:
    """The caller gets StorageTimeoutError after the timeout; the thread stays counted
    until it returns, then ``when_done`` runs and ``discard`` gets the late result."""
    out = run("""
        pool = IOPool(4, 2, 0.5)
        events = []
        value, seconds = outcome(
            pool.call, "file", stuck, "late",
            when_done=lambda: events.append("done"), discard=events.append,
        )
        print(value, 0.4 < seconds < 1.0, pool.in_flight(), events)
        release.set()
        gevent.sleep(0.2)
        print(pool.in_flight(), *events)
    """)
    assert out == ["StorageTimeoutError", "True", "1", "[]", "0", "done", "late"]


def test_without_gevent_calls_run_inline() -> None:
    done: list[int] = []
    pool = IOPool(1, 1, 1.0)
    assert pool.call("key", lambda x: x * 2, 21, when_done=lambda: done.append(1)) == 42
    assert done == [1]


@pytest.mark.parametrize(("threads", "per_key", "timeout"), [(0, 1, 1.0), (1, 0, 1.0), (1, 1, 0)])
def test_a_pool_without_room_is_refused(threads: int, per_key: int, timeout: float) -> None:
    with pytest.raises(ValueError, match="invalid pool"):
        IOPool(threads, per_key, timeout)
