"""Entity-tags (RFC 9110 §8.8.3) and HTTP-dates (§5.6.7)."""

from __future__ import annotations

import calendar

import pytest

from service.sansio.validators import (
    ANY,
    EntityTag,
    format_http_date,
    make_etag,
    parse_entity_tags,
    parse_http_date,
    strong_match,
    weak_match,
)

MTIME = 1704164645  # Tue, 02 Jan 2024 03:04:05 GMT

# --- entity-tags ------------------------------------------------------------------------


def test_strong_tag_prints_quoted() -> None:
    assert str(EntityTag("abc")) == '"abc"'


def test_weak_tag_prints_with_w_slash_prefix() -> None:
    assert str(EntityTag("abc", weak=True)) == 'W/"abc"'


def test_etag_is_strong_hex_size_and_hex_mtime_ns() -> None:
    tag = make_etag(1000, 1704164645_123456789)
    assert tag == EntityTag("3e8-17a668b7375cff15")
    assert not tag.weak


def test_etag_changes_with_size_and_with_nanoseconds() -> None:
    base = make_etag(1000, 10**18)
    assert make_etag(1001, 10**18) != base
    assert make_etag(1000, 10**18 + 1) != base


def test_etag_of_zero_length_file_at_epoch() -> None:
    assert str(make_etag(0, 0)) == '"0-0"'


@pytest.mark.parametrize("value", ["*", " *", "*\t", " \t* "])
def test_star_parses_to_any(value: str) -> None:
    assert parse_entity_tags(value) == ANY


@pytest.mark.parametrize(
    ("value", "tags"),
    [
        ('"abc"', [("abc", False)]),
        ('W/"abc"', [("abc", True)]),
        ('""', [("", False)]),
        ('W/""', [("", True)]),
        ('"a", "b"', [("a", False), ("b", False)]),
        ('"a",W/"b" ,\t"c"', [("a", False), ("b", True), ("c", False)]),
        ('"a",,"b"', [("a", False), ("b", False)]),
        ('"x-y/z!#~"', [("x-y/z!#~", False)]),
        ('"caf\xe9"', [("caf\xe9", False)]),  # obs-text (%x80-FF) is etagc
    ],
)
def test_entity_tag_lists_parse(value: str, tags: list[tuple[str, bool]]) -> None:
    assert parse_entity_tags(value) == tuple(EntityTag(o, weak=w) for o, w in tags)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",
        '"abc',
        'abc"',
        "'abc'",
        'w/"abc"',  # the weak indicator is case-sensitive (%s"W/")
        'W /"abc"',
        'W/ "abc"',
        '"a"b"',
        '"a b"',  # SP is not etagc
        '"a\tb"',
        '"\u20ac"',  # beyond obs-text
        '"a"x',
        "**",
        '"a"; "b"',
    ],
)
def test_invalid_entity_tags_are_skipped(value: str) -> None:
    assert parse_entity_tags(value) == ()


def test_invalid_members_are_skipped_and_valid_ones_kept() -> None:
    assert parse_entity_tags('bogus, "ok", w/"no"') == (EntityTag("ok"),)


def test_star_inside_a_list_is_not_any() -> None:
    assert parse_entity_tags('*, "a"') == (EntityTag("a"),)


# §8.8.3.2, the comparison table.
@pytest.mark.parametrize(
    ("a", "b", "strong", "weak"),
    [
        (EntityTag("1", weak=True), EntityTag("1", weak=True), False, True),
        (EntityTag("1", weak=True), EntityTag("2", weak=True), False, False),
        (EntityTag("1", weak=True), EntityTag("1"), False, True),
        (EntityTag("1"), EntityTag("1"), True, True),
        (EntityTag("1"), EntityTag("2"), False, False),
        (EntityTag("1"), EntityTag("1", weak=True), False, True),
    ],
)
def test_entity_tag_comparison_table_of_8_8_3_2(
    a: EntityTag, b: EntityTag, strong: bool, weak: bool
) -> None:
    assert strong_match(a, b) is strong
    assert strong_match(b, a) is strong
    assert weak_match(a, b) is weak
    assert weak_match(b, a) is weak


def test_opaque_tag_comparison_is_case_sensitive() -> None:
    assert not weak_match(EntityTag("abc"), EntityTag("ABC"))


# --- HTTP-date --------------------------------------------------------------------------


def test_format_is_imf_fixdate() -> None:
    assert format_http_date(MTIME) == "Tue, 02 Jan 2024 03:04:05 GMT"
    assert format_http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"


@pytest.mark.parametrize("seconds", [0, 1, MTIME, 951782400, 4102444799, -1, -2208988800])
def test_formatted_date_parses_back(seconds: int) -> None:
    assert parse_http_date(format_http_date(seconds), now_year=2024) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "Tue, 02 Jan 2024 03:04:05 GMT",  # IMF-fixdate
        "Tuesday, 02-Jan-24 03:04:05 GMT",  # obsolete RFC 850
        "Tue Jan  2 03:04:05 2024",  # ANSI C asctime()
        "Tue Jan 02 03:04:05 2024",
        " Tue, 02 Jan 2024 03:04:05 GMT\t",  # OWS around the field value
    ],
)
def test_all_three_date_formats_are_accepted(value: str) -> None:
    assert parse_http_date(value, now_year=2024) == MTIME


@pytest.mark.parametrize(
    ("two_digits", "now_year", "year"),
    [
        ("24", 2024, 2024),
        ("00", 2024, 2000),
        ("73", 2024, 2073),  # 49 years ahead: taken as it is
        ("76", 2024, 1976),  # 52 years ahead: the most recent past year ending in 76
        ("99", 2024, 1999),
        ("70", 1999, 1970),
        ("01", 1999, 1901),  # 1901 is in the past, never more than 50 years ahead
        ("49", 2001, 2049),
        ("52", 2001, 1952),
        ("10", 2080, 2010),
        ("99", 2080, 2099),
    ],
)
def test_rfc850_two_digit_year_more_than_50_years_ahead_is_in_the_past(
    two_digits: str, now_year: int, year: int
) -> None:
    value = f"Sunday, 01-Jun-{two_digits} 12:00:00 GMT"
    assert parse_http_date(value, now_year=now_year) == calendar.timegm((year, 6, 1, 12, 0, 0))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "0",
        "1704164645",
        "2024-01-02T03:04:05Z",
        "Fri, 30 Feb 2024 00:00:00 GMT",  # no such day
        "Thu, 29 Feb 2023 00:00:00 GMT",  # 2023 is not a leap year
        "Tue, 31 Apr 2024 00:00:00 GMT",
        "Tue, 32 Jan 2024 00:00:00 GMT",
        "Tue, 00 Jan 2024 00:00:00 GMT",
        "Tue, 02 Jan 2024 24:00:00 GMT",
        "Tue, 02 Jan 2024 23:60:00 GMT",
        "Tue, 02 Jan 2024 23:59:61 GMT",
        "Tue, 02 Jan 0000 00:00:00 GMT",
        "Tue, 02 Foo 2024 03:04:05 GMT",
        "Tue, 02 jan 2024 03:04:05 GMT",  # month names are case-sensitive
        "tue, 02 Jan 2024 03:04:05 GMT",
        "Tue, 02 Jan 2024 03:04:05 gmt",
        "Tue, 02 Jan 2024 03:04:05 UTC",
        "Tue, 02 Jan 2024 03:04:05 +0000",
        "Tue, 02 Jan 2024 03:04:05",
        "Tue, 2 Jan 2024 03:04:05 GMT",  # IMF-fixdate needs a 2-digit day
        "Tue, 02 Jan 24 03:04:05 GMT",
        "Tue,  02 Jan 2024 03:04:05 GMT",
        "Tue, 02 Jan 2024 3:04:05 GMT",
        "Tuesday, 02 Jan 2024 03:04:05 GMT",
        "Tue, 02-Jan-24 03:04:05 GMT",  # rfc850 needs the long day name
        "Tuesday, 02-Jan-2024 03:04:05 GMT",
        "Tue Jan 2 03:04:05 2024",  # asctime pads the day with a space
        "Tue Jan  2 03:04:05 2024 GMT",
        "Tue, 02 Jan 2024 03:04:05 GMT, Wed, 03 Jan 2024 03:04:05 GMT",  # a list
        "Tue, \u0660\u0662 Jan 2024 03:04:05 GMT",  # Arabic-Indic digits are not DIGIT
        "Tue, 02 Jan \uff12\uff10\uff12\uff14 03:04:05 GMT",  # fullwidth digits
        "Tue, 02 Jan 2024 03:04:05 GMT\x00",
    ],
)
def test_invalid_dates_parse_to_none(value: str) -> None:
    assert parse_http_date(value, now_year=2024) is None


def test_leap_day_of_a_leap_year_is_valid() -> None:
    assert parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT", now_year=2024) == calendar.timegm(
        (2024, 2, 29, 0, 0, 0)
    )


def test_first_and_last_representable_years_parse() -> None:
    assert parse_http_date("Mon, 01 Jan 0001 00:00:00 GMT", now_year=2024) == -62135596800
    assert parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT", now_year=2024) == 253402300799
