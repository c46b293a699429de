"""Request/response vectors derived from RFC 9110 (§8.8, §9.3.2, §13, §14, §15).

Each vector is one GET or HEAD of a file whose byte ``i`` is ``i % 256``: the request's
conditions, the file's facts, a fixed Date (``now``), and what the plan must say (status,
selected header fields, the exact body bytes). A header expected as ``None`` must be
absent. The body is checked by executing the plan against the known content, so every
Content-Range, Content-Length and multipart frame is compared with real bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pytest

from service.sansio import Conditions, Plan, Policy, Representation, Span, plan_response
from service.sansio.validators import parse_http_date

SIZE = 1000
MTIME = 1704164645  # Tue, 02 Jan 2024 03:04:05 GMT
MTIME_NS = MTIME * 1_000_000_000 + 123_456_789  # sub-second part: Last-Modified truncates
NOW = MTIME + 3600  # the response's Date
REP = Representation("file.bin", SIZE, MTIME_NS)
ETAG = f'"{SIZE:x}-{MTIME_NS:x}"'
OTHER_ETAG = '"3e8-0"'
BOUNDARY = "BNDRY"
OCTET = "application/octet-stream"

LM = "Tue, 02 Jan 2024 03:04:05 GMT"  # IMF-fixdate of MTIME
LM_RFC850 = "Tuesday, 02-Jan-24 03:04:05 GMT"
LM_ASCTIME = "Tue Jan  2 03:04:05 2024"
BEFORE_LM = "Tue, 02 Jan 2024 03:04:04 GMT"
AFTER_LM = "Tue, 02 Jan 2024 03:04:06 GMT"
NOW_DATE = "Tue, 02 Jan 2024 04:04:05 GMT"

REP_EMPTY = Representation("empty.bin", 0, MTIME_NS)
REP_BIG = Representation("big.bin", 10_000, MTIME_NS)
REP_VIDEO = Representation("video.mp4", SIZE, MTIME_NS)
REP_TARGZ = Representation("backup.tar.gz", SIZE, MTIME_NS)
REP_FUTURE = Representation("file.bin", SIZE, (NOW + 86_400) * 1_000_000_000)
REP_ANCIENT = Representation("file.bin", SIZE, -(10**11) * 1_000_000_000)  # year -1199
REP_1900 = Representation("file.bin", SIZE, -2_208_988_800 * 1_000_000_000)
REP_NEW = Representation("file.bin", SIZE, NOW * 1_000_000_000)  # modified this second


def content(size: int) -> bytes:
    return bytes(i % 256 for i in range(size))


CONTENT = content(SIZE)


def execute(plan: Plan, data: bytes) -> bytes:
    """Run a plan's body: framing bytes as they are, spans sliced from ``data``."""
    out = []
    for segment in plan.body:
        if isinstance(segment, Span):
            assert 0 <= segment.start < segment.stop <= len(data)
            out.append(data[segment.start : segment.stop])
        else:
            out.append(segment)
    return b"".join(out)


def split_multipart(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """Parse a multipart/byteranges body laid out as RFC 2046 §5.1.1 describes."""
    opening = f"--{boundary}\r\n".encode()
    closing = f"\r\n--{boundary}--\r\n".encode()
    assert body.startswith(opening), body[:40]
    assert body.endswith(closing), body[-40:]
    parts = []
    for raw in body[len(opening) : -len(closing)].split(f"\r\n--{boundary}\r\n".encode()):
        head, sep, data = raw.partition(b"\r\n\r\n")
        assert sep, raw[:80]
        lines = head.decode("ascii").split("\r\n")
        parts.append((dict(line.split(": ", 1) for line in lines), data))
    return parts


def header(plan: Plan, name: str) -> str | None:
    values = [value for key, value in plan.headers if key.lower() == name.lower()]
    assert len(values) <= 1, f"{name} sent {len(values)} times"
    return values[0] if values else None


def strong_etag(rep: Representation) -> str:
    return f'"{rep.size:x}-{rep.mtime_ns:x}"'


@dataclass(frozen=True)
class Vector:
    id: str
    status: int
    conditions: Conditions
    method: str
    rep: Representation
    policy: Policy
    now: int
    headers: Mapping[str, str | None]
    body: bytes | None  # the exact bytes the executed body must produce
    parts: tuple[tuple[int, int], ...] | None  # multipart: inclusive first-last per part

    def plan(self, method: str | None = None, boundary: Callable[[], str] | None = None) -> Plan:
        return plan_response(
            method or self.method,
            self.conditions,
            self.rep,
            self.policy,
            self.now,
            boundary or (lambda: BOUNDARY),
        )


def vec(
    vid: str,
    status: int,
    headers: Mapping[str, str | None] | None = None,
    *,
    body: bytes | None = None,
    parts: tuple[tuple[int, int], ...] | None = None,
    method: str = "GET",
    rep: Representation = REP,
    policy: Policy | None = None,
    now: int = NOW,
    **conditions: str,
) -> Vector:
    return Vector(
        vid,
        status,
        Conditions(**conditions),
        method,
        rep,
        policy or Policy(),
        now,
        dict(headers or {}),
        body,
        parts,
    )


def whole(rep: Representation = REP) -> dict[str, str | None]:
    """Selected headers of a 200 carrying the whole file."""
    return {"Content-Length": str(rep.size), "Content-Range": None}


def single(first: int, last: int, size: int = SIZE) -> dict[str, str | None]:
    """Selected headers of a single-part 206."""
    return {
        "Content-Range": f"bytes {first}-{last}/{size}",
        "Content-Length": str(last - first + 1),
        "Content-Type": OCTET,
    }


MULTIPART = {"Content-Type": f"multipart/byteranges; boundary={BOUNDARY}", "Content-Range": None}
UNSATISFIABLE = {"Content-Range": f"bytes */{SIZE}", "ETag": None}
NOT_MODIFIED = {
    "ETag": ETAG,
    "Cache-Control": "no-cache",
    "Content-Length": None,
    "Content-Type": None,
    "Content-Range": None,
    "Last-Modified": None,
    "Content-Disposition": None,
}


def part(first: int, last: int) -> bytes:
    return CONTENT[first : last + 1]


# The wire layout of http-semantics.md §2.4 (there 0-9,20-29: 201 bytes; 20-29 lies within
# the coalescing gap here, so the second part is 200-209 and two digits longer). No CRLF
# before the first boundary; the CRLF before each later delimiter belongs to the delimiter.
EXACT_MULTIPART = (
    b"--BNDRY\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Range: bytes 0-9/1000\r\n"
    b"\r\n" + CONTENT[0:10] + b"\r\n"
    b"--BNDRY\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Range: bytes 200-209/1000\r\n"
    b"\r\n" + CONTENT[200:210] + b"\r\n"
    b"--BNDRY--\r\n"
)

SEVENTEEN_RANGES = ",".join(f"{i * 500}-{i * 500 + 9}" for i in range(17))
SIXTEEN_RANGES = ",".join(f"{i * 500}-{i * 500 + 9}" for i in range(16))

VECTORS = [
    # --- §14.1.2 / §15.3.7.1: single ranges -----------------------------------------------
    vec("14.1.2-int-range-is-206", 206, single(0, 499), body=part(0, 499), range="bytes=0-499"),
    vec(
        "14.1.2-int-range-at-end", 206, single(500, 999), body=part(500, 999), range="bytes=500-999"
    ),
    vec(
        "14.1.2-open-ended-range-runs-to-end",
        206,
        single(900, 999),
        body=part(900, 999),
        range="bytes=900-",
    ),
    vec("14.1.2-bytes-0-open-is-206-not-200", 206, single(0, 999), body=CONTENT, range="bytes=0-"),
    vec("14.1.2-first-byte-0-0", 206, single(0, 0), body=b"\x00", range="bytes=0-0"),
    vec(
        "14.1.2-last-byte-999-999",
        206,
        single(999, 999),
        body=part(999, 999),
        range="bytes=999-999",
    ),
    vec(
        "14.1.2-suffix-1-is-last-byte",
        206,
        single(999, 999),
        body=bytes([999 % 256]),
        range="bytes=-1",
    ),
    vec(
        "14.1.2-probe-0-1-is-exactly-two-bytes",
        206,
        single(0, 1),
        body=b"\x00\x01",
        range="bytes=0-1",
    ),
    vec("14.1.2-probe-1-open", 206, single(1, 999), body=CONTENT[1:], range="bytes=1-"),
    vec(
        "14.1.2-suffix-range-is-last-n-bytes",
        206,
        single(500, 999),
        body=part(500, 999),
        range="bytes=-500",
    ),
    vec(
        "14.1.2-suffix-equal-to-length-is-whole-file",
        206,
        single(0, 999),
        body=CONTENT,
        range="bytes=-1000",
    ),
    vec(
        "14.1.2-suffix-longer-than-file-is-whole-file",
        206,
        single(0, 999),
        body=CONTENT,
        range="bytes=-2000",
    ),
    vec(
        "14.1.2-last-pos-beyond-end-is-clipped",
        206,
        single(500, 999),
        body=part(500, 999),
        range="bytes=500-5000",
    ),
    vec(
        "14.1.2-last-pos-equal-to-length-is-clipped",
        206,
        single(0, 999),
        body=CONTENT,
        range="bytes=0-1000",
    ),
    vec(
        "14.1.2-huge-last-pos-is-clipped",
        206,
        single(10, 999),
        body=CONTENT[10:],
        range="bytes=10-" + "9" * 40,
    ),
    vec(
        "14.1.2-huge-suffix-is-whole-file",
        206,
        single(0, 999),
        body=CONTENT,
        range="bytes=-" + "9" * 400,
    ),
    vec(
        "14.1.2-leading-zeros-are-decimal",
        206,
        single(100, 199),
        body=part(100, 199),
        range="bytes=000100-000199",
    ),
    vec(
        "14.1.2-first-pos-equal-to-length-is-unsatisfiable", 416, UNSATISFIABLE, range="bytes=1000-"
    ),
    vec(
        "14.1.2-first-pos-beyond-length-is-unsatisfiable",
        416,
        UNSATISFIABLE,
        range="bytes=1000-2000",
    ),
    vec(
        "14.1.2-huge-first-pos-is-unsatisfiable",
        416,
        UNSATISFIABLE,
        range="bytes=" + "9" * 400 + "-",
    ),
    vec("14.1.2-suffix-zero-is-unsatisfiable", 416, UNSATISFIABLE, range="bytes=-0"),
    vec("14.1.2-suffix-zeros-is-unsatisfiable", 416, UNSATISFIABLE, range="bytes=-000"),
    # --- §14.1 / §5.6.1.2: the range-unit token and list syntax -----------------------------
    vec(
        "14.1-unit-is-case-insensitive-Bytes", 206, single(0, 9), body=part(0, 9), range="Bytes=0-9"
    ),
    vec(
        "14.1-unit-is-case-insensitive-BYTES", 206, single(0, 9), body=part(0, 9), range="BYTES=0-9"
    ),
    vec(
        "14.1.1-ows-after-equals-tolerated", 206, single(0, 9), body=part(0, 9), range="bytes= 0-9"
    ),
    vec(
        "14.1.1-ows-around-equals-and-dash-tolerated",
        206,
        single(0, 9),
        body=part(0, 9),
        range="bytes =\t0 - 9 ",
    ),
    vec(
        "5.6.1.2-ows-around-commas-tolerated",
        206,
        MULTIPART,
        parts=((0, 9), (500, 509)),
        range="bytes=0-9 ,\t500-509",
    ),
    vec(
        "5.6.1.2-empty-list-elements-ignored",
        206,
        MULTIPART,
        parts=((0, 9), (500, 509)),
        range="bytes=0-9,,500-509",
    ),
    vec(
        "5.6.1.2-leading-empty-element-ignored",
        206,
        single(0, 9),
        body=part(0, 9),
        range="bytes=, ,0-9",
    ),
    vec(
        "5.6.1.2-trailing-empty-element-ignored",
        206,
        single(0, 9),
        body=part(0, 9),
        range="bytes=0-9,",
    ),
    # --- §14.1.1 / §14.2: invalid or unknown is ignored (200), never 416 -------------------
    vec("14.1.1-last-before-first-invalid-ignored", 200, whole(), body=CONTENT, range="bytes=9-0"),
    vec("14.1.1-non-numeric-invalid-ignored", 200, whole(), body=CONTENT, range="bytes=abc"),
    vec("14.1.1-lone-dash-invalid-ignored", 200, whole(), body=CONTENT, range="bytes=-"),
    vec("14.1.1-hex-numerals-invalid-ignored", 200, whole(), body=CONTENT, range="bytes=0x10-0x20"),
    vec(
        "14.1.1-arabic-indic-digits-invalid-ignored",
        200,
        whole(),
        body=CONTENT,
        range="bytes=\u0661-\u0662",
    ),
    vec(
        "14.1.1-fullwidth-digits-invalid-ignored",
        200,
        whole(),
        body=CONTENT,
        range="bytes=\uff10-\uff19",
    ),
    vec(
        "14.1.1-superscript-digits-invalid-ignored",
        200,
        whole(),
        body=CONTENT,
        range="bytes=\u00b9-\u00b2",
    ),
    vec("14.1.1-plus-sign-invalid-ignored", 200, whole(), body=CONTENT, range="bytes=+1-2"),
    vec(
        "14.1.1-negative-first-pos-invalid-ignored", 200, whole(), body=CONTENT, range="bytes=-5-10"
    ),
    vec(
        "14.1.1-one-invalid-member-invalidates-set",
        200,
        whole(),
        body=CONTENT,
        range="bytes=0-9,9-0",
    ),
    vec(
        "14.1.1-invalid-member-next-to-unsatisfiable-ignored",
        200,
        whole(),
        body=CONTENT,
        range="bytes=2000-,x",
    ),
    vec(
        "14.1.1-huge-last-before-first-invalid-ignored",
        200,
        whole(),
        body=CONTENT,
        range="bytes=" + "9" * 30 + "-" + "9" * 25,
    ),
    vec("14.1.1-empty-range-set-ignored", 200, whole(), body=CONTENT, range="bytes="),
    vec("14.1.1-only-empty-elements-ignored", 200, whole(), body=CONTENT, range="bytes=,,"),
    vec("14.1.1-missing-equals-ignored", 200, whole(), body=CONTENT, range="bytes 0-9"),
    vec("14.1.1-empty-header-ignored", 200, whole(), body=CONTENT, range=""),
    vec("14.2-unknown-unit-ignored-not-416", 200, whole(), body=CONTENT, range="items=0-1"),
    vec(
        "14.2-unknown-unit-with-unsatisfiable-numbers-ignored",
        200,
        whole(),
        body=CONTENT,
        range="items=5000-",
    ),
    vec("14.2-unit-prefix-is-not-bytes", 200, whole(), body=CONTENT, range="bytesx=0-1"),
    vec("14.1-unit-not-a-token-ignored", 200, whole(), body=CONTENT, range="by tes=0-1"),
    # --- §14.1.1 / §15.3.7.2: several ranges ---------------------------------------------------
    vec(
        "15.3.7.2-two-ranges-exact-multipart-bytes",
        206,
        {**MULTIPART, "Content-Length": "203"},
        body=EXACT_MULTIPART,
        parts=((0, 9), (200, 209)),
        range="bytes=0-9,200-209",
    ),
    vec(
        "15.3.7.2-parts-follow-request-order",
        206,
        MULTIPART,
        parts=((500, 509), (0, 9)),
        range="bytes=500-509,0-9",
    ),
    vec(
        "15.3.7.2-three-parts-in-request-order",
        206,
        MULTIPART,
        parts=((900, 999), (0, 9), (400, 449)),
        range="bytes=-100,0-9,400-449",
    ),
    vec(
        "15.3.7.2-overlapping-ranges-coalesced",
        206,
        single(0, 149),
        body=part(0, 149),
        range="bytes=0-99,50-149",
    ),
    vec(
        "15.3.7.2-contained-range-coalesced",
        206,
        single(0, 199),
        body=part(0, 199),
        range="bytes=0-199,50-59",
    ),
    vec(
        "15.3.7.2-adjacent-ranges-coalesced",
        206,
        single(0, 19),
        body=part(0, 19),
        range="bytes=0-9,10-19",
    ),
    vec(
        "15.3.7.2-gap-under-80-coalesced",
        206,
        single(0, 59),
        body=part(0, 59),
        range="bytes=0-9,50-59",
    ),
    vec(
        "15.3.7.2-gap-over-80-kept-apart",
        206,
        MULTIPART,
        parts=((0, 9), (200, 209)),
        range="bytes=0-9,200-209",
    ),
    vec(
        "15.3.7.2-coalesced-part-takes-earliest-request-position",
        206,
        MULTIPART,
        parts=((500, 599), (0, 149)),
        range="bytes=500-599,50-149,0-99",
    ),
    vec(
        "14.1.1-partly-unsatisfiable-set-drops-members",
        206,
        single(0, 9),
        body=part(0, 9),
        range="bytes=0-9,2000-3000",
    ),
    vec(
        "14.1.1-unsatisfiable-members-dropped-from-multipart",
        206,
        MULTIPART,
        parts=((0, 9), (500, 509)),
        range="bytes=0-9,2000-,-0,500-509",
    ),
    vec(
        "15.5.17-all-members-unsatisfiable-is-416",
        416,
        UNSATISFIABLE,
        range="bytes=1000-,2000-3000,-0",
    ),
    vec(
        "14.2-more-parts-than-max-ranges-is-whole-file",
        200,
        whole(REP_BIG),
        body=content(10_000),
        rep=REP_BIG,
        range=f"bytes={SEVENTEEN_RANGES}",
    ),
    vec(
        "14.2-exactly-max-ranges-parts-is-multipart",
        206,
        MULTIPART,
        parts=tuple((i * 500, i * 500 + 9) for i in range(16)),
        rep=REP_BIG,
        range=f"bytes={SIXTEEN_RANGES}",
    ),
    vec(
        "14.2-policy-max-ranges-caps-parts",
        200,
        whole(),
        body=CONTENT,
        policy=Policy(max_ranges=2),
        range="bytes=0-9,200-209,400-409",
    ),
    vec(
        "14.2-max-ranges-counts-parts-after-coalescing",
        206,
        single(0, 29),
        body=part(0, 29),
        policy=Policy(max_ranges=1),
        range="bytes=0-9,10-19,20-29",
    ),
    vec(
        "14.2-spans-summing-beyond-file-is-whole-file",
        200,
        whole(),
        body=CONTENT,
        range="bytes=0-,0-",
    ),
    vec(
        "14.2-overlapping-spans-summing-beyond-file-is-whole-file",
        200,
        whole(),
        body=CONTENT,
        range="bytes=0-599,400-999",
    ),
    vec(
        "14.2-many-overlapping-small-ranges-ignored",
        200,
        whole(),
        body=CONTENT,
        range="bytes=" + ",".join(["0-99"] * 11),
    ),
    # --- §14.2: zero-length representation ----------------------------------------------------
    vec(
        "14.2-zero-length-file-range-is-200-empty",
        200,
        whole(REP_EMPTY),
        body=b"",
        rep=REP_EMPTY,
        range="bytes=0-",
    ),
    vec(
        "14.2-zero-length-file-suffix-is-200-empty",
        200,
        whole(REP_EMPTY),
        body=b"",
        rep=REP_EMPTY,
        range="bytes=-5",
    ),
    vec(
        "14.2-zero-length-file-0-0-is-200-empty",
        200,
        whole(REP_EMPTY),
        body=b"",
        rep=REP_EMPTY,
        range="bytes=0-0",
    ),
    vec(
        "14.2-zero-length-file-no-range-is-200-empty",
        200,
        whole(REP_EMPTY),
        body=b"",
        rep=REP_EMPTY,
    ),
    # --- §9.3.2: HEAD ---------------------------------------------------------------------------
    vec("9.3.2-head-is-200-with-length-no-body", 200, whole(), body=b"", method="HEAD"),
    vec(
        "9.3.2-head-with-range-is-206-no-body",
        206,
        single(0, 1),
        body=b"",
        method="HEAD",
        range="bytes=0-1",
    ),
    vec(
        "9.3.2-head-with-multiple-ranges-no-body",
        206,
        MULTIPART,
        body=b"",
        method="HEAD",
        range="bytes=0-9,500-509",
    ),
    vec(
        "9.3.2-head-unsatisfiable-is-416",
        416,
        UNSATISFIABLE,
        body=b"",
        method="HEAD",
        range="bytes=-0",
    ),
    # --- §13.1.1 If-Match (strong comparison) ---------------------------------------------------
    vec("13.1.1-if-match-same-etag-passes", 200, whole(), body=CONTENT, if_match=ETAG),
    vec("13.1.1-if-match-star-passes", 200, whole(), body=CONTENT, if_match="*"),
    vec(
        "13.1.1-if-match-list-containing-etag-passes",
        200,
        whole(),
        body=CONTENT,
        if_match=f'"a", {ETAG}, "b"',
    ),
    vec("13.1.1-if-match-other-etag-is-412", 412, if_match=OTHER_ETAG),
    vec("13.1.1-if-match-list-without-etag-is-412", 412, if_match='"a", "b"'),
    vec("13.1.1-if-match-weak-tag-never-matches", 412, if_match=f"W/{ETAG}"),
    vec("13.1.1-if-match-unparseable-never-matches", 412, if_match="garbage"),
    vec(
        "13.1.1-if-match-passes-range-served",
        206,
        single(0, 9),
        body=part(0, 9),
        if_match=ETAG,
        range="bytes=0-9",
    ),
    vec("13.1.1-if-match-412-on-head", 412, body=b"", method="HEAD", if_match=OTHER_ETAG),
    # --- §13.1.4 If-Unmodified-Since -----------------------------------------------------------
    vec("13.1.4-ius-before-last-modified-is-412", 412, if_unmodified_since=BEFORE_LM),
    vec(
        "13.1.4-ius-equal-to-last-modified-passes",
        200,
        whole(),
        body=CONTENT,
        if_unmodified_since=LM,
    ),
    vec(
        "13.1.4-ius-after-last-modified-passes",
        200,
        whole(),
        body=CONTENT,
        if_unmodified_since=AFTER_LM,
    ),
    vec(
        "13.1.4-ius-rfc850-before-is-412",
        412,
        if_unmodified_since="Tuesday, 02-Jan-24 03:04:04 GMT",
    ),
    vec("13.1.4-ius-asctime-before-is-412", 412, if_unmodified_since="Tue Jan  2 03:04:04 2024"),
    vec(
        "13.1.4-ius-invalid-date-ignored",
        200,
        whole(),
        body=CONTENT,
        if_unmodified_since="yesterday",
    ),
    vec(
        "13.1.4-ius-impossible-date-ignored",
        200,
        whole(),
        body=CONTENT,
        if_unmodified_since="Fri, 30 Feb 2024 00:00:00 GMT",
    ),
    vec(
        "13.1.4-ius-list-ignored",
        200,
        whole(),
        body=CONTENT,
        if_unmodified_since=f"{BEFORE_LM}, {BEFORE_LM}",
    ),
    vec(
        "13.2.2-ius-ignored-when-if-match-present",
        200,
        whole(),
        body=CONTENT,
        if_match=ETAG,
        if_unmodified_since=BEFORE_LM,
    ),
    vec(
        "13.2.2-ius-ignored-when-if-match-star",
        200,
        whole(),
        body=CONTENT,
        if_match="*",
        if_unmodified_since=BEFORE_LM,
    ),
    # --- §13.1.2 If-None-Match (weak comparison) -----------------------------------------------
    vec("13.1.2-inm-same-etag-is-304", 304, NOT_MODIFIED, body=b"", if_none_match=ETAG),
    vec(
        "13.1.2-inm-weak-form-matches-is-304",
        304,
        NOT_MODIFIED,
        body=b"",
        if_none_match=f"W/{ETAG}",
    ),
    vec("13.1.2-inm-star-is-304", 304, NOT_MODIFIED, body=b"", if_none_match="*"),
    vec(
        "13.1.2-inm-list-containing-etag-is-304",
        304,
        NOT_MODIFIED,
        body=b"",
        if_none_match=f'"a",{ETAG}',
    ),
    vec("13.1.2-inm-other-etag-is-200", 200, whole(), body=CONTENT, if_none_match=OTHER_ETAG),
    vec(
        "13.1.2-inm-is-304-on-head", 304, NOT_MODIFIED, body=b"", method="HEAD", if_none_match=ETAG
    ),
    # --- §13.1.3 If-Modified-Since -------------------------------------------------------------
    vec(
        "13.1.3-ims-equal-to-last-modified-is-304",
        304,
        NOT_MODIFIED,
        body=b"",
        if_modified_since=LM,
    ),
    vec(
        "13.1.3-ims-after-last-modified-is-304",
        304,
        NOT_MODIFIED,
        body=b"",
        if_modified_since=AFTER_LM,
    ),
    vec(
        "13.1.3-ims-before-last-modified-is-200",
        200,
        whole(),
        body=CONTENT,
        if_modified_since=BEFORE_LM,
    ),
    vec(
        "13.1.3-ims-rfc850-date-accepted", 304, NOT_MODIFIED, body=b"", if_modified_since=LM_RFC850
    ),
    vec(
        "13.1.3-ims-asctime-date-accepted",
        304,
        NOT_MODIFIED,
        body=b"",
        if_modified_since=LM_ASCTIME,
    ),
    vec(
        "13.1.3-ims-invalid-date-ignored",
        200,
        whole(),
        body=CONTENT,
        if_modified_since="not a date",
    ),
    vec(
        "13.1.3-ims-impossible-date-ignored",
        200,
        whole(),
        body=CONTENT,
        if_modified_since="Fri, 30 Feb 2024 00:00:00 GMT",
    ),
    vec(
        "13.1.3-ims-list-ignored", 200, whole(), body=CONTENT, if_modified_since=f"{LM}, {AFTER_LM}"
    ),
    vec(
        "5.6.7-ims-with-non-ascii-digits-ignored",
        200,
        whole(),
        body=CONTENT,
        if_modified_since="Tue, 02 Jan \u0662\u0660\u0662\u0664 03:04:05 GMT",
    ),
    vec(
        "13.1.3-ims-is-304-on-head",
        304,
        NOT_MODIFIED,
        body=b"",
        method="HEAD",
        if_modified_since=LM,
    ),
    vec(
        "13.2.2-ims-ignored-when-inm-present",
        200,
        whole(),
        body=CONTENT,
        if_none_match=OTHER_ETAG,
        if_modified_since=AFTER_LM,
    ),
    vec(
        "13.2.2-inm-match-decides-despite-old-ims",
        304,
        NOT_MODIFIED,
        body=b"",
        if_none_match=ETAG,
        if_modified_since=BEFORE_LM,
    ),
    # --- §13.2.2: evaluation order; preconditions before Range ---------------------------------
    vec("13.2.2-if-match-412-before-inm-304", 412, if_match=OTHER_ETAG, if_none_match=ETAG),
    vec("13.2.2-ius-412-before-inm-304", 412, if_unmodified_since=BEFORE_LM, if_none_match=ETAG),
    vec("13.2.2-412-wins-over-satisfiable-range", 412, if_match=OTHER_ETAG, range="bytes=0-9"),
    vec(
        "13.2.2-412-wins-over-unsatisfiable-range",
        412,
        if_unmodified_since=BEFORE_LM,
        range="bytes=5000-",
    ),
    vec(
        "13.2.2-inm-304-wins-over-satisfiable-range",
        304,
        NOT_MODIFIED,
        body=b"",
        if_none_match=ETAG,
        range="bytes=0-9",
    ),
    vec(
        "13.2.2-ims-304-wins-over-unsatisfiable-range",
        304,
        NOT_MODIFIED,
        body=b"",
        if_modified_since=LM,
        range="bytes=5000-",
    ),
    vec(
        "13.2.2-304-wins-over-multipart",
        304,
        NOT_MODIFIED,
        body=b"",
        if_none_match="*",
        range="bytes=0-9,500-509",
    ),
    vec(
        "13.2.2-304-wins-over-if-range",
        304,
        NOT_MODIFIED,
        body=b"",
        if_none_match=ETAG,
        if_range=ETAG,
        range="bytes=0-9",
    ),
    # --- §13.1.5 If-Range ------------------------------------------------------------------------
    vec(
        "13.1.5-if-range-strong-etag-match-is-206",
        206,
        single(0, 9),
        body=part(0, 9),
        if_range=ETAG,
        range="bytes=0-9",
    ),
    vec(
        "13.1.5-if-range-other-etag-is-whole-file",
        200,
        whole(),
        body=CONTENT,
        if_range=OTHER_ETAG,
        range="bytes=0-9",
    ),
    vec(
        "13.1.5-if-range-weak-etag-never-matches",
        200,
        whole(),
        body=CONTENT,
        if_range=f"W/{ETAG}",
        range="bytes=0-9",
    ),
    vec(
        "13.1.5-if-range-etag-list-is-not-a-match",
        200,
        whole(),
        body=CONTENT,
        if_range=f"{ETAG}, {ETAG}",
        range="bytes=0-9",
    ),
    vec(
        "13.1.5-if-range-date-equal-to-last-modified-is-206",
        206,
        single(0, 9),
        body=part(0, 9),
        if_range=LM,
        range="bytes=0-9",
    ),
    vec(
        "13.1.5-if-range-rfc850-date-equal-is-206",
        206,
        single(0, 9),
        body=part(0, 9),
        if_range=LM_RFC850,
        range="bytes=0-9",
    ),
    vec(
        "13.1.5-if-range-asctime-date-equal-is-206",
        206,
        single(0, 9),
        body=part(0, 9),
        if_range=LM_ASCTIME,
        range="bytes=0-9",
    ),
    vec(
        "13.1.5-if-range-later-date-is-whole-file",
        200,
        whole(),
        body=CONTENT,
        if_range=AFTER_LM,
        range="bytes=0-9",
    ),
    vec(
        "13.1.5-if-range-earlier-date-is-whole-file",
        200,
        whole(),
        body=CONTENT,
        if_range=BEFORE_LM,
        range="bytes=0-9",
    ),
    vec(
        "13.1.5-if-range-invalid-date-is-whole-file",
        200,
        whole(),
        body=CONTENT,
        if_range="soon",
        range="bytes=0-9",
    ),
    vec(
        "8.8.2.2-if-range-date-in-same-second-as-now-is-weak",
        200,
        whole(),
        body=CONTENT,
        now=MTIME,
        if_range=LM,
        range="bytes=0-9",
    ),
    vec(
        "8.8.2.2-if-range-date-one-second-before-now-is-strong",
        206,
        single(0, 9),
        body=part(0, 9),
        now=MTIME + 1,
        if_range=LM,
        range="bytes=0-9",
    ),
    vec(
        "8.8.2.2-if-range-date-of-file-modified-this-second-is-weak",
        200,
        whole(),
        body=CONTENT,
        rep=REP_NEW,
        if_range=NOW_DATE,
        range="bytes=0-9",
    ),
    vec(
        "13.1.5-if-range-false-with-unsatisfiable-range-is-200-not-416",
        200,
        whole(),
        body=CONTENT,
        if_range=OTHER_ETAG,
        range="bytes=5000-",
    ),
    vec(
        "13.1.5-if-range-false-with-multiple-ranges-is-whole-file",
        200,
        whole(),
        body=CONTENT,
        if_range=OTHER_ETAG,
        range="bytes=0-9,500-509",
    ),
    vec(
        "13.1.5-if-range-true-with-multiple-ranges-is-multipart",
        206,
        MULTIPART,
        parts=((0, 9), (500, 509)),
        if_range=ETAG,
        range="bytes=0-9,500-509",
    ),
    vec("13.1.5-if-range-without-range-ignored", 200, whole(), body=CONTENT, if_range=OTHER_ETAG),
    vec("13.1.5-if-range-matching-without-range-is-200", 200, whole(), body=CONTENT, if_range=ETAG),
    # --- §8.8: validators sent ------------------------------------------------------------
    vec("8.8.3-etag-is-strong-size-and-mtime", 200, {"ETag": ETAG}, body=CONTENT),
    vec("8.8.2-last-modified-is-mtime-in-whole-seconds", 200, {"Last-Modified": LM}, body=CONTENT),
    vec(
        "8.8.2.1-future-mtime-clamped-to-now",
        200,
        {"Last-Modified": NOW_DATE},
        body=CONTENT,
        rep=REP_FUTURE,
    ),
    vec(
        "5.6.7-mtime-before-year-1-is-clamped-to-first-http-date",
        200,
        {"Last-Modified": "Mon, 01 Jan 0001 00:00:00 GMT", "ETag": strong_etag(REP_ANCIENT)},
        body=CONTENT,
        rep=REP_ANCIENT,
    ),
    vec(
        "8.8.2-last-modified-of-pre-1970-file",
        200,
        {"Last-Modified": "Mon, 01 Jan 1900 00:00:00 GMT"},
        body=CONTENT,
        rep=REP_1900,
    ),
    vec(
        "8.8.2.1-future-file-if-range-date-never-strong",
        200,
        whole(),
        body=CONTENT,
        rep=REP_FUTURE,
        if_range=NOW_DATE,
        range="bytes=0-9",
    ),
    # --- Representation metadata (§8.3, §14.3, RFC 6266) ---------------------------------
    vec("14.3-accept-ranges-bytes-on-200", 200, {"Accept-Ranges": "bytes"}, body=CONTENT),
    vec(
        "14.3-accept-ranges-bytes-on-206",
        206,
        {"Accept-Ranges": "bytes"},
        body=part(0, 0),
        range="bytes=0-0",
    ),
    vec("8.3-content-type-from-extension", 200, {"Content-Type": "video/mp4"}, rep=REP_VIDEO),
    vec(
        "8.3-content-type-of-206-part-from-extension",
        206,
        {"Content-Type": "video/mp4", "Content-Range": "bytes 0-1/1000"},
        body=b"\x00\x01",
        rep=REP_VIDEO,
        range="bytes=0-1",
    ),
    vec(
        "8.4-tar-gz-is-application-gzip-without-content-encoding",
        200,
        {"Content-Type": "application/gzip", "Content-Encoding": None},
        body=CONTENT,
        rep=REP_TARGZ,
    ),
    vec(
        "8.4-tar-gz-range-without-content-encoding",
        206,
        {
            "Content-Type": "application/gzip",
            "Content-Encoding": None,
            "Content-Range": "bytes 0-9/1000",
        },
        body=part(0, 9),
        rep=REP_TARGZ,
        range="bytes=0-9",
    ),
    vec(
        "rfc6266-4.2-attachment-by-default",
        200,
        {"Content-Disposition": "attachment; filename=\"file.bin\"; filename*=UTF-8''file.bin"},
    ),
    vec(
        "rfc6266-4.2-inline-by-policy",
        200,
        {"Content-Disposition": "inline; filename=\"video.mp4\"; filename*=UTF-8''video.mp4"},
        rep=REP_VIDEO,
        policy=Policy(inline=True),
    ),
    vec("15.3.1-200-has-nosniff", 200, {"X-Content-Type-Options": "nosniff"}),
    vec("15.5.13-412-has-nosniff", 412, {"X-Content-Type-Options": "nosniff"}, if_match=OTHER_ETAG),
    vec(
        "rfc9111-5.2-cache-control-from-policy",
        200,
        {"Cache-Control": "public, max-age=60"},
        policy=Policy(cache_control="public, max-age=60"),
    ),
    vec(
        "15.4.5-304-cache-control-from-policy",
        304,
        {"Cache-Control": "private", "ETag": ETAG},
        policy=Policy(cache_control="private"),
        if_none_match=ETAG,
    ),
]

GET_VECTORS = [v for v in VECTORS if v.method == "GET"]


def test_vector_ids_are_unique() -> None:
    ids = [v.id for v in VECTORS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.id)
def test_status(vector: Vector) -> None:
    assert vector.plan().status == vector.status


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.id)
def test_selected_headers(vector: Vector) -> None:
    plan = vector.plan()
    for name, expected in vector.headers.items():
        assert header(plan, name) == expected, name


@pytest.mark.parametrize("vector", [v for v in VECTORS if v.body is not None], ids=lambda v: v.id)
def test_body_bytes(vector: Vector) -> None:
    assert execute(vector.plan(), content(vector.rep.size)) == vector.body


@pytest.mark.parametrize("vector", [v for v in VECTORS if v.parts is not None], ids=lambda v: v.id)
def test_multipart_parts_carry_the_requested_bytes(vector: Vector) -> None:
    assert vector.parts is not None
    plan = vector.plan()
    parts = split_multipart(execute(plan, content(vector.rep.size)), BOUNDARY)
    media_type = "video/mp4" if vector.rep is REP_VIDEO else OCTET
    assert [headers["Content-Range"] for headers, _ in parts] == [
        f"bytes {first}-{last}/{vector.rep.size}" for first, last in vector.parts
    ]
    assert all(headers["Content-Type"] == media_type for headers, _ in parts)
    data = content(vector.rep.size)
    assert [body for _, body in parts] == [data[first : last + 1] for first, last in vector.parts]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.id)
def test_content_length_is_the_bytes_produced(vector: Vector) -> None:
    plan = vector.plan(method="GET")
    produced = execute(plan, content(vector.rep.size))
    if plan.status == 304:
        assert produced == b""
        assert header(plan, "Content-Length") is None
    else:
        assert header(plan, "Content-Length") == str(len(produced))


@pytest.mark.parametrize("vector", GET_VECTORS, ids=lambda v: v.id)
def test_head_has_exactly_the_get_headers_and_no_body(vector: Vector) -> None:
    get, head = vector.plan("GET"), vector.plan("HEAD")
    assert head.status == get.status
    assert head.headers == get.headers
    assert head.body == ()
    assert not head.reads_file


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.id)
def test_boundary_is_drawn_only_for_multipart(vector: Vector) -> None:
    drawn: list[str] = []

    def boundary() -> str:
        drawn.append(BOUNDARY)
        return BOUNDARY

    plan = vector.plan(boundary=boundary)
    content_type = header(plan, "Content-Type") or ""
    assert len(drawn) == (1 if content_type.startswith("multipart/byteranges") else 0)


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS if v.status in (200, 206)], ids=lambda v: v.id
)
def test_success_carries_validators_and_representation_metadata(vector: Vector) -> None:
    plan = vector.plan()
    assert header(plan, "Accept-Ranges") == "bytes"
    assert header(plan, "ETag") == strong_etag(vector.rep)
    assert header(plan, "Cache-Control") == vector.policy.cache_control
    assert header(plan, "X-Content-Type-Options") == "nosniff"
    disposition = header(plan, "Content-Disposition")
    assert disposition is not None
    assert disposition.startswith("inline;" if vector.policy.inline else "attachment;")
    assert header(plan, "Content-Encoding") is None
    last_modified = header(plan, "Last-Modified")
    assert last_modified is not None
    seconds = parse_http_date(last_modified, now_year=2024)
    assert seconds is not None
    assert seconds <= vector.now  # §8.8.2.1


@pytest.mark.parametrize("vector", [v for v in VECTORS if v.status == 206], ids=lambda v: v.id)
def test_partial_content_has_content_range_xor_multipart(vector: Vector) -> None:
    plan = vector.plan()
    content_type = header(plan, "Content-Type")
    assert content_type is not None
    if content_type.startswith("multipart/byteranges"):
        assert header(plan, "Content-Range") is None  # §15.3.7.2
    else:
        content_range = header(plan, "Content-Range")
        assert content_range is not None
        assert content_range.startswith("bytes ")
        assert content_range.endswith(f"/{vector.rep.size}")


@pytest.mark.parametrize("vector", [v for v in VECTORS if v.status == 304], ids=lambda v: v.id)
def test_not_modified_sends_only_etag_and_cache_control(vector: Vector) -> None:
    plan = vector.plan()
    assert dict(plan.headers) == {"ETag": ETAG, "Cache-Control": vector.policy.cache_control}
    assert plan.body == ()


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS if v.status in (412, 416)], ids=lambda v: v.id
)
def test_errors_have_a_short_text_body_never_the_file(vector: Vector) -> None:
    plan = vector.plan(method="GET")
    assert not plan.reads_file
    body = execute(plan, content(vector.rep.size))
    assert 0 < len(body) < 100
    assert CONTENT[32:64] not in body
    assert header(plan, "Content-Type") == "text/plain; charset=utf-8"
    assert header(plan, "Content-Range") == (
        f"bytes */{vector.rep.size}" if vector.status == 416 else None
    )


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.id)
def test_header_values_are_single_line_ascii(vector: Vector) -> None:
    for name, value in vector.plan().headers:
        assert value.isascii(), name
        assert "\r" not in value
        assert "\n" not in value


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.id)
def test_every_served_span_lies_inside_the_file(vector: Vector) -> None:
    for segment in vector.plan().body:
        if isinstance(segment, Span):
            assert 0 <= segment.start < segment.stop <= vector.rep.size
