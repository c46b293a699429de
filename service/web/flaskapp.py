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
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.ctx import AppContext, RequestContext, _sentinel
from flask.globals import _cv_app
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


class _MatchOnce(RequestContext):
    def match_request(self) -> None:
        request = self.request
        if request.url_rule is None and request.routing_exception is None:
            super().match_request()


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


class DownloadFlask(Flask):
    session_interface = _NoSessions()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._synced: dict[Callable[..., Any], Callable[..., Any]] = {}

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
