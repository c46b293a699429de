"""gunicorn's own error log, told which client behaviour is expected, and the service's
log lines written through it.

gunicorn logs every socket error but EPIPE, ECONNRESET and ENOTCONN at ERROR with a
traceback. One more is expected here: a client that accepts no bytes for
``DL_SEND_TIMEOUT`` ends gunicorn's send with ``TimeoutError``, raised by the socket
timeout that :func:`service.delivery.streaming.limit_send_time` sets (nginx's ``send_timeout``).
That is the client's doing, and the access log already records the transfer as
``aborted``; so it becomes one INFO line, as nginx logs "client timed out".
"""

from __future__ import annotations

import logging

#: What gunicorn's async workers log for a socket error while handling a request.
GUNICORN_SOCKET_ERROR = "Socket error processing request."
CLIENT_TIMED_OUT = "client timed out: it accepted no bytes for DL_SEND_TIMEOUT; connection closed"


class ClientTimeouts(logging.Filter):
    """Turns gunicorn's traceback for a client send timeout into one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.msg == GUNICORN_SOCKET_ERROR and isinstance(error, TimeoutError):
            record.msg, record.args = CLIENT_TIMED_OUT, ()
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


def install(error_log: logging.Logger) -> None:
    """Add the filter to gunicorn's error logger (``worker.log.error_log``), once, and
    send the service's own lines (storage faults, digests) through its handlers, so they
    carry its time, pid and level. The access log keeps its own handler."""
    if not any(isinstance(existing, ClientTimeouts) for existing in error_log.filters):
        error_log.addFilter(ClientTimeouts())
    service_log = logging.getLogger("service")
    service_log.handlers = list(error_log.handlers)
    service_log.setLevel(min(error_log.getEffectiveLevel(), logging.INFO))
    service_log.propagate = False
