"""The locks: every distribution the image and ``make install`` put in place is pinned,
with hashes, the build backend included; and the project's .venv is exactly the dev lock."""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.lock import normal, pins

REPO = Path(__file__).resolve().parents[2]
PROJECT = "download-service"


def _name(requirement: str) -> str:
    """``gunicorn[gevent]>=27`` -> ``gunicorn``."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name is not None, requirement
    return normal(name.group(0))


def _project() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project


def test_the_image_lock_pins_every_runtime_dependency_and_the_build_backend() -> None:
    locked = pins(REPO / "requirements.lock")
    wanted = {_name(item) for item in _project()["dependencies"]}  # type: ignore[attr-defined]
    assert not wanted - set(locked), f"not pinned: {sorted(wanted - set(locked))}"
    assert "setuptools" in locked  # pyproject's build backend: no unpinned build
    assert not {"pytest", "mypy", "ruff"} & set(locked)  # the image gets no dev tools


def test_the_dev_lock_holds_the_image_lock_at_the_same_versions() -> None:
    runtime, dev = pins(REPO / "requirements.lock"), pins(REPO / "requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime
    extras = _project()["optional-dependencies"]["dev"]  # type: ignore[index]
    missing = {_name(item) for item in extras} - set(dev)
    assert not missing, f"dev tools not pinned: {sorted(missing)}"


def test_the_image_installs_exactly_the_lock() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install --require-hashes --no-deps -r requirements.lock" in dockerfile
    assert "--no-build-isolation ." in dockerfile  # the project built by the locked backend


def test_this_venv_is_exactly_the_dev_lock() -> None:
    """What ``make install`` made: nothing unpinned, nothing drifted, nothing missing."""
    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip(f"not the project's .venv ({sys.prefix})")
    installed = {
        normal(dist.metadata["Name"]): dist.version for dist in importlib.metadata.distributions()
    }
    assert installed.pop(PROJECT) == _project()["version"]
    assert installed == pins(REPO / "requirements-dev.lock")
