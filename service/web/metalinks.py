"""``GET``/``HEAD /files/<file>?format=meta4``: the file's Metalink 4 document (RFC 5854).

The document is planned by :mod:`service.sansio.metalink` from the version's facts, its
hashes (the digest pass's, never computed here: ``503`` with ``Retry-After``, and the
version queued, while any is unknown) and its sources, this node's own URL of the file
first. Its answer goes through the same core as a file (:func:`plan_response` over the
document's bytes, with the document's own strong ETag), so conditional requests, HEAD
and ranges behave as for any file. Through a signed link, the document's URL of the
file carries the request's own signature: valid exactly as long as the link that
opened the document, for the same client.

It also gives every file answer its ``Link`` fields (:func:`file_links`): the Metalink
once it can be served, and the mirrors of ``DL_MIRRORS``. A signed link's signature is
carried into each mirror's URL: it covers the path and expiry, not the host, so a mirror
sharing ``DL_SIGNING_KEY`` accepts it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from flask import Response, current_app, request, url_for
from werkzeug.exceptions import BadRequest

from config import Settings
from service.delivery.responses import PlannedResponse
from service.digests import DigestStore, hashing_wait
from service.observability.accesslog import KIND_KEY
from service.sansio import Conditions, Policy, Representation, Span, plan_response
from service.sansio.metalink import document, document_etag
from service.sansio.mirrors import link_fields, sources
from service.sansio.plan import Headers
from service.sansio.signing import EXPIRES, SIGNATURE
from service.storage.access import Storage
from service.web.errors import DigestsPendingError, NotFoundError, status_line

FORMAT = "meta4"
KIND = "metalink"


def wanted(args: Mapping[str, str]) -> bool:
    """Whether a request for a file asks for its Metalink (``?format=meta4``)."""
    return args.get("format") == FORMAT


def respond(storage: Storage, name: str, conditions: Conditions) -> Response:
    """The answer to a GET or HEAD of the Metalink of the file at ``name`` (its URL path
    below ``/files/``)."""
    settings: Settings = current_app.extensions["settings"]
    digests: DigestStore | None = current_app.extensions["digests"]
    if digests is None:
        raise NotFoundError  # no digest pass: no hashes to describe the file with
    opened = storage.open_file(name)
    facts = opened.representation
    opened.close()  # the facts are all it takes: the document never reads the file
    sha256 = digests.lookup(name, facts.size, facts.mtime_ns)
    pieces = digests.pieces(name, facts.size, facts.mtime_ns)
    if sha256 is None or pieces is None:
        raise DigestsPendingError(hashing_wait(facts.size))
    text = document(
        facts.name,
        facts.size,
        facts.mtime_ns // 1_000_000_000,
        sha256,
        [pieces[at : at + 32] for at in range(0, len(pieces), 32)],
        digests.piece_size,
        sources(_own_url(name), settings.mirrors, quote(name), _signature_query()),
    )
    rep = Representation(
        facts.name + "." + FORMAT, len(text), facts.mtime_ns, tag=document_etag(text)
    )
    policy = Policy(settings.max_ranges, settings.cache_control)
    method = request.environ["REQUEST_METHOD"].upper()
    plan = plan_response(method, conditions, rep, policy, int(time.time()))
    request.environ[KIND_KEY] = KIND
    body = [text[s.start : s.stop] if isinstance(s, Span) else s for s in plan.body]
    return PlannedResponse(body, status_line(plan.status), plan.headers)


def file_links(
    settings: Settings,
    digests: DigestStore | None,
    name: str,
    rep: Representation,
    environ: dict[str, Any],
) -> Headers:
    """The ``Link`` fields of an answer for the file at ``name``, whose version
    ``rep`` carries its SHA-256 when known: its Metalink once every hash it lists is
    known, and the mirrors."""
    describable = (
        digests is not None
        and rep.sha256 is not None
        and digests.has_pieces(name, rep.size, rep.mtime_ns)
    )
    if not describable and not settings.mirrors:
        return ()
    path = quote(name)
    query = _signature_query() if environ.get("QUERY_STRING") else ""
    metalink = None
    if describable:  # path-absolute: right behind any Host, and below a SCRIPT_NAME
        meta4 = f"{query}&format={FORMAT}" if query else f"format={FORMAT}"
        script = environ.get("SCRIPT_NAME")
        metalink = f"{quote(script) if script else ''}/files/{path}?{meta4}"
    return link_fields(metalink, settings.mirrors, path, query, settings.mirror_links)


def _signature_query() -> str:
    """``expires=...&signature=...`` of a signed link, as received; else empty."""
    args = request.args
    expires, signature = args.get(EXPIRES), args.get(SIGNATURE)
    if expires is None or signature is None:
        return ""
    return urlencode(((EXPIRES, expires), (SIGNATURE, signature)))


def _own_url(name: str) -> str:
    """This node's absolute URL of the file, with the request's signature if any."""
    try:
        url: str = url_for("files.files", name=name, _external=True)
    except ValueError:  # a port out of range: RFC 9112 §3.2, an invalid Host is a 400
        raise BadRequest from None
    kept = [(key, value) for key, value in request.args.items(multi=True) if key != "format"]
    return f"{url}?{urlencode(kept)}" if kept else url
