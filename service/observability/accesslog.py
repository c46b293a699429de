"""The access log: one JSON line per request, written when the response is finished.

It records what was actually delivered, which a server's own log cannot know on the
zero-copy path: body bytes count once the server asked for the next chunk (so the
previous one was written) plus what ``sendfile`` wrote past the server. How the
transfer ended is one of ``complete``, ``aborted`` (the client left or stalled),
``truncated`` (the file shrank under it), ``storage_error`` (the storage failed or
stalled: :mod:`service.storage.faults`), ``error`` or ``offloaded`` (nginx sends the body,
``DL_OFFLOAD``). ``status`` is null when the answer failed before its status line went
out. nginx's report of an offloaded delivery is logged as a request
for ``/_offload/done`` with the original request's ``id``, the bytes nginx sent, its
duration and ``complete`` or ``aborted``.

Fields: ``time``, ``id`` (the request's ``X-Request-Id`` when it is a sane token, else a
new one; echoed in the response), ``client``, ``method``, ``target``, ``protocol``,
``status``, ``range``, ``bytes``, ``duration_ms``, ``outcome``, ``user_agent``.

The same record feeds any *observers* (the metrics): each hears when a response starts
and when it is finished, with the kind of answer the view put under ``KIND_KEY``.

The lines go to stdout through :class:`LineWriter`, not ``logging``: a record costs one
dict and one C-encoded ``json`` line, and under gevent the lines of one event-loop turn
leave in one ``write(2)`` (at once when the worker is idle, so nothing waits); what is
pending at exit is written then.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import random
import re
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TextIO
from urllib.parse import quote

from service.delivery.eventloop import loop_callback
from service.sansio.offload import DeliveryReport
from service.web.errors import StorageError, TruncatedFileError

TRANSFER_KEY = "download_service.transfer"
#: Where the view says what kind of answer it gave (``Plan.kind``, ``listing``, ...).
KIND_KEY = "download_service.kind"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Transfer:
    """What one request asked for and what it got; the streaming layer reports the
    bytes it writes itself (:meth:`sent_directly`) and a departed client."""

    def __init__(self, environ: dict[str, Any]) -> None:
        offered = environ.get("HTTP_X_REQUEST_ID", "")
        self.request_id = offered if _REQUEST_ID.fullmatch(offered) else _new_id()
        self.environ = environ
        #: Taken now: later layers may rewrite PATH_INFO (service.web.slashes).
        self.target = _target(environ)
        self.started = time.monotonic()
        self.status = 0
        self.bytes = 0
        self.outcome = "complete"
        #: The view's ``KIND_KEY``, read once the response has started; None before.
        self.kind: str | None = None
        #: On nginx's report of an offloaded delivery: what it says of that delivery.
        self.report: DeliveryReport | None = None
        #: The errno name of a storage error that ended this request (for the metrics).
        self.storage_errno: str | None = None
        self._delivered_status = 0
        self._status_sent = True

    def sent_directly(self, count: int) -> None:
        self.bytes += count

    def client_left(self) -> None:
        self.outcome = "aborted"

    def offloaded(self, status: int) -> None:
        """nginx sends this body (X-Accel-Redirect) with ``status``, which the log and
        the metrics give rather than the service's 200 to nginx; nginx's report of the
        delivery comes as another request."""
        self.outcome = "offloaded"
        self._delivered_status = status

    def answered(self, status: int) -> None:
        self.status = self._delivered_status or status

    def nothing_sent(self) -> None:
        """The response failed before its header section went out: no status reached
        the client (the log's ``status`` is null)."""
        self._status_sent = False

    def reports(self, report: DeliveryReport) -> None:
        """This request is nginx's report of an offloaded delivery: log that delivery."""
        self.report = report
        self.bytes = report.bytes
        self.outcome = "complete" if report.complete else "aborted"

    def record(self) -> dict[str, Any]:
        environ = self.environ
        return {
            "time": _utc_now(),
            "id": self.request_id,
            "client": environ.get("REMOTE_ADDR", ""),
            "method": environ.get("REQUEST_METHOD", ""),
            "target": self.target,
            "protocol": environ.get("SERVER_PROTOCOL", ""),
            "status": self.status if self._status_sent else None,
            "range": environ.get("HTTP_RANGE"),
            "bytes": self.bytes,
            "duration_ms": round(self._seconds() * 1000, 3),
            "outcome": self.outcome,
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }

    def _seconds(self) -> float:
        if self.report is not None:
            return self.report.seconds
        return time.monotonic() - self.started


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def _utc_now() -> str:
    """Now as ``2026-12-02T17:21:41.123+00:00`` (UTC, milliseconds), the date and time
    formatted once per second."""
    now = time.time()
    second = int(now)
    if second != _second[0]:
        _second[0], _second[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_second[1]}.{int((now - second) * 1000):03d}+00:00"


def _new_id() -> str:
    """32 random hex digits, like ``uuid4().hex`` without its getrandom call per request
    (``random`` is reseeded in every forked worker)."""
    return f"{random.getrandbits(128):032x}"


def _target(environ: dict[str, Any]) -> str:
    raw = environ.get("RAW_URI")  # gunicorn: the request-target as it was sent
    if isinstance(raw, str) and raw:
        return raw
    query = environ.get("QUERY_STRING", "")
    return quote(environ.get("PATH_INFO", "")) + (f"?{query}" if query else "")


class Observer(Protocol):
    """Hears of every request: ``started`` once its response has begun (not when the
    app raised), ``finished`` exactly once when it is over, in every case."""

    def started(self, transfer: Transfer) -> None: ...

    def finished(self, transfer: Transfer) -> None: ...


class AccessLog:
    """WSGI middleware that writes each request's line once its response is closed (no
    log with ``write=None``) and tells the observers."""

    def __init__(
        self,
        app: WSGIApp,
        write: Callable[[str], None] | None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.app = app
        self.write = write
        self.observers = tuple(observers)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        transfer = Transfer(environ)
        environ[TRANSFER_KEY] = transfer

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            transfer.answered(int(status[:3]))
            headers.append(("X-Request-Id", transfer.request_id))
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, start)
        except BaseException:
            transfer.outcome = "error"
            self._finish(transfer)
            raise
        transfer.kind = environ.get(KIND_KEY, "other")
        for observer in self.observers:
            observer.started(transfer)
        return _Counted(body, transfer, self._finish)

    def _finish(self, transfer: Transfer) -> None:
        if self.write is not None:
            self.write(_encode(transfer.record()))
        for observer in self.observers:
            observer.finished(transfer)


class _Counted:
    """Passes the body through, counting a chunk once the server asks for the next."""

    def __init__(
        self, body: Iterable[bytes], transfer: Transfer, finish: Callable[[Transfer], None]
    ) -> None:
        self._body = body
        self._chunks: Iterator[bytes] = iter(body)
        self._transfer = transfer
        self._report = finish
        self._pending = 0
        self._finished = False
        self._closed = False

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> bytes:
        self._transfer.bytes += self._pending  # the server wrote the previous chunk
        self._pending = 0
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._finished = True
            raise
        except TruncatedFileError:
            self._transfer.outcome = "truncated"
            raise
        except StorageError as error:
            self._transfer.outcome = "storage_error"
            self._transfer.storage_errno = error.errno_name
            raise
        except Exception:
            self._transfer.outcome = "error"
            raise
        self._pending = len(chunk)
        return chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            transfer = self._transfer
            if not self._finished and transfer.outcome == "complete":
                transfer.outcome = "aborted"
            self._report(transfer)


#: ``json.dumps(record, ensure_ascii=True)`` without its per-call set-up.
_encode = json.JSONEncoder(ensure_ascii=True).encode


class LineWriter:
    """Writes lines to ``stream`` (by default whatever ``sys.stdout`` is when it writes),
    with one ``write(2)`` on its descriptor. Under gevent the lines that requests end
    with during one turn of the event loop are joined and written once, from a callback
    the loop runs before it next waits (so an idle worker writes at once); elsewhere
    each line is written when it comes. What is pending at exit is written then."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._pending: list[str] = []
        self._later = loop_callback()
        _writers.add(self)

    def __call__(self, line: str) -> None:
        self._pending.append(line)
        if len(self._pending) == 1:
            if self._later is None:
                self.flush()
            else:
                self._later(self.flush)

    def flush(self) -> None:
        lines, self._pending = self._pending, []
        if not lines:
            return
        lines.append("")
        text = "\n".join(lines)  # ASCII: the encoder escapes everything else
        stream = self._stream or sys.stdout
        try:
            _write_all(stream, text)
        except (OSError, ValueError) as error:  # a closed or full stdout: say so, go on
            lost = len(lines) - 1
            logging.getLogger(__name__).error("access log: %d lines lost: %s", lost, error)


_writers: weakref.WeakSet[LineWriter] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    """A normal exit (a worker's too: gunicorn ends it with ``sys.exit``) loses no line."""
    for writer in list(_writers):
        writer.flush()


def _write_all(stream: TextIO, text: str) -> None:
    """Straight to the descriptor (the stream's buffer holds nothing of ours); a stream
    without one (a test's capture) takes the text."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        stream.write(text)
        return
    stream.flush()  # anything print()ed before goes first
    view = memoryview(text.encode("ascii"))
    while view:
        view = view[os.write(fd, view) :]


def install(
    app: Any,
    *,
    write: Callable[[str], None] | None = None,
    log: bool = True,
    observers: Sequence[Observer] = (),
) -> AccessLog:
    """Wrap ``app.wsgi_app``; the lines (unless ``log`` is false) go to ``write``, by
    default a :class:`LineWriter` on stdout, one JSON line per request."""
    if log and write is None:
        write = LineWriter()
    middleware = AccessLog(app.wsgi_app, write if log else None, observers)
    app.wsgi_app = middleware
    app.extensions["access_log"] = middleware
    return middleware
