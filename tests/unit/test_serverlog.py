"""serverlog: a client send timeout is one INFO line; other errors stay errors."""

from __future__ import annotations

import logging
import sys

import pytest

from service.observability import serverlog


def gunicorn_record(error: BaseException) -> logging.LogRecord:
    """The record gunicorn's ``log.exception("Socket error processing request.")`` makes."""
    try:
        raise error
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "gunicorn.error", logging.ERROR, "base_async.py", 1, serverlog.GUNICORN_SOCKET_ERROR,
        (), exc_info,
    )  # fmt: skip


def test_a_client_send_timeout_becomes_one_info_line() -> None:
    record = gunicorn_record(TimeoutError("timed out"))
    assert serverlog.ClientTimeouts().filter(record)
    assert (record.levelno, record.levelname) == (logging.INFO, "INFO")
    assert record.getMessage() == serverlog.CLIENT_TIMED_OUT
    assert record.exc_info is None


@pytest.mark.parametrize("error", [OSError(5, "Input/output error"), ValueError("bug")])
def test_other_socket_errors_keep_their_traceback(error: BaseException) -> None:
    record = gunicorn_record(error)
    assert serverlog.ClientTimeouts().filter(record)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None


def test_a_timeout_in_another_message_is_left_alone() -> None:
    record = gunicorn_record(TimeoutError())
    record.msg = "Error handling request"
    serverlog.ClientTimeouts().filter(record)
    assert record.levelno == logging.ERROR


def test_installing_twice_adds_one_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    # install() rewires the process's "service" logger: put it back for later tests.
    service_log = logging.getLogger("service")
    for attribute in ("handlers", "level", "propagate"):
        monkeypatch.setattr(service_log, attribute, getattr(service_log, attribute))
    logger = logging.getLogger("test-serverlog")
    serverlog.install(logger)
    serverlog.install(logger)
    assert sum(isinstance(f, serverlog.ClientTimeouts) for f in logger.filters) == 1
