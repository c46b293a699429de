"""``GET``/``HEAD /files/<path>``: a file as planned by the core, or a folder's listing.

Views only translate: request -> Conditions/Policy, catalog -> Representation,
Plan -> Response. Every HTTP decision is made in :mod:`service.sansio`.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify, request

from config import Settings
from service.catalog import Catalog
from service.errors import IsFolderError
from service.links import entry_signer, require_signature
from service.listing import folder_document
from service.responses import file_response
from service.sansio import Conditions, Policy, plan_response

bp = Blueprint("files", __name__)
bp.before_request(require_signature)  # signed links: checked before the catalog is asked
_METHODS = {"methods": ["GET", "HEAD"], "provide_automatic_options": False}


@bp.route("/files", **_METHODS)
def files_root() -> Response:
    """``/files`` is the root folder without its slash: the same 301 as any folder."""
    raise IsFolderError


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
        return file_response(opened, plan, current_app.extensions["settings"], request.environ)
    except BaseException:
        opened.close()
        raise


def _listing(catalog: Catalog, name: str) -> Response:
    url_prefix = request.script_root + request.path
    document = folder_document(url_prefix, catalog.list_folder(name), entry_signer(name))
    response = jsonify(document)
    response.headers["Cache-Control"] = "no-cache"
    return response


def _conditions() -> Conditions:
    environ = request.environ  # what request.headers reads, without its per-key work
    return Conditions(
        range=environ.get("HTTP_RANGE"),
        if_range=environ.get("HTTP_IF_RANGE"),
        if_match=environ.get("HTTP_IF_MATCH"),
        if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
        if_modified_since=environ.get("HTTP_IF_MODIFIED_SINCE"),
        if_unmodified_since=environ.get("HTTP_IF_UNMODIFIED_SINCE"),
    )


def _policy() -> Policy:
    settings: Settings = current_app.extensions["settings"]
    inline = settings.inline or (
        bool(request.environ.get("QUERY_STRING"))  # most requests have no query to parse
        and request.args.get("inline") in ("1", "true")
    )
    return Policy(settings.max_ranges, settings.cache_control, inline)
