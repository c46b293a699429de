"""A streaming download service: files over HTTP with exact RFC 9110 range and
conditional semantics, for gunicorn with gevent workers."""

from __future__ import annotations

from service.app import create_app

__all__ = ["create_app"]
