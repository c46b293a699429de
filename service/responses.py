"""Turns a plan into a Flask response: admission, send limits and the delivery path.

The plan says what to send; this module decides how: whether the client may start
another download, how long it may stall, how fast it may go, and whether the bytes go
through the server or straight to its socket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from flask import Response, stream_with_context
from werkzeug.wsgi import ClosingIterator

from config import Settings
from service import admission, offload
from service.accesslog import KIND_KEY, TRANSFER_KEY
from service.catalog import OpenFile
from service.errors import status_line, text_response
from service.sansio import Plan
from service.sansio.pacing import RateLimit
from service.streaming import iter_body, limit_send_time, zero_copy_socket

#: Seconds a refused client is asked to wait; a download slot frees when one ends.
RETRY_AFTER = 5


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
        return Response(body, status_line(plan.status), plan.headers, direct_passthrough=True)
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
    restore_timeout = limit_send_time(environ, settings.send_timeout)
    chunks = iter_body(
        opened,
        plan.body,
        settings.chunk_size,
        settings.yield_interval,
        zero_copy_socket(environ, settings.sendfile),
        _rate_limit(settings),
        environ.get(TRANSFER_KEY),
    )
    # If the server closes the body before the generator ever starts, the generator's own
    # cleanup never runs: close the file and free the slot then too (all idempotent).
    # This must wrap the body itself: with direct_passthrough Werkzeug hands the server
    # ``response.response`` as it is, so ``call_on_close`` callbacks would never run.
    body_iter: Iterable[bytes] = ClosingIterator(
        stream_with_context(chunks), [opened.close, ticket.release, restore_timeout]
    )
    return Response(body_iter, status_line(plan.status), plan.headers, direct_passthrough=True)


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
