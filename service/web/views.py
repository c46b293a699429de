"""``GET``/``HEAD /files/<path>``: a file as planned by the core, or a folder's listing.

Views only translate: request -> Conditions/Policy, catalog -> Representation,
Plan -> Response. Every HTTP decision is made in :mod:`service.sansio`.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from config import Settings
from service.delivery.responses import file_response
from service.digests import entry_path, with_digest
from service.folders import archives, browse
from service.folders.checksums import checksum_listing
from service.folders.listing import KnownDigest, archive_urls, folder_document
from service.observability.accesslog import KIND_KEY, TRANSFER_KEY
from service.sansio import Conditions, Policy, plan_response
from service.sansio.plan import Headers
from service.storage import faults
from service.storage.access import Storage
from service.web import metalinks
from service.web.errors import IsFolderError
from service.web.links import FILES_BLUEPRINT, archive_format, entry_signer

bp = Blueprint(FILES_BLUEPRINT, __name__)  # signed links: service.web.links.install
# OPTIONS is answered by service.web.cors before a view runs; listed, so a 405 names it.
_METHODS = {"methods": ["GET", "HEAD", "OPTIONS"], "provide_automatic_options": False}


@bp.route("/files", **_METHODS)
def files_root() -> Response:
    """``/files`` is the root folder without its slash: the same 301 as any folder."""
    raise IsFolderError


@bp.route("/", defaults={"name": ""}, endpoint="root", **_METHODS)
@bp.route("/files/", defaults={"name": ""}, **_METHODS)
@bp.route("/files/<path:name>", **_METHODS)
def files(name: str) -> Response:
    extensions = current_app.extensions  # each proxy lookup costs: once per request
    storage: Storage = extensions["storage"]
    environ = request.environ
    if name == "" or environ["PATH_INFO"].endswith("/"):
        kind = archive_format(environ, request.args)
        if kind is not None:
            return archives.respond(storage, name, kind, _conditions(environ))
        return _listing(storage, name)
    if environ.get("QUERY_STRING") and metalinks.wanted(request.args):  # args parsed lazily
        return metalinks.respond(storage, name, _conditions(environ))
    opened = storage.open_file(name)
    try:
        now = int(time.time())
        settings: Settings = extensions["settings"]
        rep = with_digest(extensions["digests"], opened.representation, name)
        links = metalinks.file_links(settings, extensions["digests"], name, rep, environ)
        conditions, policy = _conditions(environ), _policy(settings, environ, links)
        method = environ["REQUEST_METHOD"].upper()  # as Werkzeug routed it: "get" is GET
        plan = plan_response(method, conditions, rep, policy, now)
        return file_response(opened, plan, settings, environ)
    except BaseException:
        opened.close()
        raise


def _listing(storage: Storage, name: str) -> Response:
    request.environ[KIND_KEY] = "listing"
    entries = storage.list_folder(name)
    faults.entry_errors(name, entries, request.environ.get(TRANSFER_KEY))
    if request.args.get("format") == "sha256":
        return checksum_listing(current_app.extensions["digests"], name, entries)
    url_prefix = url_for("files.files", name=name)  # also for "/": entries are below /files/
    sign = entry_signer(name)
    settings: Settings = current_app.extensions["settings"]
    document = folder_document(
        url_prefix,
        entries,
        sign,
        _known_digests(name),
        settings.etag == "digest",
    )
    kinds = archives.available(settings, current_app.extensions["digests"])
    if kinds:
        document["archives"] = archive_urls(url_prefix, kinds, sign)
    if browse.wants_html(request):
        checksums = current_app.extensions["digests"] is not None
        response = browse.page(document, request, signed=sign is not None, checksums=checksums)
    else:
        response = jsonify(document)
    response.headers["Cache-Control"] = "no-cache"
    response.vary.add("Accept")  # RFC 9110 §12.5.5: the same URL is HTML or JSON
    return response


def _known_digests(folder: str) -> KnownDigest | None:
    """Digests already known for entries of ``folder``, looked up without queueing."""
    store = current_app.extensions["digests"]
    if store is None:
        return None
    return lambda name, size, mtime_ns: store.peek(entry_path(folder, name), size, mtime_ns)


def _conditions(environ: dict[str, Any]) -> Conditions:
    # What request.headers reads, without its per-key work.
    return Conditions(
        range=environ.get("HTTP_RANGE"),
        if_range=environ.get("HTTP_IF_RANGE"),
        if_match=environ.get("HTTP_IF_MATCH"),
        if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
        if_modified_since=environ.get("HTTP_IF_MODIFIED_SINCE"),
        if_unmodified_since=environ.get("HTTP_IF_UNMODIFIED_SINCE"),
        want_digest=environ.get("HTTP_WANT_DIGEST"),
        want_repr_digest=environ.get("HTTP_WANT_REPR_DIGEST"),
    )


def _policy(settings: Settings, environ: dict[str, Any], links: Headers) -> Policy:
    inline = settings.inline or (
        bool(environ.get("QUERY_STRING"))  # most requests have no query to parse
        and request.args.get("inline") in ("1", "true")
    )
    digest_etag = settings.etag == "digest"
    return Policy(settings.max_ranges, settings.cache_control, inline, digest_etag, links)
