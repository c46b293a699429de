"""LineWriter: lines batched per event-loop turn under gevent, and written at exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.server import REPO


def run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_lines_of_one_loop_turn_leave_in_one_write_after_it() -> None:
    done = run(
        """
        from gevent import monkey; monkey.patch_all()
        import gevent, os
        from service.observability import accesslog
        writes = []
        real = os.write
        os.write = lambda fd, data: writes.append(bytes(data)) or real(fd, data)
        log = accesslog.LineWriter()
        log('{"n": 1}'); log('{"n": 2}')
        assert writes == [], writes  # nothing yet: the loop has not turned
        gevent.sleep(0)
        log('{"n": 3}')
        gevent.sleep(0)
        os.write = real
        print(len(writes))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ['{"n": 1}', '{"n": 2}', '{"n": 3}', "2"]


def test_lines_pending_when_the_process_exits_are_written() -> None:
    done = run(
        """
        from gevent import monkey; monkey.patch_all()
        import sys
        from service.observability import accesslog
        log = accesslog.LineWriter()
        log('{"last": true}')
        sys.exit(0)  # the loop never turns again: only the exit hook can write it
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == '{"last": true}\n'
