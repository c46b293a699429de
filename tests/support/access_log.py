"""The access log's lines as an in-process test sees them: the app writes them to
stdout, which pytest's ``capsys`` captures."""

from __future__ import annotations

import json
from typing import Any

import pytest


class AccessLines:
    """Every JSON line written to stdout since the test began, parsed, in order."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self._seen: list[dict[str, Any]] = []

    @property
    def lines(self) -> list[dict[str, Any]]:
        out = self._capsys.readouterr().out
        self._seen += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return list(self._seen)
