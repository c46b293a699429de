"""The response plan for GET/HEAD on a file: status, header fields and body layout.

Order (RFC 9110 §13.2.2): preconditions (If-Match, If-Unmodified-Since, If-None-Match,
If-Modified-Since), then If-Range, then Range. The plan is complete before a byte of
the file is read; the streaming layer only executes its body layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from service.sansio import multipart
from service.sansio.digests import choose, digest_etag, digest_fields
from service.sansio.disposition import content_disposition
from service.sansio.media_types import guess_type
from service.sansio.multipart import Segment
from service.sansio.preconditions import Outcome, Validators, evaluate, if_range_allows
from service.sansio.ranges import RangeKind, RangeResult, Span, evaluate_range
from service.sansio.validators import EntityTag, format_http_date, make_etag

ACCEPT_RANGES = "Accept-Ranges"
CACHE_CONTROL = "Cache-Control"
CONTENT_DISPOSITION = "Content-Disposition"
CONTENT_LENGTH = "Content-Length"
CONTENT_RANGE = "Content-Range"
CONTENT_TYPE = "Content-Type"
ETAG = "ETag"
LAST_MODIFIED = "Last-Modified"
NOSNIFF = ("X-Content-Type-Options", "nosniff")
TEXT = "text/plain; charset=utf-8"

Headers = tuple[tuple[str, str], ...]

_EARLIEST_HTTP_DATE = -62_135_596_800  # Mon, 01 Jan 0001 00:00:00 GMT


@dataclass(frozen=True, slots=True)
class Conditions:
    """The request header fields that decide the response; None when absent."""

    range: str | None = None
    if_range: str | None = None
    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None
    if_unmodified_since: str | None = None
    want_digest: str | None = None  # RFC 3230
    want_repr_digest: str | None = None  # RFC 9530 §4


@dataclass(frozen=True, slots=True)
class Representation:
    """Facts about one version of a file, all taken from one ``fstat``, and its SHA-256
    when that is already known for exactly this version (never computed here)."""

    name: str  # the file's own name, for Content-Type and Content-Disposition
    size: int
    mtime_ns: int
    sha256: bytes | None = None
    #: A strong tag made elsewhere (an archive's, from its members), instead of size-mtime.
    tag: EntityTag | None = None

    @property
    def etag(self) -> EntityTag:
        if self.tag is not None:
            return self.tag
        return make_etag(self.size, self.mtime_ns)

    def etags(self, from_digest: bool) -> tuple[EntityTag, ...]:
        """The tag to send first, then the other tags of this same version.

        Both the size-mtime tag and the digest tag identify exactly these bytes, so
        either is a strong validator for them (§8.8.1): a client that got one before the
        digest was known, or from a node with the other setting, still matches.
        """
        if self.sha256 is None:
            return (self.etag,)
        by_digest = digest_etag(self.sha256)
        return (by_digest, self.etag) if from_digest else (self.etag, by_digest)

    def last_modified(self, now: int) -> int:
        # §8.8.2.1: Last-Modified MUST NOT be later than the message's Date. An HTTP-date
        # has a 4-digit year (§5.6.7), so an mtime before year 1 is clamped, not an error.
        return max(_EARLIEST_HTTP_DATE, min(self.mtime_ns // 1_000_000_000, now))


@dataclass(frozen=True, slots=True)
class Policy:
    """Per-deployment (and per-request) choices the RFC leaves to the server."""

    max_ranges: int = 16
    cache_control: str = "no-cache"
    inline: bool = False
    digest_etag: bool = False  # the ETag from the SHA-256 once known (DL_ETAG=digest)
    #: ``Link`` fields (RFC 8288) for 200, 206, HEAD and 304 alike: the file's Metalink
    #: and mirrors (:func:`service.sansio.mirrors.link_fields`).
    links: Headers = ()


#: What each planned status is; a 206 is ``range`` or ``multipart`` (see ``Plan.kind``).
_KINDS = {
    200: "full",
    304: "not_modified",
    412: "precondition_failed",
    416: "range_not_satisfiable",
}
#: The kinds whose answers carry the file's bytes.
TRANSFER_KINDS = frozenset({"full", "range", "multipart"})


@dataclass(frozen=True, slots=True)
class Plan:
    status: int
    headers: Headers
    body: tuple[Segment, ...] = field(default=())

    @property
    def reads_file(self) -> bool:
        return any(isinstance(segment, Span) for segment in self.body)

    @property
    def kind(self) -> str:
        """``full``, ``range``, ``multipart``, ``not_modified``, ``precondition_failed``
        or ``range_not_satisfiable``, for metrics; a HEAD has its GET's kind."""
        if self.status != 206:
            return _KINDS[self.status]
        # §15.3.7.2: a multipart answer has no top-level Content-Range.
        single = CONTENT_RANGE in dict(self.headers)  # one C pass, not a generator
        return "range" if single else "multipart"


def plan_response(
    method: str,
    conditions: Conditions,
    rep: Representation,
    policy: Policy,
    now: int,
    new_boundary: Callable[[], str] = multipart.new_boundary,
) -> Plan:
    """Plan the answer to a GET or HEAD of an existing file; ``now`` is the Date."""
    if method not in ("GET", "HEAD"):
        raise ValueError(f"plan_response handles GET and HEAD, not {method!r}")
    etag, *alternatives = rep.etags(policy.digest_etag)
    validators = Validators(etag, rep.last_modified(now), now, tuple(alternatives))
    outcome = evaluate(
        if_match=conditions.if_match,
        if_none_match=conditions.if_none_match,
        if_modified_since=conditions.if_modified_since,
        if_unmodified_since=conditions.if_unmodified_since,
        validators=validators,
    )
    if outcome is Outcome.PRECONDITION_FAILED:
        plan = _short(412, "Precondition Failed\n")
    elif outcome is Outcome.NOT_MODIFIED:
        plan = _not_modified(validators, policy, _digests(rep, conditions))
    else:
        result = _range_result(conditions, rep, policy, validators)
        common = _representation_headers(rep, validators, policy, now, conditions)
        plan = _content(result, rep, common, new_boundary)
    return _without_body(plan) if method == "HEAD" else plan


def _range_result(
    conditions: Conditions, rep: Representation, policy: Policy, validators: Validators
) -> RangeResult:
    # §13.1.5: If-Range without Range is ignored; a false If-Range means "ignore Range".
    if (
        conditions.range is not None
        and conditions.if_range is not None
        and not if_range_allows(conditions.if_range, validators)
    ):
        return evaluate_range(None, rep.size, policy.max_ranges)
    return evaluate_range(conditions.range, rep.size, policy.max_ranges)


def _representation_headers(
    rep: Representation, validators: Validators, policy: Policy, now: int, conditions: Conditions
) -> Headers:
    return (
        (ACCEPT_RANGES, "bytes"),
        (ETAG, str(validators.etag)),
        (LAST_MODIFIED, format_http_date(rep.last_modified(now))),
        (CACHE_CONTROL, policy.cache_control),
        (CONTENT_DISPOSITION, content_disposition(rep.name, inline=policy.inline)),
        NOSNIFF,
        *_digests(rep, conditions),
        *policy.links,
    )


def _digests(rep: Representation, conditions: Conditions) -> Headers:
    # RFC 9530 §3: Repr-Digest covers the whole selected representation, so a 206 (and a
    # HEAD, §9.3.2) carries the same value as a 200. Absent until known, never late.
    if rep.sha256 is None:
        return ()
    return digest_fields(rep.sha256, choose(conditions.want_digest, conditions.want_repr_digest))


def _content(
    result: RangeResult,
    rep: Representation,
    common: Headers,
    new_boundary: Callable[[], str],
) -> Plan:
    media_type = guess_type(rep.name)
    if result.kind is RangeKind.UNSATISFIABLE:
        # §15.5.17: the current length lets the client re-synchronise.
        plan = _short(416, "Range Not Satisfiable\n")
        return Plan(416, (*plan.headers, (CONTENT_RANGE, f"bytes */{rep.size}")), plan.body)
    if result.kind is not RangeKind.SATISFIABLE:
        body: tuple[Segment, ...] = (Span(0, rep.size),) if rep.size else ()
        return _with_length(200, ((CONTENT_TYPE, media_type), *common), body)
    if len(result.spans) == 1:
        span = result.spans[0]
        headers = ((CONTENT_TYPE, media_type), (CONTENT_RANGE, span.content_range(rep.size)))
        return _with_length(206, (*headers, *common), (span,))
    # §15.3.7.2: no top-level Content-Range; each part carries its own.
    boundary = new_boundary()
    body = multipart.layout(boundary, media_type, result.spans, rep.size)
    return _with_length(206, ((CONTENT_TYPE, multipart.content_type(boundary)), *common), body)


def _with_length(status: int, headers: Headers, body: tuple[Segment, ...]) -> Plan:
    # Always an exact Content-Length: never chunked, so HTTP/1.0 clients work.
    length = multipart.body_length(body)
    return Plan(status, (*headers, (CONTENT_LENGTH, str(length))), body)


def _short(status: int, text: str) -> Plan:
    """A short plain-text answer; never the file (unlike Werkzeug's 412)."""
    body = text.encode()
    return _with_length(status, ((CONTENT_TYPE, TEXT), NOSNIFF), (body,))


def _not_modified(validators: Validators, policy: Policy, digests: Headers) -> Plan:
    # §15.4.5: the fields a 200 would carry among Content-Location, Date, ETag, Vary,
    # Cache-Control and Expires; no Last-Modified as an ETag is present. No content.
    # The integrity fields too, once known: §15.4.5 allows metadata that guides cache
    # updates, and a cache freshening its stored 200 with this 304 (RFC 9111 §4.3.4)
    # then learns a digest that was not known when it stored the 200.
    # The Link fields too (§15.4.5 metadata, as on the 200): a client revalidating its
    # copy learns the mirrors and the Metalink.
    headers = ((ETAG, str(validators.etag)), (CACHE_CONTROL, policy.cache_control))
    return Plan(304, (*headers, *digests, *policy.links))


def _without_body(plan: Plan) -> Plan:
    """§9.3.2: HEAD gets exactly GET's header fields, Content-Length included, no body."""
    return Plan(plan.status, plan.headers, ())
