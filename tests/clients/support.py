"""Helpers for the client tests: subprocesses, hashing, and the server's access log.

The service's JSON access log records every request with its ``Range`` header and the
bytes really delivered, so a test can check what a client actually asked for and
what it got. Each test serves its file under a name of its own (a hard link to the
shared source), so its requests are told apart by path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.server import GunicornServer
from tests.support.tools import require_tool

CLIENT_TIMEOUT = 120.0

_BYTE_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclass(frozen=True, slots=True)
class Access:
    """One access-log line."""

    method: str
    target: str
    version: str
    status: int
    sent: int
    range: str | None
    agent: str
    outcome: str

    @property
    def bounds(self) -> tuple[int, int | None] | None:
        """``(first, last)`` of a single ``bytes=first-[last]`` Range, else None."""
        if self.range is None:
            return None
        match = _BYTE_RANGE.fullmatch(self.range)
        if match is None:
            return None
        first, last = match.groups()
        return int(first), int(last) if last else None

    def __str__(self) -> str:
        return (
            f"{self.method} {self.target} {self.version} range={self.range} -> "
            f"{self.status} ({self.sent} bytes) [{self.agent}]"
        )


def parse_access_log(text: str) -> list[Access]:
    """The service's JSON access-log lines (other log lines are skipped)."""
    accesses = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        accesses.append(
            Access(
                method=record["method"],
                target=record["target"],
                version=record["protocol"],
                status=record["status"],
                sent=record["bytes"],
                range=record["range"],
                agent=record["user_agent"] or "-",
                outcome=record["outcome"],
            )
        )
    return accesses


def show(accesses: Sequence[Access]) -> str:
    return "\n".join(str(access) for access in accesses) or "(no requests)"


@dataclass(frozen=True, slots=True)
class ClientServer:
    """The session's gunicorn server and the big file it serves."""

    server: GunicornServer
    root: Path
    source: Path
    size: int
    sha256: str
    zero_copy: bool

    def publish(self, name: str, source: Path | None = None) -> str:
        """Serve ``source`` (default: the big file) as ``name``; returns its URL."""
        target = self.root / name
        if not target.exists():
            os.link(source or self.source, target)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"{self.server.url}/files/{quote(name)}"

    def accesses(self, name: str) -> list[Access]:
        path = f"/files/{quote(name)}"
        return [a for a in parse_access_log(self.server.log()) if a.target == path]

    def settled_accesses(
        self, name: str, *, minimum: int = 1, quiet: float = 0.5, timeout: float = 15.0
    ) -> list[Access]:
        """The requests for ``name`` once the log has stopped growing.

        gunicorn writes a line when it has finished with a request, which can be a
        moment after the client has exited (aborted connections in particular).
        """
        deadline = time.monotonic() + timeout
        seen = self.accesses(name)
        changed = time.monotonic()
        while time.monotonic() < deadline:
            if len(seen) >= minimum and time.monotonic() - changed >= quiet:
                break
            time.sleep(0.05)
            current = self.accesses(name)
            if len(current) != len(seen):
                seen, changed = current, time.monotonic()
        return seen

    def assert_resumed(self, name: str, out: Path, prefix: int) -> None:
        """``out`` now holds the whole file, completed by a single ``bytes=<prefix>-``
        request that got a 206 and every remaining byte, with no server error."""
        assert out.stat().st_size == self.size
        assert sha256_file(out) == self.sha256
        accesses = self.settled_accesses(name)
        assert [(a.method, a.range, a.status, a.sent, a.outcome) for a in accesses] == [
            ("GET", f"bytes={prefix}-", 206, self.size - prefix, "complete")
        ], show(accesses)
        assert not self.server_errors()

    def server_errors(self) -> list[str]:
        """Log lines from gunicorn's error log at ERROR level or above, and tracebacks."""
        return [
            line
            for line in self.server.log().splitlines()
            if "[ERROR]" in line or "[CRITICAL]" in line or line.startswith("Traceback")
        ]


def describe(result: subprocess.CompletedProcess[bytes], limit: int = 4000) -> str:
    def tail(data: bytes) -> str:
        text = data.decode(errors="replace")
        return text if len(text) <= limit else "...\n" + text[-limit:]

    return (
        f"$ {shlex.join(result.args)}\nexit status {result.returncode}\n"
        f"--- stdout ---\n{tail(result.stdout)}\n--- stderr ---\n{tail(result.stderr)}"
    )


def run(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float = CLIENT_TIMEOUT,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run a client with captured output; fails the test on timeout or (``check``) on error."""
    try:
        result = subprocess.run(
            list(args),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"$ {shlex.join(args)} timed out after {timeout}s\n"
            f"stdout: {exc.stdout!r:.2000}\nstderr: {exc.stderr!r:.2000}"
        )
    if check and result.returncode != 0:
        pytest.fail(describe(result))
    return result


def sha256_file(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def write_prefix(source: Path, target: Path, length: int) -> None:
    """Write the first ``length`` bytes of ``source`` to ``target`` (a partial download)."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        remaining = length
        while remaining:
            copied = os.copy_file_range(src.fileno(), dst.fileno(), remaining)
            if copied == 0:
                raise ValueError(f"{source} is shorter than {length} bytes")
            remaining -= copied
    assert target.stat().st_size == length


def response_headers(dump: Path) -> list[list[tuple[str, str]]]:
    """Parse a ``curl -D`` dump: one list of (lower-case name, value) per response."""
    responses: list[list[tuple[str, str]]] = []
    for line in dump.read_text(encoding="latin-1").splitlines():
        if line.startswith("HTTP/"):
            responses.append([(":status", line.split()[1])])
        elif ":" in line and responses:
            name, _, value = line.partition(":")
            responses[-1].append((name.strip().lower(), value.strip()))
    return responses


def aria2c_command(
    url: str, out_dir: Path, name: str, *, split: int = 8, extra: Sequence[str] = ()
) -> list[str]:
    """aria2c fetching ``url`` into ``out_dir/name`` over ``split`` connections, quietly,
    without a config file, overwriting (never renaming) what is there."""
    return [
        require_tool("aria2c"),
        "--no-conf",
        f"-x{split}",
        f"-s{split}",
        "--min-split-size=1M",
        "--file-allocation=none",
        "--allow-overwrite=true",
        "--auto-file-renaming=false",
        "--console-log-level=warn",
        "--summary-interval=0",
        "--show-console-readout=false",
        *extra,
        "-d",
        str(out_dir),
        "-o",
        name,
        url,
    ]
