"""Properties of the pure core, for any input text, file size and modification time."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from service.sansio import Conditions, Plan, Policy, Representation, Span, plan_response
from service.sansio.multipart import body_length
from service.sansio.ranges import (
    COALESCE_GAP,
    RangeKind,
    coalesce,
    evaluate_range,
    parse_range_header,
)
from service.sansio.validators import parse_entity_tags, parse_http_date

BOUNDARY = "3d6b6a416f9b4f2b8e7c1a0d5e4f3a2b"
NOW = 1704168245  # Tue, 02 Jan 2024 04:04:05 GMT
MAX_SIZE = 10**12


def content(size: int) -> bytes:
    return bytes(i % 256 for i in range(size))


def execute(plan: Plan, data: bytes) -> bytes:
    return b"".join(s if isinstance(s, bytes) else data[s.start : s.stop] for s in plan.body)


def header(plan: Plan, name: str) -> str | None:
    return dict(plan.headers).get(name)


# --- strategies -------------------------------------------------------------------------

numerals = st.one_of(
    st.integers(min_value=0, max_value=2000).map(str),
    st.integers(min_value=0, max_value=10**40).map(str),
    st.text(alphabet="0123456789", min_size=1, max_size=60),
)
range_specs = st.one_of(
    st.tuples(numerals, numerals).map(lambda p: f"{p[0]}-{p[1]}"),
    numerals.map(lambda n: f"{n}-"),
    numerals.map(lambda n: f"-{n}"),
    st.text(alphabet="0123456789- \tx,\u0661", max_size=8),
)
range_units = st.sampled_from(["bytes", "Bytes", "BYTES", " bytes ", "items", "", "by tes"])
range_headers = st.one_of(
    st.builds(
        lambda unit, eq, specs, sep: f"{unit}{eq}{sep.join(specs)}",
        range_units,
        st.sampled_from(["=", "= ", " =", "", "=="]),
        st.lists(range_specs, max_size=20),
        st.sampled_from([",", ", ", " ,\t", ",,"]),
    ),
    st.text(),
    st.text(alphabet="bytes=0123456789-, \t", max_size=40),
)
sizes = st.one_of(
    st.integers(min_value=0, max_value=3000),
    st.integers(min_value=0, max_value=MAX_SIZE),
)
field_values = st.one_of(
    st.none(),  # absent half of the time, so that more plans get past the preconditions
    st.none(),
    st.text(),
    st.sampled_from(['"3e8-0"', "*", 'W/"x"', "Tue, 02 Jan 2024 03:04:05 GMT"]),
)
conditions = st.builds(
    Conditions,
    range=st.one_of(st.none(), range_headers),
    if_range=field_values,
    if_match=field_values,
    if_none_match=field_values,
    if_modified_since=field_values,
    if_unmodified_since=field_values,
)
policies = st.builds(
    Policy,
    max_ranges=st.integers(min_value=0, max_value=20),
    cache_control=st.just("no-cache"),
    inline=st.booleans(),
)
# Any st_mtime_ns: before year 1 and after year 9999 included (an HTTP-date cannot say).
mtimes = st.one_of(st.integers(), st.integers(min_value=-(10**20), max_value=10**20))
names = st.one_of(
    st.text(), st.sampled_from(["a.mp4", "a.tar.gz", "中文.mp4", "x\r\n.bin", "caf\udce9.txt"])
)


# --- the Range parser ---------------------------------------------------------------------


@given(st.text())
def test_parse_range_header_never_raises_on_any_text(value: str) -> None:
    specs = parse_range_header(value)
    assert specs is None or len(specs) > 0


@given(range_headers)
def test_parsed_specs_are_well_formed(value: str) -> None:
    specs = parse_range_header(value)
    for spec in specs or ():
        if spec.first is None:
            assert spec.last is not None
            assert spec.last >= 0
        else:
            assert spec.first >= 0
            assert spec.last is None or spec.last >= spec.first


@given(st.text(), sizes, st.integers(min_value=0, max_value=50))
def test_evaluate_range_never_raises_on_any_text(value: str, size: int, max_parts: int) -> None:
    evaluate_range(value, size, max_parts)


@given(range_headers, sizes, st.integers(min_value=0, max_value=50))
def test_served_spans_lie_inside_the_file_and_respect_the_part_limit(
    value: str, size: int, max_parts: int
) -> None:
    result = evaluate_range(value, size, max_parts)
    if result.kind is RangeKind.SATISFIABLE:
        assert 1 <= len(result.spans) <= max_parts
        for span in result.spans:
            assert 0 <= span.start < span.stop <= size
        if len(result.spans) > 1:
            assert sum(span.length for span in result.spans) <= size
    else:
        assert result.spans == ()
    if size == 0:
        assert result.kind is not RangeKind.SATISFIABLE
        assert result.kind is not RangeKind.UNSATISFIABLE


@given(range_headers, sizes)
def test_invalid_range_is_never_unsatisfiable(value: str, size: int) -> None:
    if parse_range_header(value) is None:
        assert evaluate_range(value, size, 16).kind is RangeKind.IGNORED


@given(
    st.lists(
        st.one_of(
            st.tuples(st.integers(0, 10**30), st.integers(0, 10**30)),
            # Near pairs: both sides are then often beyond the numeral cap together.
            st.tuples(st.integers(0, 10**30), st.integers(-1000, 1000)).map(
                lambda p: (p[0], max(0, p[0] + p[1]))
            ),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_last_before_first_is_invalid_however_large_the_numerals(
    pairs: list[tuple[int, int]],
) -> None:
    value = "bytes=" + ",".join(f"{first}-{last}" for first, last in pairs)
    any_reversed = any(last < first for first, last in pairs)
    assert (parse_range_header(value) is None) is any_reversed


# --- coalesce -------------------------------------------------------------------------------

span_lists = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2000), st.integers(min_value=1, max_value=300)
    ).map(lambda p: Span(p[0], p[0] + p[1])),
    max_size=25,
)


def covered(spans: tuple[Span, ...] | list[Span]) -> set[int]:
    return {i for span in spans for i in range(span.start, span.stop)}


def requested_plus_small_holes(spans: list[Span], gap: int) -> set[int]:
    """A model of coalescing: the requested bytes plus every hole no wider than ``gap``."""
    bytes_ = covered(spans)
    points = sorted(bytes_)
    for before, after in pairwise(points):
        if after - before - 1 <= gap:
            bytes_.update(range(before + 1, after))
    return bytes_


@given(span_lists)
def test_coalesce_without_gap_keeps_exactly_the_requested_bytes(spans: list[Span]) -> None:
    merged = coalesce(spans, gap=0)
    assert covered(merged) == covered(spans)
    assert sum(span.length for span in merged) == len(covered(spans))  # no byte twice


@given(span_lists, st.integers(min_value=0, max_value=200))
def test_coalesce_never_loses_or_invents_a_byte(spans: list[Span], gap: int) -> None:
    merged = coalesce(spans, gap)
    # Nothing requested is lost; the only added bytes fill holes of at most ``gap`` bytes.
    assert covered(merged) == requested_plus_small_holes(spans, gap)
    assert sum(span.length for span in merged) == len(covered(merged))


@given(span_lists)
def test_coalesce_with_the_default_gap_fills_only_holes_within_the_gap(spans: list[Span]) -> None:
    assert covered(coalesce(spans)) == requested_plus_small_holes(spans, COALESCE_GAP)


@given(span_lists, st.integers(min_value=0, max_value=200))
def test_coalesced_parts_are_disjoint_and_further_apart_than_the_gap(
    spans: list[Span], gap: int
) -> None:
    merged = sorted(coalesce(spans, gap), key=lambda s: s.start)
    for before, after in pairwise(merged):
        assert after.start - before.stop > gap


@given(span_lists, st.integers(min_value=0, max_value=200))
def test_coalesced_parts_follow_the_first_request_of_each_group(
    spans: list[Span], gap: int
) -> None:
    merged = coalesce(spans, gap)
    firsts = [
        min(i for i, s in enumerate(spans) if part.start <= s.start and s.stop <= part.stop)
        for part in merged
    ]
    assert firsts == sorted(firsts)
    assert len(set(merged)) == len(merged)


# --- plan_response ----------------------------------------------------------------------------


@given(
    st.sampled_from(["GET", "HEAD"]),
    conditions,
    st.builds(Representation, names, sizes, mtimes),
    policies,
    st.integers(min_value=0, max_value=4_102_444_800),
)
def test_plan_response_never_raises(
    method: str, cond: Conditions, rep: Representation, policy: Policy, now: int
) -> None:
    plan = plan_response(method, cond, rep, policy, now, lambda: BOUNDARY)
    assert plan.status in (200, 206, 304, 412, 416)
    for name, value in plan.headers:
        assert value.isascii(), name
        assert "\r" not in value
        assert "\n" not in value
    for segment in plan.body:
        if isinstance(segment, Span):
            assert 0 <= segment.start < segment.stop <= rep.size
    if method == "HEAD":
        assert plan.body == ()
    elif plan.status == 304:
        assert plan.body == ()
        assert header(plan, "Content-Length") is None
    else:
        assert header(plan, "Content-Length") == str(body_length(plan.body))
    last_modified = header(plan, "Last-Modified")
    if last_modified is not None:
        seconds = parse_http_date(last_modified, now_year=2024)
        assert seconds is not None
        assert seconds <= now
    etag = header(plan, "ETag")
    if etag is not None:
        assert parse_entity_tags(etag) == (rep.etag,)


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=3000), st.integers(min_value=0, max_value=400)
        ),
        min_size=2,
        max_size=20,
    ),
    st.integers(min_value=1, max_value=3000),
)
def test_multipart_content_length_equals_the_bytes_produced(
    pairs: list[tuple[int, int]], size: int
) -> None:
    value = "bytes=" + ",".join(f"{first}-{first + length}" for first, length in pairs)
    rep = Representation("f.bin", size, 1704164645 * 10**9)
    plan = plan_response("GET", Conditions(range=value), rep, Policy(), NOW, lambda: BOUNDARY)
    data = content(size)
    produced = execute(plan, data)
    assert header(plan, "Content-Length") == str(len(produced))
    content_type = header(plan, "Content-Type") or ""
    if content_type.startswith("multipart/byteranges"):
        assert content_type == f"multipart/byteranges; boundary={BOUNDARY}"
        assert header(plan, "Content-Range") is None
        assert produced.startswith(f"--{BOUNDARY}\r\n".encode())
        assert produced.endswith(f"\r\n--{BOUNDARY}--\r\n".encode())
        spans = [s for s in plan.body if isinstance(s, Span)]
        assert len(spans) >= 2
        for span in spans:
            assert (
                f"Content-Range: bytes {span.start}-{span.stop - 1}/{size}\r\n".encode() in produced
            )
            assert data[span.start : span.stop] in produced
    elif plan.status == 206:
        (only,) = plan.body
        assert isinstance(only, Span)
        assert header(plan, "Content-Range") == f"bytes {only.start}-{only.stop - 1}/{size}"
        assert produced == data[only.start : only.stop]
    elif plan.status == 200:
        assert produced == data


@given(conditions, sizes, mtimes)
def test_head_has_exactly_the_get_headers(cond: Conditions, size: int, mtime_ns: int) -> None:
    rep = Representation("f.bin", size, mtime_ns)
    get = plan_response("GET", cond, rep, Policy(), NOW, lambda: BOUNDARY)
    head = plan_response("HEAD", cond, rep, Policy(), NOW, lambda: BOUNDARY)
    assert (head.status, head.headers, head.body) == (get.status, get.headers, ())


@given(st.text(), sizes)
def test_preconditions_decide_before_the_range(value: str, size: int) -> None:
    rep = Representation("f.bin", size, 1704164645 * 10**9)
    etag = str(rep.etag)
    not_modified = plan_response(
        "GET", Conditions(range=value, if_none_match=etag), rep, Policy(), NOW
    )
    failed = plan_response("GET", Conditions(range=value, if_match='"nope"'), rep, Policy(), NOW)
    assert not_modified.status == 304
    assert failed.status == 412
