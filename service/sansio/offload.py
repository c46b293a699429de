"""Which planned answers nginx may deliver unchanged (``DL_OFFLOAD=x-accel``).

The app plans every answer; with offload nginx only sends a plan's bytes, from an
``internal`` location of deploy/nginx/. But nginx's static path reads the request again:
its not-modified filter evaluates If-Match and If-Unmodified-Since against its own
validators, and its range filter parses Range itself. This module models those two
filters of nginx 1.22 (ngx_http_not_modified_filter_module.c, ngx_http_range_filter_module.c)
and offloads a plan only when nginx, configured as shipped, sends the same status, spans
and validators. Everything else stays with the app, which streams it as without offload.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import quote

from service.sansio.mirrors import LINK
from service.sansio.plan import TRANSFER_KINDS, Headers, Plan
from service.sansio.ranges import Span

#: The internal locations of deploy/nginx/download.conf.in live below this.
INTERNAL_PREFIX = "/_offload"
_MAX_OFF_T = 2**63 - 1  # nginx refuses (416) numerals past off_t
#: ``Link`` fields an offloaded answer can carry: the Metalink and 8 mirrors, one
#: ``add_header`` line each in the internal locations (``X-Offload-Link-1`` ... ``-9``).
MAX_LINKS = 9
LINK_HEADER = "X-Offload-Link-"


class Location(enum.Enum):
    """The internal location an offloaded plan goes to."""

    FULL = "full"  # max_ranges 0: nginx never looks at Range; 200 with the whole file
    RANGES = "ranges"  # nginx applies Range (If-Range against our validators) for a 206


@dataclass(frozen=True, slots=True)
class RequestFields:
    """The request header fields nginx's static path reads again; None when absent."""

    range: str | None = None
    if_range: str | None = None
    if_match: str | None = None
    if_unmodified_since: str | None = None


def choose_location(
    plan: Plan, fields: RequestFields, size: int, etag: str, last_modified: str
) -> Location | None:
    """Where nginx sends ``plan`` exactly as planned, or None: the app streams it."""
    if plan.status not in (200, 206) or not plan.reads_file:
        return None  # 304, 412, 416 and HEAD carry no file bytes: the app answers them
    # nginx evaluates these with its own ETag (none with "etag off") and the file's raw
    # mtime, and If-Unmodified-Since even beside If-Match: 412s the app would not send.
    if (fields.if_match is not None and fields.if_match.strip() != "*") or (
        fields.if_unmodified_since is not None
    ):
        return None
    if plan.status == 200:
        return Location.FULL
    # §13.1.5: the app found If-Range true; nginx compares it byte for byte with the ETag,
    # or as a date with Last-Modified, which the location sets to ours before it looks.
    if fields.if_range is not None and fields.if_range.strip() not in (etag, last_modified):
        return None
    planned = tuple(segment for segment in plan.body if isinstance(segment, Span))
    if nginx_range_spans(fields.range, size) != planned:
        return None  # nginx would choose other parts (coalescing, syntax, limits)
    return Location.RANGES


def carried_links(headers: Headers) -> Headers:
    """``headers`` with each ``Link`` renamed ``X-Offload-Link-<n>``, in order: nginx keeps
    no ``Link`` of an X-Accel-Redirect answer, and its ``$upstream_http_link`` holds only
    the first of several, so the locations copy each back from its numbered field."""
    fields: list[tuple[str, str]] = []
    links = 0
    for name, value in headers:
        if name == LINK:
            links += 1
            if links > MAX_LINKS:
                raise ValueError(f"more than {MAX_LINKS} Link fields to offload")
            name = f"{LINK_HEADER}{links}"
        fields.append((name, value))
    return tuple(fields)


def accel_target(location: Location, relative_path: str) -> str:
    """The ``X-Accel-Redirect`` value; nginx percent-decodes it once, so every byte
    outside unreserved characters and ``/`` is encoded (``?`` would start a query)."""
    return f"{INTERNAL_PREFIX}/{location.value}/{quote(relative_path, safe='/')}"


def nginx_range_spans(header: str | None, size: int) -> tuple[Span, ...] | None:
    """The parts nginx's range filter sends for ``header`` on a ``size``-byte file, or
    None when it sends none (200 or 416). A transcription of ngx_http_range_parse."""
    if header is None or len(header) < 7 or header[:6].lower() != "bytes=":
        return None
    spans: list[Span] = []
    reader = _Reader(header, 6)
    while True:
        member = _member(reader, size)
        if member is None:
            return None  # a syntax error or an overflow: nginx answers 416
        start, stop = member
        if start < stop:
            spans.append(Span(start, stop))
        if reader.take() != ",":
            break
    if not spans or sum(span.length for span in spans) > size:
        return None  # 416, or nginx ignores ranges adding up to more than the file
    return tuple(spans)


class _Reader:
    """A cursor over the header; reads past its end give NUL, as the C string does."""

    def __init__(self, text: str, position: int) -> None:
        self.text = text
        self.position = position

    def peek(self) -> str:
        return self.text[self.position] if self.position < len(self.text) else "\0"

    def take(self) -> str:
        char = self.peek()
        self.position += 1
        return char

    def skip_spaces(self) -> None:
        while self.peek() == " ":
            self.position += 1

    def number(self) -> int | None:
        if not "0" <= self.peek() <= "9":
            return None
        value = 0
        while "0" <= self.peek() <= "9":
            value = value * 10 + int(self.take())
            if value > _MAX_OFF_T:
                return None
        return value


def _member(reader: _Reader, size: int) -> tuple[int, int] | None:
    """One range-spec as nginx's half-open (start, end), or None for nginx's 416."""
    reader.skip_spaces()
    suffix = reader.peek() == "-"
    start = 0
    if suffix:
        reader.take()
    else:
        first = reader.number()
        if first is None:
            return None
        start = first
        reader.skip_spaces()
        if reader.take() != "-":
            return None
        reader.skip_spaces()
        if reader.peek() in (",", "\0"):
            return start, size
    last = reader.number()
    if last is None:
        return None
    reader.skip_spaces()
    if reader.peek() not in (",", "\0"):
        return None
    if suffix:
        start, last = max(size - last, 0), size - 1
    return start, size if last >= size else last + 1


#: The kind (``KIND_KEY``) of nginx's report request: the metrics count the delivery it
#: describes, not the report itself.
REPORT_KIND = "offload_report"


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What nginx's ``post_action`` reports of a delivery it finished or abandoned."""

    kind: str  # the planned kind the service sent along: full, range or multipart
    bytes: int  # body bytes nginx sent ($body_bytes_sent)
    complete: bool  # $request_completion is "OK": the whole body went out
    seconds: float  # $request_time: from the client's request to the delivery's end


def parse_report(
    kind: str | None, sent: str | None, completion: str | None, seconds: str | None
) -> DeliveryReport | None:
    """The report in the header fields deploy/nginx/ sets, or None if any is malformed."""
    if kind not in TRANSFER_KINDS or sent is None or seconds is None:
        return None
    if not (_is_decimal(sent) and _is_seconds(seconds)):
        return None
    return DeliveryReport(kind, int(sent), completion == "OK", float(seconds))


def _is_decimal(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= 18


def _is_seconds(value: str) -> bool:
    """nginx's $request_time: seconds with a millisecond fraction, e.g. ``12.345``."""
    whole, dot, fraction = value.partition(".")
    return _is_decimal(whole) and (not dot or (_is_decimal(fraction) and len(fraction) <= 3))
