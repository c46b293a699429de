"""The client's address behind a proxy: ``X-Real-IP``, believed only from a trusted one.

Installed with ``DL_OFFLOAD`` or ``DL_BEHIND_PROXY`` on. When the TCP peer is one of
``DL_TRUSTED_PROXIES`` (or a unix socket, which only local processes can reach),
``REMOTE_ADDR`` becomes the address in ``X-Real-IP``, which deploy/nginx/ and
deploy/haproxy/ set to the client's address, overwriting whatever the client sent. From
any other peer the header is ignored. Every user of the address (download caps,
client-bound signed links, the access log) reads ``REMOTE_ADDR``.

From the same trusted peers, ``X-Forwarded-Proto: https`` (or ``http``) becomes
``wsgi.url_scheme``, so the absolute URLs the browse page shows in its download commands
name the scheme the client used when TLS ends at the proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from config import Settings
from service.sansio.addresses import Network, local_or_within, parse_address

#: The TCP peer, kept in the environ when REMOTE_ADDR is replaced.
PEER_KEY = "download_service.peer"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


#: The schemes a proxy may report; anything else (a list, a typo) is ignored.
SCHEMES = frozenset({"http", "https"})


class TrustedProxy:
    """WSGI middleware: REMOTE_ADDR from X-Real-IP, and the URL scheme from
    X-Forwarded-Proto, when the peer is a trusted proxy."""

    def __init__(self, app: WSGIApp, trusted: Iterable[Network]) -> None:
        self.app = app
        self.networks = tuple(trusted)

    def trusts(self, peer: str) -> bool:
        return local_or_within(peer, self.networks)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        peer = str(environ.get("REMOTE_ADDR") or "")
        environ[PEER_KEY] = peer
        if self.trusts(peer):
            client = parse_address(str(environ.get("HTTP_X_REAL_IP", "")))
            if client is not None:
                environ["REMOTE_ADDR"] = str(client)
            scheme = str(environ.get("HTTP_X_FORWARDED_PROTO", "")).strip().lower()
            if scheme in SCHEMES:
                environ["wsgi.url_scheme"] = scheme
        return self.app(environ, start_response)


def install(app: Flask, settings: Settings) -> None:
    """Make ``REMOTE_ADDR`` the client's address when a trusted proxy names it."""
    proxy = TrustedProxy(app.wsgi_app, settings.trusted_proxies)
    app.extensions["trusted_proxy"] = proxy
    app.wsgi_app = proxy  # type: ignore[method-assign]
