"""Conditional requests: one predicate per header (§13.1) and the order of §13.2.2."""

from __future__ import annotations

import pytest

from service.sansio.preconditions import (
    Outcome,
    Validators,
    evaluate,
    if_match_passes,
    if_modified_since_passes,
    if_none_match_passes,
    if_range_allows,
    if_unmodified_since_passes,
)
from service.sansio.validators import EntityTag

LM = 1704164645  # Tue, 02 Jan 2024 03:04:05 GMT
LM_DATE = "Tue, 02 Jan 2024 03:04:05 GMT"
BEFORE = "Tue, 02 Jan 2024 03:04:04 GMT"
AFTER = "Tue, 02 Jan 2024 03:04:06 GMT"
TAG = EntityTag("3e8-abc")
ETAG = '"3e8-abc"'
OTHER = '"3e8-def"'
VALIDATORS = Validators(etag=TAG, last_modified=LM, now=LM + 3600)


# --- If-Match (§13.1.1): strong comparison -----------------------------------------------


@pytest.mark.parametrize(
    ("value", "passes"),
    [
        (ETAG, True),
        ("*", True),
        (" * ", True),
        (f'"a", {ETAG}', True),
        (f"{OTHER},{ETAG}", True),
        (OTHER, False),
        (f'"a", {OTHER}', False),
        (f"W/{ETAG}", False),  # a weak tag never matches strongly
        (f"W/{ETAG}, W/{ETAG}", False),
        ('"3E8-ABC"', False),
        ("3e8-abc", False),  # unquoted
        ("", False),
        ("garbage", False),
    ],
)
def test_if_match_uses_strong_comparison(value: str, passes: bool) -> None:
    assert if_match_passes(value, VALIDATORS) is passes


# --- If-None-Match (§13.1.2): weak comparison --------------------------------------------


@pytest.mark.parametrize(
    ("value", "passes"),
    [
        (ETAG, False),
        (f"W/{ETAG}", False),  # weak comparison: W/"x" matches "x"
        ("*", False),
        (f'"a", {ETAG}', False),
        (f'W/"a", W/{ETAG}', False),
        (OTHER, True),
        (f"W/{OTHER}", True),
        ('"a", "b"', True),
        ("garbage", True),  # nothing valid to match
        ("", True),
    ],
)
def test_if_none_match_uses_weak_comparison(value: str, passes: bool) -> None:
    assert if_none_match_passes(value, VALIDATORS) is passes


# --- If-Modified-Since (§13.1.3) and If-Unmodified-Since (§13.1.4) ------------------------


@pytest.mark.parametrize(
    ("value", "passes"),
    [
        (BEFORE, True),  # modified since then: send it
        (LM_DATE, False),  # Last-Modified <= date: 304
        (AFTER, False),
        ("Tuesday, 02-Jan-24 03:04:05 GMT", False),
        ("Tue Jan  2 03:04:05 2024", False),
        ("Tue Jan  2 03:04:04 2024", True),
        ("not a date", True),  # invalid: ignored
        ("Fri, 30 Feb 2024 00:00:00 GMT", True),
        (f"{AFTER}, {AFTER}", True),  # more than one member: ignored
    ],
)
def test_if_modified_since(value: str, passes: bool) -> None:
    assert if_modified_since_passes(value, VALIDATORS) is passes


@pytest.mark.parametrize(
    ("value", "passes"),
    [
        (BEFORE, False),  # changed after the date: 412
        (LM_DATE, True),
        (AFTER, True),
        ("Tuesday, 02-Jan-24 03:04:04 GMT", False),
        ("Tue Jan  2 03:04:04 2024", False),
        ("not a date", True),  # invalid: ignored
        ("Fri, 30 Feb 2024 00:00:00 GMT", True),
        (f"{BEFORE}, {BEFORE}", True),
    ],
)
def test_if_unmodified_since(value: str, passes: bool) -> None:
    assert if_unmodified_since_passes(value, VALIDATORS) is passes


def test_rfc850_year_is_read_relative_to_the_response_date() -> None:
    # Date in 2090: "24" is 66 years back and still 2024 ("75" would be 2075).
    later = Validators(etag=TAG, last_modified=LM, now=3_786_825_600)  # 2090-01-01
    assert not if_modified_since_passes("Tuesday, 02-Jan-24 03:04:05 GMT", later)


# --- evaluate: the order of §13.2.2 ---------------------------------------------------------

PROCEED = Outcome.PROCEED
NOT_MODIFIED = Outcome.NOT_MODIFIED
FAILED = Outcome.PRECONDITION_FAILED


@pytest.mark.parametrize(
    ("if_match", "if_unmodified_since", "if_none_match", "if_modified_since", "outcome"),
    [
        (None, None, None, None, PROCEED),
        (ETAG, None, None, None, PROCEED),
        (OTHER, None, None, None, FAILED),
        (None, BEFORE, None, None, FAILED),
        (None, AFTER, None, None, PROCEED),
        (ETAG, BEFORE, None, None, PROCEED),  # step 2 only without If-Match
        ("*", BEFORE, None, None, PROCEED),
        (OTHER, AFTER, None, None, FAILED),
        (None, None, ETAG, None, NOT_MODIFIED),
        (None, None, OTHER, None, PROCEED),
        (None, None, None, LM_DATE, NOT_MODIFIED),
        (None, None, None, BEFORE, PROCEED),
        (None, None, OTHER, AFTER, PROCEED),  # step 4 only without If-None-Match
        (None, None, ETAG, BEFORE, NOT_MODIFIED),
        (OTHER, None, ETAG, None, FAILED),  # step 1 before step 3
        (None, BEFORE, ETAG, None, FAILED),  # step 2 before step 3
        (None, BEFORE, None, LM_DATE, FAILED),  # step 2 before step 4
        (ETAG, None, ETAG, None, NOT_MODIFIED),
        (ETAG, AFTER, None, AFTER, NOT_MODIFIED),
        ("*", None, "*", None, NOT_MODIFIED),
        (None, "garbage", None, "garbage", PROCEED),
    ],
)
def test_evaluation_order_of_13_2_2(
    if_match: str | None,
    if_unmodified_since: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
    outcome: Outcome,
) -> None:
    assert (
        evaluate(
            if_match=if_match,
            if_none_match=if_none_match,
            if_modified_since=if_modified_since,
            if_unmodified_since=if_unmodified_since,
            validators=VALIDATORS,
        )
        is outcome
    )


# --- If-Range (§13.1.5) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "allows"),
    [
        (ETAG, True),
        (f" {ETAG}", True),
        (OTHER, False),
        (f"W/{ETAG}", False),  # a weak tag never matches
        (f"{ETAG}, {ETAG}", False),  # a list is not an entity-tag
        ("*", False),
        ('"3E8-ABC"', False),
        (f"{ETAG} junk", False),
        (LM_DATE, True),  # the exact Last-Modified
        ("Tuesday, 02-Jan-24 03:04:05 GMT", True),
        ("Tue Jan  2 03:04:05 2024", True),
        (AFTER, False),  # not the <= of If-Unmodified-Since: only an exact date matches
        (BEFORE, False),
        ("not a date", False),
        ("", False),
    ],
)
def test_if_range_needs_a_strong_exact_validator(value: str, allows: bool) -> None:
    assert if_range_allows(value, VALIDATORS) is allows


def test_if_range_date_is_weak_when_last_modified_is_the_current_second() -> None:
    same_second = Validators(etag=TAG, last_modified=LM, now=LM)
    assert not if_range_allows(LM_DATE, same_second)


def test_if_range_date_is_strong_one_second_after_last_modified() -> None:
    one_later = Validators(etag=TAG, last_modified=LM, now=LM + 1)
    assert if_range_allows(LM_DATE, one_later)


def test_if_range_etag_does_not_depend_on_the_date() -> None:
    same_second = Validators(etag=TAG, last_modified=LM, now=LM)
    assert if_range_allows(ETAG, same_second)


def test_if_range_with_a_quote_in_the_first_three_characters_is_an_entity_tag() -> None:
    # 'W/"' starts an entity-tag even though it is weak; it is then never a date.
    assert not if_range_allows('W/"' + LM_DATE + '"', VALIDATORS)
