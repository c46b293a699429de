"""The service's Flask class: Flask without the per-request work nobody asked for.

The request lifecycle is Flask's own (contexts, before/after/teardown functions, error
handlers, ``stream_with_context``), with the costs taken out of every request that
Flask pays whether or not anything uses them (about a sixth of a small range's calls):

- ``stream_with_context`` pushes the request's context a second time when the body
  starts, and Flask's ``RequestContext.push`` matches the URL on every push. The request
  and its URL are the same, so the second match is skipped.
- Flask sends its signals (``request_started``, ``appcontext_pushed``, ...) on every
  push, pop and dispatch, each a call into blinker that finds no receiver. They are sent
  here only while a receiver is connected, so connecting one still works.
- Teardown runs only when a teardown function or receiver is registered.
- The service keeps no session: every request shares one null session instead of
  asking the cookie interface for one and making a fresh null session.
- ``ensure_sync`` (is this view a coroutine?) is answered once per function.
- The before- and after-request passes (each a walk over the request's blueprints) are
  skipped while no such function is registered anywhere; the signed-link gate is one
  only while signing is on (service.web.links).
- Routing is Werkzeug's, remembered: how a request's host, scheme and script root bind
  the URL map is worked out once per distinct set of those fields, and a URL that
  matched a rule matches it again without the matcher (the hot files of a range reader
  repeat). Both memos are pure functions of what they are keyed by, bounded, and only
  hold successes: a redirect, 404 or 405 is worked out anew every time.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.ctx import AppContext, RequestContext, _sentinel
from flask.globals import _cv_app, _cv_request
from flask.sessions import NullSession, SessionInterface, SessionMixin
from flask.signals import (
    appcontext_popped,
    appcontext_pushed,
    appcontext_tearing_down,
    request_finished,
    request_started,
    request_tearing_down,
)
from flask.wrappers import Request, Response
from werkzeug.routing import MapAdapter, Rule

#: Entries each routing memo holds before it starts over (a path can be 4 KiB long).
ROUTE_MEMO_SIZE = 256
#: The fields of the environ :meth:`werkzeug.routing.Map.bind_to_environ` binds by,
#: besides the path, method and query of each request.
_BINDING_FIELDS = (
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "SCRIPT_NAME",
    "wsgi.url_scheme",
    "HTTP_CONNECTION",
    "HTTP_UPGRADE",
)


class _MatchOnce(RequestContext):
    """Matches its request once, and a URL matched before from memory."""

    app: DownloadFlask

    def match_request(self) -> None:
        request = self.request
        if request.url_rule is not None or request.routing_exception is not None:
            return
        adapter = self.url_adapter
        if adapter is None:
            super().match_request()
            return
        key = (
            adapter.server_name,
            adapter.script_name,
            adapter.subdomain,
            adapter.url_scheme,
            adapter.path_info,
            adapter.default_method,
        )
        matches = self.app._matches
        known = matches.get(key)
        if known is None:
            super().match_request()
            if request.url_rule is None:
                return  # routing_exception: not remembered
            known = (request.url_rule, dict(request.view_args or {}))
            _remember(matches, key, known)
            return
        request.url_rule, request.view_args = known[0], dict(known[1])  # a view may edit its copy


class _QuietAppContext(AppContext):
    """An app context that sends ``appcontext_pushed``/``popped`` only when heard."""

    def push(self) -> None:
        if appcontext_pushed.receivers:
            super().push()
        else:
            self._cv_tokens.append(_cv_app.set(self))

    def pop(self, exc: BaseException | None = _sentinel) -> None:  # type: ignore[assignment]
        if appcontext_popped.receivers:
            super().pop(exc)
            return
        try:
            if len(self._cv_tokens) == 1:
                self.app.do_teardown_appcontext(sys.exc_info()[1] if exc is _sentinel else exc)
        finally:
            current = _cv_app.get()
            _cv_app.reset(self._cv_tokens.pop())
        if current is not self:
            raise AssertionError(f"Popped wrong app context. ({current!r} instead of {self!r})")


class _NoSessions(SessionInterface):
    """No cookie is read or written: one shared null session for every request (it
    refuses writes, as Flask's own does without a secret key)."""

    _null = NullSession()

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        return self._null

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None

    def is_null_session(self, obj: object) -> bool:
        return obj is self._null


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= ROUTE_MEMO_SIZE:
        memo.clear()  # rare, and cheaper than ordering entries on every request
    memo[key] = value


def _wsgi_string(value: str | None) -> str | None:
    """PEP 3333's latin-1 environ string as the text Werkzeug routes by (its own rule)."""
    return None if value is None else value.encode("latin1").decode(errors="replace")


class DownloadFlask(Flask):
    session_interface = _NoSessions()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._synced: dict[Callable[..., Any], Callable[..., Any]] = {}
        #: binding fields -> (request.host, server name, script name, subdomain, scheme)
        self._bindings: dict[tuple[Any, ...], tuple[str, str, str, str | None, str]] = {}
        #: (binding, path, method) -> (rule, view args) of a successful match
        self._matches: dict[tuple[Any, ...], tuple[Rule, dict[str, Any]]] = {}

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        """Flask's adapter for ``request``, bound from memory when a request with the
        same binding fields came before (:data:`_BINDING_FIELDS`)."""
        if request is None:
            return super().create_url_adapter(request)
        environ = request.environ
        key = tuple(map(environ.get, _BINDING_FIELDS))
        bound = self._bindings.get(key)
        if bound is None:
            adapter = super().create_url_adapter(request)  # raises for a bad Host: not kept
            if adapter is not None:
                _remember(
                    self._bindings,
                    key,
                    (
                        request.host,
                        adapter.server_name,
                        adapter.script_name,
                        adapter.subdomain,
                        adapter.url_scheme,
                    ),
                )
            return adapter
        host, server_name, script_name, subdomain, scheme = bound
        request.host = host  # as Flask sets it
        path = _wsgi_string(environ.get("PATH_INFO"))
        return MapAdapter(
            self.url_map,
            server_name,
            script_name,
            subdomain,
            scheme,
            "/" if path is None else path,  # as Map.bind defaults it
            environ["REQUEST_METHOD"],
            _wsgi_string(environ.get("QUERY_STRING")),
        )

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Flask's answer for ``func`` (itself, or an async wrapper), looked up once:
        the views and hooks it is asked about are the same on every request."""
        synced = self._synced.get(func)
        if synced is None:
            synced = self._synced[func] = super().ensure_sync(func)
        return synced

    def request_context(self, environ: dict[str, Any]) -> RequestContext:
        return _MatchOnce(self, environ)

    def app_context(self) -> AppContext:
        return _QuietAppContext(self)

    def full_dispatch_request(self) -> Response:
        if request_started.receivers:
            return super().full_dispatch_request()
        self._got_first_request = True
        try:
            rv = self.preprocess_request()
            if rv is None:
                rv = self.dispatch_request()
        except Exception as e:
            rv = self.handle_user_exception(e)
        return self.finalize_request(rv)

    def preprocess_request(self) -> Any:
        if self.url_value_preprocessors or self.before_request_funcs:
            return super().preprocess_request()
        return None

    def process_response(self, response: Response) -> Response:
        ctx = _cv_request.get()
        if (
            self.after_request_funcs
            or ctx._after_request_functions
            or not self.session_interface.is_null_session(ctx.session)
        ):
            return super().process_response(response)
        return response

    def finalize_request(self, rv: Any, from_error_handler: bool = False) -> Response:
        if request_finished.receivers:
            return super().finalize_request(rv, from_error_handler)
        response = self.make_response(rv)
        try:
            response = self.process_response(response)
        except Exception:
            if not from_error_handler:
                raise
            self.logger.exception("Request finalizing failed with an error while handling an error")
        return response

    def do_teardown_request(self, exc: BaseException | None = _sentinel) -> None:  # type: ignore[assignment]
        if self.teardown_request_funcs or request_tearing_down.receivers:
            super().do_teardown_request(exc)

    def do_teardown_appcontext(self, exc: BaseException | None = _sentinel) -> None:  # type: ignore[assignment]
        if self.teardown_appcontext_funcs or appcontext_tearing_down.receivers:
            super().do_teardown_appcontext(exc)
