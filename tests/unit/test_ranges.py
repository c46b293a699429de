"""The Range grammar (RFC 9110 §14.1-§14.2) and the choice of spans."""

from __future__ import annotations

import pytest

from service.sansio.ranges import (
    COALESCE_GAP,
    IGNORED,
    NO_RANGE,
    UNSATISFIABLE,
    RangeKind,
    RangeSpec,
    Span,
    coalesce,
    evaluate_range,
    parse_range_header,
    select_spans,
)

# --- Span ---------------------------------------------------------------------------------


def test_span_length_is_stop_minus_start() -> None:
    assert Span(10, 20).length == 10


def test_span_content_range_uses_inclusive_last_position() -> None:
    assert Span(0, 1).content_range(1000) == "bytes 0-0/1000"
    assert Span(500, 1000).content_range(1000) == "bytes 500-999/1000"


@pytest.mark.parametrize(("start", "stop"), [(0, 0), (5, 5), (5, 4), (-1, 3), (-5, -1)])
def test_empty_or_negative_span_cannot_be_built(start: int, stop: int) -> None:
    with pytest.raises(ValueError, match="invalid span"):
        Span(start, stop)


# --- parse_range_header -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "specs"),
    [
        ("bytes=0-499", [(0, 499)]),
        ("bytes=0-0", [(0, 0)]),
        ("bytes=0-", [(0, None)]),
        ("bytes=9500-", [(9500, None)]),
        ("bytes=-500", [(None, 500)]),
        ("bytes=-0", [(None, 0)]),
        ("bytes=5-5", [(5, 5)]),
        ("bytes=0-9,20-29", [(0, 9), (20, 29)]),
        ("bytes=20-29,0-9", [(20, 29), (0, 9)]),
        ("bytes=0-9,0-9", [(0, 9), (0, 9)]),
        ("bytes= 0-999, 4500-5499, -1000", [(0, 999), (4500, 5499), (None, 1000)]),
        ("Bytes=1-2", [(1, 2)]),
        ("BYTES=1-2", [(1, 2)]),
        ("bYtEs=1-2", [(1, 2)]),
        ("bytes =1-2", [(1, 2)]),
        (" bytes=1-2 ", [(1, 2)]),
        ("bytes=\t1-2\t", [(1, 2)]),
        ("bytes=1 - 2", [(1, 2)]),
        ("bytes=1 -", [(1, None)]),
        ("bytes=- 2", [(None, 2)]),
        ("bytes=0-9,,20-29", [(0, 9), (20, 29)]),
        ("bytes=,0-9", [(0, 9)]),
        ("bytes=0-9,", [(0, 9)]),
        ("bytes=0-9, ,\t,20-29", [(0, 9), (20, 29)]),
        ("bytes=007-010", [(7, 10)]),
        ("bytes=0000-", [(0, None)]),
    ],
)
def test_valid_range_headers_parse_to_specs(
    value: str, specs: list[tuple[int | None, int | None]]
) -> None:
    assert parse_range_header(value) == tuple(RangeSpec(first, last) for first, last in specs)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "bytes",
        "bytes=",
        "bytes=,",
        "bytes= , ",
        "=0-1",
        "bytes 0-1",
        "bytes:0-1",
        "items=0-1",
        "pages=1-2",
        "bytesx=0-1",
        "xbytes=0-1",
        "by tes=0-1",
        "bytes;=0-1",
        "bytes=9-0",
        "bytes=1-0",
        "bytes=abc",
        "bytes=a-b",
        "bytes=-",
        "bytes=--1",
        "bytes=1--2",
        "bytes=-5-10",
        "bytes=1-2-3",
        "bytes=0x10-0x20",
        "bytes=1e3-2e3",
        "bytes=1.5-2",
        "bytes=+1-2",
        "bytes=1-+2",
        "bytes=0-9;20-29",
        "bytes=0-9 20-29",
        "bytes=\u0661-\u0662",  # ARABIC-INDIC DIGIT ONE, TWO
        "bytes=\uff10-\uff19",  # FULLWIDTH DIGIT ZERO, NINE
        "bytes=\u00b9-\u00b2",  # SUPERSCRIPT ONE, TWO
        "bytes=0-\u0669",
        "bytes=0-9,9-0",
        "bytes=0-9,abc",
        "bytes=0-9,-",
        "bytes=0-9\x00",
        "bytes==0-9",
        "bytes=0-9\r\n",
    ],
)
def test_invalid_syntax_or_unknown_unit_parses_to_none(value: str) -> None:
    assert parse_range_header(value) is None


def test_huge_first_pos_is_capped_beyond_any_file_size() -> None:
    specs = parse_range_header("bytes=" + "9" * 10_000 + "-")
    assert specs is not None
    (spec,) = specs
    assert spec.first is not None
    assert spec.first > 10**18
    assert spec.last is None


def test_huge_numerals_keep_their_order_when_last_is_capped() -> None:
    # Both sides capped at the same ceiling: first <= last still holds, so it stays valid.
    specs = parse_range_header("bytes=" + "9" * 100 + "-" + "9" * 200)
    assert specs is not None
    assert specs[0].resolve(1000) is None


@pytest.mark.parametrize(
    "value",
    [
        "bytes=" + "9" * 30 + "-" + "9" * 25,
        "bytes=10000000000000000000000000009-10000000000000000000000000005",
        "bytes=0-9," + "2" * 50 + "-" + "1" * 50,
    ],
)
def test_last_before_first_is_invalid_even_beyond_the_numeral_cap(value: str) -> None:
    assert parse_range_header(value) is None
    assert evaluate_range(value, 1000, 16) == IGNORED  # never 416


def test_huge_last_pos_with_small_first_is_valid() -> None:
    assert parse_range_header("bytes=5-" + "9" * 1000) is not None


def test_leading_zeros_do_not_count_towards_the_numeral_cap() -> None:
    assert parse_range_header("bytes=" + "0" * 500 + "7-" + "0" * 500 + "9") == (RangeSpec(7, 9),)


# --- RangeSpec.resolve --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "size", "span"),
    [
        (0, 499, 1000, (0, 500)),
        (0, 0, 1000, (0, 1)),
        (999, 999, 1000, (999, 1000)),
        (0, None, 1000, (0, 1000)),
        (500, None, 1000, (500, 1000)),
        (999, None, 1000, (999, 1000)),
        (500, 5000, 1000, (500, 1000)),
        (0, 1000, 1000, (0, 1000)),
        (0, 999, 1000, (0, 1000)),
        (None, 1, 1000, (999, 1000)),
        (None, 500, 1000, (500, 1000)),
        (None, 1000, 1000, (0, 1000)),
        (None, 2000, 1000, (0, 1000)),
        (None, 10**30, 1000, (0, 1000)),
        (0, 0, 1, (0, 1)),
        (None, 1, 1, (0, 1)),
        (None, 5, 1, (0, 1)),
    ],
)
def test_satisfiable_spec_resolves_to_half_open_span(
    first: int | None, last: int | None, size: int, span: tuple[int, int]
) -> None:
    assert RangeSpec(first, last).resolve(size) == Span(*span)


@pytest.mark.parametrize(
    ("first", "last", "size"),
    [
        (1000, None, 1000),
        (1000, 1999, 1000),
        (5000, 6000, 1000),
        (None, 0, 1000),
        (0, None, 0),
        (0, 0, 0),
        (None, 5, 0),
        (None, 0, 0),
        (10**30, None, 1000),
    ],
)
def test_unsatisfiable_spec_resolves_to_none(
    first: int | None, last: int | None, size: int
) -> None:
    assert RangeSpec(first, last).resolve(size) is None


# --- coalesce -----------------------------------------------------------------------------


def spans(*pairs: tuple[int, int]) -> tuple[Span, ...]:
    return tuple(Span(start, stop) for start, stop in pairs)


def test_coalesce_of_nothing_is_nothing() -> None:
    assert coalesce(()) == ()


def test_coalesce_keeps_a_single_span() -> None:
    assert coalesce(spans((5, 10))) == spans((5, 10))


def test_overlapping_spans_merge() -> None:
    assert coalesce(spans((0, 100), (50, 150))) == spans((0, 150))


def test_contained_span_is_absorbed() -> None:
    assert coalesce(spans((0, 200), (50, 60))) == spans((0, 200))


def test_duplicate_spans_merge() -> None:
    assert coalesce(spans((10, 20), (10, 20), (10, 20))) == spans((10, 20))


def test_adjacent_spans_merge() -> None:
    assert coalesce(spans((0, 10), (10, 20))) == spans((0, 20))


def test_spans_with_a_gap_smaller_than_the_part_overhead_merge() -> None:
    gap = COALESCE_GAP - 1
    assert coalesce(spans((0, 10), (10 + gap, 20 + gap))) == spans((0, 20 + gap))


def test_spans_further_apart_than_the_gap_stay_separate() -> None:
    gap = COALESCE_GAP + 1
    assert coalesce(spans((0, 10), (10 + gap, 20 + gap))) == spans((0, 10), (10 + gap, 20 + gap))


def test_coalesce_keeps_request_order() -> None:
    assert coalesce(spans((500, 510), (0, 10), (250, 260))) == spans(
        (500, 510), (0, 10), (250, 260)
    )


def test_merged_part_takes_the_position_of_its_earliest_requested_member() -> None:
    merged = coalesce(spans((900, 910), (500, 510), (300, 310), (0, 10), (505, 600)))
    assert merged == spans((900, 910), (500, 600), (300, 310), (0, 10))


def test_chain_of_near_spans_merges_transitively() -> None:
    assert coalesce(spans((0, 10), (60, 70), (120, 130), (180, 190))) == spans((0, 190))


def test_custom_gap_zero_merges_only_touching_or_overlapping() -> None:
    assert coalesce(spans((0, 10), (10, 20), (21, 30)), gap=0) == spans((0, 20), (21, 30))


# --- select_spans and evaluate_range ------------------------------------------------------


def test_no_range_header_means_plain_response() -> None:
    assert evaluate_range(None, 1000, 16) == NO_RANGE
    assert NO_RANGE.kind is RangeKind.NONE


def test_range_on_zero_length_file_is_ignored() -> None:
    for value in ("bytes=0-", "bytes=-5", "bytes=0-0", "bytes=-0", "items=1-2"):
        assert evaluate_range(value, 0, 16) == IGNORED


def test_invalid_range_is_ignored_not_unsatisfiable() -> None:
    for value in ("bytes=9-0", "bytes=abc", "bytes=-", "items=0-1", "bytes=0x1-0x2"):
        assert evaluate_range(value, 1000, 16) == IGNORED


def test_single_range_covering_the_whole_file_is_still_partial() -> None:
    result = evaluate_range("bytes=0-", 1000, 16)
    assert result.kind is RangeKind.SATISFIABLE
    assert result.spans == spans((0, 1000))


def test_all_members_unsatisfiable_is_unsatisfiable() -> None:
    assert evaluate_range("bytes=1000-,-0,5000-6000", 1000, 16) == UNSATISFIABLE


def test_unsatisfiable_members_are_dropped() -> None:
    result = evaluate_range("bytes=2000-,0-9,-0,500-509", 1000, 16)
    assert result.kind is RangeKind.SATISFIABLE
    assert result.spans == spans((0, 10), (500, 510))


def test_ranges_summing_beyond_the_file_are_ignored() -> None:
    assert evaluate_range("bytes=0-,0-", 1000, 16) == IGNORED
    assert evaluate_range("bytes=0-599,400-999", 1000, 16) == IGNORED


def test_ranges_summing_to_exactly_the_file_are_served() -> None:
    result = evaluate_range("bytes=0-499,500-999", 1000, 16)
    assert result.kind is RangeKind.SATISFIABLE
    assert result.spans == spans((0, 1000))


def test_sum_check_counts_only_satisfiable_members() -> None:
    result = evaluate_range("bytes=0-9,2000-,-0,500-509", 1000, 16)
    assert result.kind is RangeKind.SATISFIABLE


def test_more_parts_than_the_limit_are_ignored() -> None:
    specs = tuple(RangeSpec(i * 200, i * 200 + 9) for i in range(5))
    assert select_spans(specs, 1000, 4) == IGNORED
    assert select_spans(specs, 1000, 5).kind is RangeKind.SATISFIABLE


def test_part_limit_applies_after_coalescing() -> None:
    specs = tuple(RangeSpec(i * 10, i * 10 + 9) for i in range(10))
    result = select_spans(specs, 1000, 1)
    assert result.kind is RangeKind.SATISFIABLE
    assert result.spans == spans((0, 100))


def test_zero_part_limit_turns_ranges_off() -> None:
    assert evaluate_range("bytes=0-9", 1000, 0) == IGNORED


def test_a_single_range_is_never_subject_to_the_sum_check() -> None:
    result = evaluate_range("bytes=-5000", 1000, 16)
    assert result.spans == spans((0, 1000))
