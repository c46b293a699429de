"""Reading /proc: CPU seconds, RSS and descriptors of a process, its children, the machine."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """Fields after the command name: index 0 is field 3 (state) of proc(5)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids``, in seconds (a process that is gone raises OSError)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's list)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(found)


def status_kib(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/PID/status, e.g. ``VmRSS`` or ``VmHWM``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_bytes(pid: int) -> int:
    return status_kib(pid, "VmRSS") * 1024


def peak_rss_bytes(pid: int) -> int:
    return status_kib(pid, "VmHWM") * 1024


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def machine() -> dict[str, str | int]:
    """nproc, memory, CPU model and kernel, as BENCHMARKS.md records them."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {
        "nproc": os.cpu_count() or 1,
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def tool_version(argv: list[str]) -> str:
    """First line a tool prints about its version (nginx prints it on stderr)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"
