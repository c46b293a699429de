"""The pins of a pip-compile lock (``requirements.lock``, ``requirements-dev.lock``)."""

from __future__ import annotations

import re
from pathlib import Path

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def normal(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """``{name: version}``; raises if a pin has no ``--hash`` (the lock must check every
    file it installs)."""
    found: dict[str, str] = {}
    current: str | None = None
    hashed: set[str] = set()
    for line in path.read_text().splitlines():
        pin = _PIN.match(line)
        if pin is not None:
            current = normal(pin.group(1))
            found[current] = pin.group(2)
        elif current is not None and line.strip().startswith("--hash=sha256:"):
            hashed.add(current)
    unhashed = sorted(set(found) - hashed)
    if unhashed:
        raise AssertionError(f"{path.name}: pinned without a hash: {unhashed}")
    return found
