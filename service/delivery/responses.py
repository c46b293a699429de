"""Turns a plan into a Flask response: admission, send limits and the delivery path.

The plan says what to send; this module decides how: whether the client may start
another download, how long it may stall, how fast it may go, and whether the bytes go
through the server or straight to its socket.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from flask import Response, current_app, stream_with_context
from werkzeug.datastructures import Headers

from config import Settings
from service.delivery import admission, offload
from service.delivery.archives import MemberOpener, iter_archive
from service.delivery.streaming import (
    SMALL_BODY,
    iter_body,
    limit_send_time,
    prime,
    uses_sendfile,
    zero_copy_socket,
)
from service.observability.accesslog import KIND_KEY, TRANSFER_KEY
from service.sansio import Plan
from service.sansio.archive import Layout
from service.sansio.pacing import RateLimit
from service.storage.catalog import OpenFile
from service.storage.diskio import DiskIO
from service.storage.faults import TransferFaults
from service.web.errors import RETRY_AFTER, status_line, text_response


class PlannedResponse(Response):
    """A response whose status line and header fields the core planned, sent as planned.

    Werkzeug's own fix-ups on the way out (a copy of every field, a relative Location
    made absolute, a guessed Content-Length, a default Content-Type) have nothing to do
    for a plan: its fields are complete and checked when they are added. HEAD and 304
    plans have no body already.
    """

    default_mimetype = None  # a 304 plan has no Content-Type, and must not get one

    def __init__(
        self, body: Iterable[bytes], status: str, fields: Iterable[tuple[str, str]]
    ) -> None:
        headers = Headers()
        headers._list = list(fields)  # str pairs, checked by the plan: not re-validated
        super().__init__(body, status, headers, direct_passthrough=True)

    def get_wsgi_response(
        self, environ: Mapping[str, Any]
    ) -> tuple[Iterable[bytes], str, list[tuple[str, str]]]:
        body: Iterable[bytes] = self.response  # type: ignore[assignment]  # bytes only
        return body, self.status, self.headers.to_wsgi_list()


class ClosingBody:
    """A streamed body for the server (PEP 3333): iterating it is iterating the
    generator itself, with no layer per chunk; ``close()`` closes the generator, then
    runs ``callbacks`` (each idempotent), even if the generator never started."""

    __slots__ = ("_body", "_callbacks")

    def __init__(self, body: Iterator[bytes], callbacks: tuple[Callable[[], object], ...]) -> None:
        self._body = body
        self._callbacks = callbacks

    def __iter__(self) -> Iterator[bytes]:
        return self._body

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            failure: BaseException | None = None
            for callback in self._callbacks:  # every one, whatever another raised
                try:
                    callback()
                except BaseException as error:
                    failure = failure or error
            if failure is not None:
                raise failure


def file_response(
    opened: OpenFile, plan: Plan, settings: Settings, environ: MutableMapping[str, Any]
) -> Response:
    """Stream the planned body; a plan without file bytes closes the file at once.

    The planned answer's kind goes into the environ for the metrics; a refusal has none.
    """
    if not plan.reads_file:
        environ[KIND_KEY] = plan.kind
        opened.close()
        body = [s for s in plan.body if isinstance(s, bytes)]  # short text; none for HEAD, 304
        status = status_line(plan.status)
        return PlannedResponse(body, status, plan.headers)
    ticket = _admit(settings, environ)
    if ticket is None:
        opened.close()
        return _too_many_downloads()
    environ[KIND_KEY] = plan.kind
    if settings.offload == "x-accel":
        accel = offload.accel_response(opened, plan, settings, environ.get(TRANSFER_KEY))
        if accel is not None:  # nginx sends the bytes; its post_action frees the slot
            opened.close()
            return accel
        plan = offload.streamed(plan)
    extensions = current_app.extensions
    disk: DiskIO = extensions["disk"]
    sock = zero_copy_socket(environ, settings.sendfile)
    zero_copy = uses_sendfile(opened, plan.body, sock, disk)
    limit = _rate_limit(settings)
    try:
        primed = prime(opened, plan.body, settings.chunk_size, disk, zero_copy, limit)
    except BaseException:
        ticket.release()
        opened.close()
        raise
    restore_timeout = limit_send_time(environ, settings.send_timeout)
    transfer = environ.get(TRANSFER_KEY)
    catalog = extensions["catalog"]
    path = catalog.relative_path(opened.path) or opened.representation.name
    chunks = iter_body(
        opened,
        plan.body,
        settings.chunk_size,
        settings.yield_interval,
        sock if zero_copy else None,
        limit,
        TransferFaults(transfer, path, opened.representation.size),
        disk=disk,
        primed=primed,
        abort=_connection_closer(environ),
    )
    # If the server closes the body before the generator ever starts, the generator's own
    # cleanup never runs: close the file and free the slot then too (all idempotent).
    # This must wrap the body itself: with direct_passthrough Werkzeug hands the server
    # ``response.response`` as it is, so ``call_on_close`` callbacks would never run.
    body_iter = ClosingBody(
        stream_with_context(chunks), (opened.close, ticket.release, restore_timeout)
    )
    return PlannedResponse(body_iter, status_line(plan.status), plan.headers)


def archive_response(
    layout: Layout,
    plan: Plan,
    opener: MemberOpener,
    settings: Settings,
    environ: MutableMapping[str, Any],
    path: str,
) -> Response:
    """Stream an archive's planned body (:mod:`service.delivery.archives`): a download
    like a file's, one admission slot for the whole archive, never offloaded (nginx
    holds no file with these bytes)."""
    if not plan.reads_file:
        environ[KIND_KEY] = plan.kind
        body = [s for s in plan.body if isinstance(s, bytes)]
        return PlannedResponse(body, status_line(plan.status), plan.headers)
    ticket = _admit(settings, environ)
    if ticket is None:
        return _too_many_downloads()
    environ[KIND_KEY] = plan.kind
    headers = plan.headers
    if settings.offload == "x-accel":
        headers = offload.streamed(plan).headers
    disk: DiskIO = current_app.extensions["disk"]
    sock = zero_copy_socket(environ, settings.sendfile)
    restore_timeout = limit_send_time(environ, settings.send_timeout)
    chunks = iter_archive(
        layout,
        plan.body,
        opener,
        disk,
        settings.chunk_size,
        settings.yield_interval,
        sock if sock is not None and _file_bytes(plan) > SMALL_BODY else None,
        _rate_limit(settings),
        TransferFaults(environ.get(TRANSFER_KEY), path, layout.length),
        _connection_closer(environ),
    )
    body_iter = ClosingBody(stream_with_context(chunks), (ticket.release, restore_timeout))
    return PlannedResponse(body_iter, status_line(plan.status), headers)


def _file_bytes(plan: Plan) -> int:
    return sum(segment.length for segment in plan.body if not isinstance(segment, bytes))


def _connection_closer(environ: Mapping[str, Any]) -> Callable[[], bool]:
    """Ends the client connection under gunicorn (True), so that a body cut short by its
    storage never leaves a keep-alive connection expecting more; the server then reads
    EOF and closes. False elsewhere: the body's error then goes to the server."""
    sock = environ.get("gunicorn.socket")

    def close() -> bool:
        if not isinstance(sock, socket.socket):
            return False
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return True

    return close


def _admit(settings: Settings, environ: Mapping[str, Any]) -> admission.Ticket | None:
    if not settings.max_downloads_per_client:
        return admission.Ticket(lambda: None)
    client = str(environ.get("REMOTE_ADDR") or "")
    return admission.table().admit(client, settings.max_downloads_per_client)


def _too_many_downloads() -> Response:
    response = text_response(429, "Too Many Requests: this client has too many downloads")
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


def _rate_limit(settings: Settings) -> RateLimit | None:
    if not settings.rate_limit:
        return None
    return RateLimit(settings.rate_limit, settings.rate_limit_after)
