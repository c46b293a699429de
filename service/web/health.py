"""Liveness: ``GET /healthz`` answers 200 while the worker can make progress on its data
root, else 503 with the reason (:class:`service.storage.access.RootProbe` has the rule)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from service.web.errors import text_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    problem = current_app.extensions["root_probe"].problem()
    response = text_response(503, problem) if problem else text_response(200, "ok")
    response.headers["Cache-Control"] = "no-store"
    return response
