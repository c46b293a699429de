"""Every process the benchmark starts: one process group each, all stopped at the end.

Nothing here kills by name: only the process groups this run created (and recorded) are
signalled, and :meth:`Processes.leftovers` checks them with ``pgrep -g`` at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO


class Processes:
    """Starts processes in their own session (so a group signal reaches their children)."""

    def __init__(self) -> None:
        self._live: dict[int, subprocess.Popen[bytes]] = {}  # pgid (= leader pid) -> leader
        self._all_groups: set[int] = set()

    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdout: int | IO[bytes] | None = subprocess.DEVNULL,
        stderr: int | IO[bytes] | None = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            list(argv),
            env=None if env is None else dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        self._live[process.pid] = process
        self._all_groups.add(process.pid)
        return process

    def run(
        self,
        argv: Sequence[str],
        timeout: float,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> tuple[int, str, str]:
        """Run to completion (killed after ``timeout`` s); returns (code, stdout, stderr)."""
        process = self.spawn(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(process, signal.SIGKILL)
            out, err = process.communicate()
            return -9, out.decode(errors="replace"), err.decode(errors="replace") + "\n(timed out)"
        finally:
            self._sweep(process.pid)
        return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def stop(
        self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 5.0
    ) -> None:
        """Signal the whole group, wait up to ``grace`` s, then SIGKILL what is left."""
        if process.poll() is None:
            _killpg(process.pid, sig)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self._sweep(process.pid)

    def stop_all(self) -> None:
        for process in list(self._live.values()):
            self.stop(process, signal.SIGKILL)

    def leftovers(self) -> list[str]:
        """``pgrep`` lines for any process still alive in a group this run created."""
        if not self._all_groups:
            return []
        groups = ",".join(str(pgid) for pgid in sorted(self._all_groups))
        found = subprocess.run(
            ["pgrep", "-a", "-g", groups], capture_output=True, text=True, check=False
        )
        return [line for line in found.stdout.splitlines() if line.strip() and not _zombie(line)]

    def _sweep(self, pgid: int) -> None:
        """The leader is gone; SIGKILL any member it left behind (nginx workers, say)."""
        deadline = time.monotonic() + 5
        while _group_alive(pgid) and time.monotonic() < deadline:
            _killpg(pgid, signal.SIGKILL)
            time.sleep(0.05)
        if not _group_alive(pgid):
            self._live.pop(pgid, None)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader still counts for kill(0); look at the states instead.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _zombie(pgrep_line: str) -> bool:
    """A process that has exited and waits to be reaped by its (new) parent: not running.
    Where the sandbox's PID 1 does not reap orphans, a killed peer's child stays so."""
    try:
        with open(f"/proc/{pgrep_line.split()[0]}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True  # gone meanwhile
