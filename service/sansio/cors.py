"""CORS (the Fetch standard, "CORS protocol") for the download routes: which origins may
read an answer from script, and the header fields that say so. Pure: the WSGI glue that
applies it is :mod:`service.web.cors`.

- ``*`` allows every origin. Nothing here is ever credentialed (no cookies, no HTTP
  authentication), so ``Access-Control-Allow-Credentials`` is never sent and ``*`` is
  valid as it stands.
- A list echoes the request's ``Origin`` when it is in the list, and every answer, allowed
  or not, carries ``Vary: Origin``: a shared cache must not hand one origin's answer to
  another (Fetch, "CORS protocol and HTTP caches").
- A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) from an
  allowed origin gets the methods and request headers a reader of byte ranges needs. A
  suffix range, a multi-range and the conditional headers are not CORS-safelisted, so a
  browser asks first; only ``Range: bytes=a-b`` and ``bytes=a-`` go without a preflight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ALLOW_METHODS = "GET, HEAD"
#: Request header fields a page may send (answer to Access-Control-Request-Headers).
ALLOW_HEADERS = (
    "Range",
    "If-Range",
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "Want-Digest",
    "Want-Repr-Digest",
    "X-Request-Id",
)
#: Response header fields script may read besides the CORS-safelisted ones.
EXPOSE_HEADERS = (
    "Content-Range",
    "Content-Length",
    "ETag",
    "Accept-Ranges",
    "Last-Modified",
    "Content-Disposition",
    "Repr-Digest",
    "Digest",
    "Link",
    "Retry-After",
    "X-Request-Id",
)
#: Chromium caps a preflight's cache lifetime at two hours; Firefox at one day.
DEFAULT_MAX_AGE = 7200

_EXPOSE = ", ".join(EXPOSE_HEADERS)
_ALLOW_HEADERS = ", ".join(ALLOW_HEADERS)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 6454 §6.2's serialization: scheme "://" host [ ":" port ], no path, ASCII only.
_ORIGIN = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


class OriginError(ValueError):
    """A configured origin is not one a browser would send."""


def normalize_origin(text: str) -> str:
    """``text`` as browsers serialize it in ``Origin``: lower-case scheme and host, no
    default port. Raises :class:`OriginError` for anything else (a path, a wildcard,
    ``null``, a user, a non-ASCII host: browsers send IDNA, ``xn--``)."""
    found = _ORIGIN.fullmatch(text.removesuffix("/"))
    if found is None:
        raise OriginError(
            f"{text!r} is not an origin (scheme://host[:port], e.g. https://app.example.org)"
        )
    scheme, host, port = found["scheme"].lower(), found["host"].lower(), found["port"]
    if scheme not in _DEFAULT_PORTS:
        raise OriginError(f"{text!r}: only http and https origins can read over CORS")
    if port is not None:
        number = int(port)
        if not 0 < number < 65536:
            raise OriginError(f"{text!r}: port {number} is out of range")
        if number != _DEFAULT_PORTS[scheme]:
            return f"{scheme}://{host}:{number}"
    return f"{scheme}://{host}"


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """``origins``: the allowed origins (normalized), or None for every origin (``*``)."""

    origins: frozenset[str] | None
    max_age: int = DEFAULT_MAX_AGE

    @classmethod
    def parse(cls, raw: str, max_age: int = DEFAULT_MAX_AGE) -> CorsPolicy | None:
        """``DL_CORS_ORIGINS``: empty (no CORS: None), ``*``, or comma-separated origins."""
        items = [item.strip() for item in raw.split(",") if item.strip()]
        if not items:
            return None
        if items == ["*"]:
            return cls(None, max_age)
        if "*" in items:
            raise OriginError("'*' allows every origin: give it alone, not in a list")
        return cls(frozenset(normalize_origin(item) for item in items), max_age)

    def allows(self, origin: str | None) -> bool:
        if origin is None:
            return False
        return self.origins is None or origin in self.origins

    def response_fields(self, origin: str | None) -> list[tuple[str, str]]:
        """Fields for an actual answer (any status) to a request with ``origin``."""
        fields = [] if self.origins is None else [("Vary", "Origin")]
        if self.allows(origin):
            fields.append(("Access-Control-Allow-Origin", self._allowed_value(origin)))
            fields.append(("Access-Control-Expose-Headers", _EXPOSE))
        return fields

    def preflight_fields(self, origin: str | None) -> list[tuple[str, str]]:
        """Fields for the answer to a preflight. Not allowed: no CORS fields, and the
        browser fails the request it asked about."""
        fields = [] if self.origins is None else [("Vary", "Origin")]
        if self.allows(origin):
            fields += [
                ("Access-Control-Allow-Origin", self._allowed_value(origin)),
                ("Access-Control-Allow-Methods", ALLOW_METHODS),
                ("Access-Control-Allow-Headers", _ALLOW_HEADERS),
                ("Access-Control-Max-Age", str(self.max_age)),
            ]
        return fields

    def _allowed_value(self, origin: str | None) -> str:
        return "*" if self.origins is None else str(origin)
