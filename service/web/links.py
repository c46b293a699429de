"""Signed links at the Flask edge: the gate in front of every ``/files/`` request, and the
signatures a listing gives its entries.

The MAC and its rules live in :mod:`service.sansio.signing`; this module only reads the
request (the view's ``name``, the query, the peer address), the settings and the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, current_app, request

from config import Settings
from service.sansio.archive import FORMATS, signed_path
from service.sansio.signing import EXPIRES, SIGNATURE, Signer, Verdict
from service.web.errors import text_response

#: The blueprint of the download routes (service.web.views), which signed links guard.
FILES_BLUEPRINT = "files"


def make_signer(keys: tuple[str, ...]) -> Signer | None:
    """A signer for ``DL_SIGNING_KEY``'s keys, or None while it is unset (signing off)."""
    if not keys:
        return None
    return Signer(tuple(key.encode("ascii") for key in keys))


def install(app: Flask) -> None:
    """With signing on, :func:`require_signature` guards every request to the files
    blueprint; with it off nothing is registered, so no request pays for the gate."""
    if app.extensions["signer"] is not None:
        app.before_request(require_signature)


def require_signature() -> Response | None:
    """Before a request of the files blueprint: 403 unless the link is signed, intact
    and unexpired. It runs before the view touches the catalog, so a missing file, a
    hidden one and an existing one all get the same answer."""
    signer: Signer | None = current_app.extensions["signer"]
    if signer is None or request.blueprint != FILES_BLUEPRINT:
        return None
    # The path exactly as the view receives it: decoded, so "%C3%BC" and "ü" are one name.
    name = (request.view_args or {}).get("name")
    if isinstance(name, str):
        args = request.args
        kind = archive_format(request.environ, args)
        path = name if kind is None else signed_path(name, kind)
        verdict = signer.verify(
            path, args.get(EXPIRES), args.get(SIGNATURE), now=int(time.time()), client=_client()
        )
        if verdict is Verdict.VALID:
            return None
    return text_response(403, "Forbidden")


def archive_format(environ: Mapping[str, Any], args: Mapping[str, str]) -> str | None:
    """The archive a request asks for (``?format=tar`` on a folder URL), or None."""
    if not environ.get("QUERY_STRING"):
        return None  # most requests have no query to parse
    path = environ.get("PATH_INFO", "")
    if not (path.endswith("/") or path in ("", "/files")):
        return None  # a file's URL: ?format= means nothing there
    chosen = args.get("format")
    return chosen if chosen in FORMATS else None


def entry_signer(folder: str) -> Callable[[str], str] | None:
    """For the listing of ``folder`` (a verified request): a function from an entry's
    path below it to that entry's query, valid exactly as long as the listing's own link
    and for the same client. None while signing is off."""
    signer: Signer | None = current_app.extensions["signer"]
    if signer is None:
        return None
    expires = int(request.args[EXPIRES])  # require_signature has checked its form
    client = _client()
    return lambda entry: signer.query(folder + entry, expires, client)


def _client() -> str | None:
    """The peer address when links are bound to it (``DL_SIGNING_BIND_CLIENT``), else None.

    This is the TCP peer: behind a reverse proxy it is the proxy's address.
    """
    settings: Settings = current_app.extensions["settings"]
    if not settings.signing_bind_client:
        return None
    return request.remote_addr or ""
