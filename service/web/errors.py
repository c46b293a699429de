"""Domain errors, and the one place that maps them (and Werkzeug's) to short HTTP answers.

Every error body is a line of ``text/plain``; nothing echoes the request path, and a
refused symlink, a hidden file and a missing file all read the same.
"""

from __future__ import annotations

import errno
from http import HTTPStatus
from urllib.parse import quote

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

#: Seconds a client is asked to wait (``Retry-After``) before it tries again: a download
#: slot frees when one ends, and a storage hiccup is usually over by then.
RETRY_AFTER = 5

# RFC 9110's names where Python's table still has the older ones.
_PHRASES = {413: "Content Too Large", 416: "Range Not Satisfiable", 422: "Unprocessable Content"}
_STATUS_LINES: dict[int, str] = {}  # made once per status: this runs per request


class CatalogError(Exception):
    """A request for a path the catalog will not serve."""

    status = 500
    message = "Internal Server Error"


class BadPathError(CatalogError):
    """Traversal, NUL, backslashes, empty or dot segments: never a valid name."""

    status = 400
    message = "Bad Request: invalid path"


class NotFoundError(CatalogError):
    """Missing, hidden, outside the root, or not a regular file or folder."""

    status = 404
    message = "Not Found"


class ForbiddenError(CatalogError):
    """Exists but the service may not read it."""

    status = 403
    message = "Forbidden"


class TooManyMembersError(ForbiddenError):
    """A folder whose tree holds more entries than an archive may (``DL_ARCHIVE_MAX_MEMBERS``)."""

    message = "Forbidden: this folder has too many entries for an archive"


class PendingError(CatalogError):
    """An answer that needs hashes the digest pass has not computed yet: 503 with
    ``Retry-After`` (RFC 9110 §15.6.4), never a byte that might later change."""

    status = 503
    retry_after = 1


class DigestsPendingError(PendingError):
    """A file's Metalink asked for before its SHA-256 and piece hashes are known."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("digest unknown")
        self.retry_after = retry_after
        self.message = (
            "Service Unavailable: this file's Metalink is being prepared; its hashes are"
            f" being computed, try again in {retry_after} s"
        )


class ChecksumsPendingError(PendingError):
    """A zip asked for while some members' CRC-32s are still being computed."""

    def __init__(self, missing: int, files: int, retry_after: int) -> None:
        super().__init__(f"{missing} of {files} CRC-32s unknown")
        self.retry_after = retry_after
        self.message = (
            f"Service Unavailable: this zip is being prepared; the CRC-32s of {missing}"
            f" of its {files} files are being computed, try again in {retry_after} s"
        )


class IsFolderError(CatalogError):
    """A folder asked for without its trailing slash: redirect to the listing URL."""

    status = 301
    message = "Moved Permanently"


class StorageError(CatalogError):
    """The storage failed or did not answer in time (EIO, ESTALE, a stalled mount, ...).

    Before the first byte this is ``503`` with ``Retry-After`` (RFC 9110 §15.6.4: a
    temporary condition, so a client or HAProxy tries again, or elsewhere); after it,
    the connection is aborted. ``errno_name`` names the cause in logs and metrics.
    """

    status = 503
    message = "Service Unavailable: storage error, try again"

    def __init__(self, errno_name: str, offset: int | None = None, detail: str = "") -> None:
        super().__init__(errno_name)
        self.errno_name = errno_name
        self.offset = offset
        self.detail = detail

    @classmethod
    def from_os_error(cls, error: OSError, offset: int | None = None) -> StorageError:
        code = error.errno
        name = errno.errorcode.get(code, f"errno {code}") if code is not None else "OSError"
        return cls(name, offset)


class StorageBusyError(StorageError):
    """Every I/O thread this file (or the worker) may use is stuck on earlier calls."""

    def __init__(self, detail: str) -> None:
        super().__init__("EBUSY", detail=detail)


class StorageTimeoutError(StorageError):
    """A storage call gave no answer within ``DL_READ_TIMEOUT`` seconds."""

    def __init__(self, seconds: float) -> None:
        super().__init__("ETIMEDOUT", detail=f"no answer from storage in {seconds:g}s")
        self.seconds = seconds


class TruncatedFileError(RuntimeError):
    """The file ended before the planned bytes: abort the connection, never send short."""

    def __init__(self, offset: int, missing: int) -> None:
        super().__init__(f"file ended at byte {offset}, {missing} short")
        self.offset = offset
        self.missing = missing


class MemberChangedError(TruncatedFileError):
    """An archive member is no longer the version the archive was planned with (changed,
    replaced or gone): its bytes would not be the planned ones, so abort the connection."""

    def __init__(self, member: str, offset: int) -> None:
        RuntimeError.__init__(self, f"archive member {member!r} changed")
        self.member = member
        self.offset = offset
        self.missing = 0


def status_line(status: int) -> str:
    """``"206 Partial Content"``: RFC 9110's reason phrase, not Werkzeug's upper case."""
    line = _STATUS_LINES.get(status)
    if line is None:
        phrase = _PHRASES.get(status) or HTTPStatus(status).phrase
        line = _STATUS_LINES[status] = f"{status} {phrase}"
    return line


def text_response(status: int, message: str) -> Response:
    response = Response(message + "\n", status_line(status), mimetype="text/plain")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CatalogError)
    def catalog_error(error: CatalogError) -> Response:
        response = text_response(error.status, error.message)
        if isinstance(error, IsFolderError):
            # The URL the client used, so an app mounted under a prefix keeps it.
            response.headers["Location"] = quote(request.script_root + request.path + "/")
        if isinstance(error, PendingError):
            response.headers["Retry-After"] = str(error.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        response = text_response(error.code or 500, error.name)
        for name, value in error.get_headers():
            if name.lower() == "allow":
                # Werkzeug collects the methods in a set: sort them, so that every
                # process answers the same "Allow: GET, HEAD".
                value = ", ".join(sorted(method.strip() for method in value.split(",")))
            if name.lower() != "content-type":
                response.headers[name] = value
        return response
