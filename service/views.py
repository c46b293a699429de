"""``GET``/``HEAD /files/<path>``: a file as planned by the core, or a folder's listing.

Views only translate: request -> Conditions/Policy, catalog -> Representation,
Plan -> Response. Every HTTP decision is made in :mod:`service.sansio`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context
from werkzeug.wsgi import ClosingIterator

from config import Settings
from service.catalog import Catalog, OpenFile
from service.errors import status_line
from service.listing import folder_document
from service.sansio import Conditions, Plan, Policy, plan_response
from service.sansio.pacing import RateLimit
from service.streaming import iter_body, limit_send_time, zero_copy_socket

bp = Blueprint("files", __name__)
_METHODS = {"methods": ["GET", "HEAD"], "provide_automatic_options": False}


@bp.route("/files/", defaults={"name": ""}, **_METHODS)
@bp.route("/files/<path:name>", **_METHODS)
def files(name: str) -> Response:
    catalog: Catalog = current_app.extensions["catalog"]
    if name == "" or request.path.endswith("/"):
        return _listing(catalog, name)
    opened = catalog.open_file(name)
    try:
        now = int(time.time())
        plan = plan_response(request.method, _conditions(), opened.representation, _policy(), now)
        return _file_response(opened, plan)
    except BaseException:
        opened.close()
        raise


def _listing(catalog: Catalog, name: str) -> Response:
    document = folder_document(request.script_root + request.path, catalog.list_folder(name))
    response = jsonify(document)
    response.headers["Cache-Control"] = "no-cache"
    return response


def _conditions() -> Conditions:
    headers = request.headers
    return Conditions(
        range=headers.get("Range"),
        if_range=headers.get("If-Range"),
        if_match=headers.get("If-Match"),
        if_none_match=headers.get("If-None-Match"),
        if_modified_since=headers.get("If-Modified-Since"),
        if_unmodified_since=headers.get("If-Unmodified-Since"),
    )


def _policy() -> Policy:
    settings: Settings = current_app.extensions["settings"]
    inline = settings.inline or request.args.get("inline") in ("1", "true")
    return Policy(settings.max_ranges, settings.cache_control, inline)


def _rate_limit() -> RateLimit | None:
    settings: Settings = current_app.extensions["settings"]
    if not settings.rate_limit:
        return None
    return RateLimit(settings.rate_limit, settings.rate_limit_after)


def _file_response(opened: OpenFile, plan: Plan) -> Response:
    """Stream the planned body; a plan without file bytes closes the file at once."""
    body: Iterable[bytes]
    if plan.reads_file:
        settings: Settings = current_app.extensions["settings"]
        limit_send_time(request.environ, settings.send_timeout)
        sock = zero_copy_socket(request.environ, settings.sendfile)
        chunks = iter_body(
            opened, plan.body, settings.chunk_size, settings.yield_interval, sock, _rate_limit()
        )
        # If the server closes the body before the generator ever starts, the generator's
        # own cleanup never runs: close the file then too (closing is idempotent). This
        # must wrap the body itself: with direct_passthrough Werkzeug hands the server
        # ``response.response`` as it is, so ``call_on_close`` callbacks would never run.
        stream = stream_with_context(chunks)
        body = ClosingIterator(stream, opened.close)
    else:
        opened.close()
        body = [s for s in plan.body if isinstance(s, bytes)]  # short text; none for HEAD, 304
    return Response(body, status_line(plan.status), plan.headers, direct_passthrough=True)
