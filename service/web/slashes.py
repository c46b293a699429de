"""Repeated slashes in the path merged into one, as nginx's ``merge_slashes`` (on by
default) and Apache's file mapping do: ``/files//a.txt`` is ``/files/a.txt``.

Clients that join a folder URL ending in ``/`` with ``/`` and a name ask for such paths
(GDAL's ``/vsicurl/`` does, for every entry of a listing). An empty segment names
nothing here (RFC 3986 §3.3 allows one; no file or folder is called ""), so merging
reaches no other file and climbs nowhere: ``..`` is still a segment of its own, and
refused. Every layer after this one (routing, signed links, the catalog, the digests)
sees the one spelling; the access log keeps the target as it was sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_REPEATED = re.compile("//+")


class MergeSlashes:
    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if "//" in path:  # rare: one C scan for every other request
            environ["PATH_INFO"] = _REPEATED.sub("/", path)
        return self.app(environ, start_response)


def install(app: Flask) -> None:
    app.wsgi_app = MergeSlashes(app.wsgi_app)  # type: ignore[method-assign]
