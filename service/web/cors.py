"""``OPTIONS`` and CORS on the file routes (``/``, ``/files``, ``/files/...``), as WSGI
middleware inside the access log: what the fields say is decided by
:mod:`service.sansio.cors`.

- ``OPTIONS`` is answered here, before signatures, admission and the catalog are asked:
  ``204`` with ``Allow: GET, HEAD, OPTIONS`` (RFC 9110 §9.3.7), plus, for a preflight
  from an allowed origin, the ``Access-Control-Allow-*`` fields. A preflight carries no
  credentials and learns nothing about the file, so it needs no signature.
- With ``DL_CORS_ORIGINS`` set, every other answer on these routes (files, listings,
  errors, 304, 412, 416, 429) gets the policy's fields, so a page can read why a request
  failed. Without it, answers pass through untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from service.sansio.cors import CorsPolicy

ALLOW = "GET, HEAD, OPTIONS"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def covered(path: str) -> bool:
    """The routes that serve the tree: the listing at ``/`` and everything below /files."""
    return path == "/" or path == "/files" or path.startswith("/files/")


class Cors:
    def __init__(self, app: WSGIApp, policy: CorsPolicy | None) -> None:
        self.app = app
        self.policy = policy

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        # Upper-cased as Werkzeug routes it, so no spelling of OPTIONS reaches a view.
        if environ.get("REQUEST_METHOD", "").upper() == "OPTIONS" and covered(path):
            return self._options(environ, start_response)
        if self.policy is None or not covered(path):
            return self.app(environ, start_response)
        extra = self.policy.response_fields(environ.get("HTTP_ORIGIN"))
        if not extra:
            return self.app(environ, start_response)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, with_fields(headers, extra), exc_info)

        return self.app(environ, start)

    def _options(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        headers = [("Allow", ALLOW)]
        preflight = "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
        if self.policy is not None and preflight:
            headers = with_fields(headers, self.policy.preflight_fields(environ.get("HTTP_ORIGIN")))
        start_response("204 No Content", headers)
        return []


def with_fields(
    headers: list[tuple[str, str]], extra: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """``headers`` plus ``extra``; a ``Vary`` joins the one already there (one field)."""
    merged = list(headers)
    for name, value in extra:
        if name == "Vary":
            for index, (present, current) in enumerate(merged):
                if present.lower() == "vary":
                    merged[index] = (present, f"{current}, {value}")
                    break
            else:
                merged.append((name, value))
        else:
            merged.append((name, value))
    return merged


def install(app: Any, policy: CorsPolicy | None) -> None:
    app.wsgi_app = Cors(app.wsgi_app, policy)
