"""Storage faults as an operator reads them: one log line each, and the transfer's record.

A storage error (EIO, ESTALE, a stalled mount, ...) is one ERROR line naming the errno,
the path below the data root, the byte offset and the request id; no traceback, since
it is an expected condition, not a bug. A file that shrank under a transfer is one
WARNING line with the planned and the real end. The access log records the outcome
(``storage_error`` or ``truncated``), the errno (for the metrics' count by errno) and
the status the client really got: none when no byte of the answer went out.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, request

from service.digests import entry_path
from service.observability.accesslog import TRANSFER_KEY, Transfer
from service.storage.catalog import FolderEntry
from service.web.errors import (
    RETRY_AFTER,
    MemberChangedError,
    StorageError,
    TruncatedFileError,
    text_response,
)

log = logging.getLogger("service.storage")


def register(app: Flask) -> None:
    """A storage error before the first byte: 503 with ``Retry-After`` (RFC 9110
    §15.6.4, §10.2.3), one log line, and the transfer's record."""

    @app.errorhandler(StorageError)
    def storage_unavailable(error: StorageError) -> Response:
        name = (request.view_args or {}).get("name", request.path)
        listing = name == "" or request.path.endswith("/")
        storage_error(error, name, request.environ.get(TRANSFER_KEY), listing)
        response = text_response(error.status, error.message)
        response.headers["Retry-After"] = str(RETRY_AFTER)
        return response


def describe(error: StorageError, path: str, listing: bool = False) -> str:
    """``EIO reading 'iso/a.iso' at byte 1048576``: what failed, where."""
    if listing:
        what = "listing"
    elif error.offset is None:
        what = "opening"
    else:
        what = "reading"
    where = "" if error.offset is None else f" at byte {error.offset}"
    detail = f" ({error.detail})" if error.detail else ""
    return f"{error.errno_name} {what} {path!r}{where}{detail}"


def storage_error(
    error: StorageError, path: str, transfer: Transfer | None, listing: bool = False
) -> None:
    """Log ``error`` once and put it on the transfer's record."""
    request_id = transfer.request_id if transfer is not None else "-"
    log.error("storage error: %s; request %s", describe(error, path, listing), request_id)
    if transfer is not None:
        transfer.outcome = "storage_error"
        transfer.storage_errno = error.errno_name


class TransferFaults:
    """The streaming sink of one transfer: forwards to its access-log record (if any)
    and logs storage errors and truncation with the file's path below the root."""

    def __init__(self, transfer: Transfer | None, path: str, size: int) -> None:
        self.transfer = transfer
        self.path = path
        self.size = size

    def sent_directly(self, count: int) -> None:
        if self.transfer is not None:
            self.transfer.sent_directly(count)

    def client_left(self) -> None:
        if self.transfer is not None:
            self.transfer.client_left()

    def failed(self, error: StorageError | TruncatedFileError, headers_sent: bool) -> None:
        if isinstance(error, StorageError):
            storage_error(error, self.path, self.transfer)
        elif isinstance(error, MemberChangedError):
            log.warning(
                "changed: archive member %r of %r is not the planned version; connection"
                " closed; request %s",
                error.member,
                self.path,
                self.transfer.request_id if self.transfer is not None else "-",
            )
            if self.transfer is not None:
                self.transfer.outcome = "truncated"
        else:
            log.warning(
                "truncated: %r ended at byte %d, expected %d bytes; connection closed; request %s",
                self.path,
                error.offset,
                self.size,
                self.transfer.request_id if self.transfer is not None else "-",
            )
            if self.transfer is not None:
                self.transfer.outcome = "truncated"
        if self.transfer is not None and not headers_sent:
            self.transfer.nothing_sent()


#: Listing entries whose error was logged: path -> errno name (once per worker, until
#: the error changes or the entry is listed fine again).
_entry_errors: dict[str, str] = {}
_MAX_REMEMBERED = 10_000


def entry_errors(folder: str, entries: list[FolderEntry], transfer: Transfer | None) -> None:
    """Log each listed entry that could not be examined, once while its error lasts."""
    for entry in entries:
        path = entry_path(folder, entry.name)
        if entry.error is None:
            if _entry_errors:
                _entry_errors.pop(path, None)
            continue
        if _entry_errors.get(path) == entry.error:
            continue
        if len(_entry_errors) >= _MAX_REMEMBERED:
            _entry_errors.clear()
        _entry_errors[path] = entry.error
        log.error(
            "storage error: %s examining %r for a listing; listed as unavailable; request %s",
            entry.error,
            path,
            transfer.request_id if transfer is not None else "-",
        )
