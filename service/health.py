"""Liveness: ``GET /healthz`` answers 200 while the worker can serve from the data root."""

from __future__ import annotations

import os

from flask import Blueprint, Response, current_app

from service.errors import text_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    try:
        os.stat(current_app.extensions["catalog"].root)
    except OSError:
        return text_response(503, "data root unavailable")
    response = text_response(200, "ok")
    response.headers["Cache-Control"] = "no-store"
    return response
