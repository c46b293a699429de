"""Validators: entity-tags (RFC 9110 §8.8.3) and HTTP-dates (§5.6.7).

Entity-tag lists parse leniently: an element that is not a valid entity-tag is skipped,
so it can never match. Dates parse strictly: anything that is not one of the three
HTTP-date forms is None, and the caller then ignores the header (§13.1.3, §13.1.4).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from email.utils import formatdate
from functools import lru_cache

ANY = "*"
#: Longer entity-tag lists parse as empty: they never match, so If-Match fails (412)
#: and If-None-Match passes (200) - the safe side of each - without parsing them.
MAX_TAGS = 256

_ENTITY_TAG = re.compile(r'[ \t]*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*')


@dataclass(frozen=True, slots=True)
class EntityTag:
    opaque: str  # without the quotes
    weak: bool = False

    def __str__(self) -> str:
        return f'{"W/" if self.weak else ""}"{self.opaque}"'


@lru_cache(maxsize=4096)  # an EntityTag is immutable: the same one serves every request
def make_etag(size: int, mtime_ns: int) -> EntityTag:
    """A strong tag from size and mtime in nanoseconds; no inode, so replicas agree."""
    return EntityTag(f"{size:x}-{mtime_ns:x}")


def parse_entity_tags(value: str) -> tuple[EntityTag, ...] | str:
    """``*`` as the string :data:`ANY`, else the valid entity-tags of a list."""
    if value.strip(" \t") == ANY:
        return ANY
    if value.count(",") >= MAX_TAGS:
        return ()
    tags = []
    for element in value.split(","):
        match = _ENTITY_TAG.fullmatch(element)
        if match is not None:
            tags.append(EntityTag(match.group(2), weak=match.group(1) is not None))
    return tuple(tags)


def strong_match(a: EntityTag, b: EntityTag) -> bool:
    """§8.8.3.2: both strong and identical."""
    return not a.weak and not b.weak and a.opaque == b.opaque


def weak_match(a: EntityTag, b: EntityTag) -> bool:
    """§8.8.3.2: identical opaque-tags, either or both may be weak."""
    return a.opaque == b.opaque


@lru_cache(maxsize=4096)  # a few mtimes and the current second cover most requests
def format_http_date(seconds: int) -> str:
    """IMF-fixdate, the preferred HTTP-date form (§5.6.7)."""
    return formatdate(seconds, usegmt=True)


_MONTHS = {name: i for i, name in enumerate(calendar.month_abbr) if name}
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MONTH = r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = r"(\d\d):(\d\d):(\d\d)"
# re.ASCII: DIGIT is 0-9 only (RFC 5234); a Unicode \d would accept e.g. Arabic-Indic digits.
_IMF_FIXDATE = re.compile(rf"{_DAY}, (\d\d) {_MONTH} (\d{{4}}) {_TIME} GMT", re.ASCII)
_RFC850_DATE = re.compile(rf"{_LONG_DAY}, (\d\d)-{_MONTH}-(\d\d) {_TIME} GMT", re.ASCII)
_ASCTIME_DATE = re.compile(rf"{_DAY} {_MONTH} ([ \d]\d) {_TIME} (\d{{4}})", re.ASCII)


def _rfc850_year(two_digits: int, now_year: int) -> int:
    # §5.6.7: a two-digit year more than 50 years in the future means the most recent
    # past year with the same last two digits.
    year = now_year - now_year % 100 + two_digits
    return year - 100 if year > now_year + 50 else year


def parse_http_date(value: str, now_year: int) -> int | None:
    """Seconds since the epoch for any of the three HTTP-date forms, else None."""
    value = value.strip(" \t")
    if match := _IMF_FIXDATE.fullmatch(value):
        day, month, year, hh, mm, ss = match.groups()
    elif match := _RFC850_DATE.fullmatch(value):
        day, month, yy, hh, mm, ss = match.groups()
        year = str(_rfc850_year(int(yy), now_year))
    elif match := _ASCTIME_DATE.fullmatch(value):
        month, day, hh, mm, ss, year = match.groups()
    else:
        return None
    fields = (int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss))
    if not _valid_date(*fields):
        return None
    return int(calendar.timegm(fields))


def _valid_date(year: int, month: int, day: int, hh: int, mm: int, ss: int) -> bool:
    last_day = calendar.monthrange(year, month)[1] if year >= 1 else 0
    return 1 <= day <= last_day and hh <= 23 and mm <= 59 and ss <= 60
