"""The image, built once per session from the Dockerfile as it is, and removed after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.container.engine import build, engine, image_size, podman


@dataclass(frozen=True)
class Image:
    tag: str
    build_seconds: float
    size: int


@pytest.fixture(scope="session")
def image() -> Iterator[Image]:
    podman()
    tag = f"localhost/download-service:test-{uuid.uuid4().hex[:8]}"
    seconds = build(tag)
    try:
        yield Image(tag, seconds, image_size(tag))
    finally:
        engine("rmi", "--force", tag, check=False)
