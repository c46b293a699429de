"""A streaming download service: files over HTTP with exact RFC 9110 range and
conditional semantics, for gunicorn with gevent workers.

``create_app`` is imported on first use, so gunicorn's master can import small parts
of the package (``service.delivery.admission``) without loading Flask before the fork.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from service.app import create_app

        return create_app
    raise AttributeError(f"module 'service' has no attribute {name!r}")
