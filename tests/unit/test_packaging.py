"""The image installs what the package needs: the Dockerfile's dependency layer names
every runtime dependency of pyproject.toml, and every pin it relies on is locked."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    """``gunicorn[gevent]>=27`` -> ``gunicorn``, normalized as pip does."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name is not None, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


def test_the_image_installs_every_runtime_dependency() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(item) for item in project["dependencies"]}
    dockerfile = (REPO / "Dockerfile").read_text()
    layer = re.search(r'pip install -c requirements\.lock ((?:"[^"]+"\s*\\?\s*)+)', dockerfile)
    assert layer is not None, "the dependency layer's pip install line moved"
    installed = {_name(item) for item in re.findall(r'"([^"]+)"', layer.group(1))}
    assert wanted <= installed, f"missing from the image: {sorted(wanted - installed)}"


def test_every_runtime_dependency_is_locked() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    locked = {
        _name(line)
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    }
    missing = {_name(item) for item in project["dependencies"]} - locked
    assert not missing, f"not pinned in requirements.lock: {sorted(missing)}"
