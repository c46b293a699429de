"""Byte ranges: the Range header grammar (RFC 9110 §14.1-§14.2) and the choice of spans.

Spans are half-open ``[start, stop)`` inside; inclusive ``first-last`` positions exist only
on the wire (``Span.content_range``). A header we cannot use is *ignored* (200), never
an error: §14.2 lets a server ignore Range, and a 416 would tell ``wget -c`` the file is
complete.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Coalesce parts at most this many bytes apart: about the per-part multipart overhead
#: (RFC 9110 §15.3.7.2 allows merging ranges whose gap is smaller than that overhead).
COALESCE_GAP = 80

# range-unit is a token (§14.1); OWS is SP / HTAB (§5.6.3).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OWS = " \t"
_SPEC = re.compile(r"([0-9]*)[ \t]*-[ \t]*([0-9]*)")
# A numeral longer than this exceeds any file size; cap it instead of converting
# thousands of digits (§14.1.2: recipients must prevent conversion overflows).
_MAX_DIGITS = 24
_HUGE = 10**_MAX_DIGITS
#: More list elements than this is no honest request (gunicorn joins repeated fields,
#: so a head can carry hundreds of thousands): ignore it before parsing a single one.
MAX_ELEMENTS = 1000
#: The one range most requests carry, exactly as nearly every client spells it
#: (``bytes=0-499``, ``bytes=500-``): parsed without the general rules' passes.
_PLAIN_SINGLE = re.compile(r"bytes=([0-9]{1,18})-([0-9]{0,18})")


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open byte interval ``[start, stop)`` of the selected representation."""

    start: int
    stop: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.stop:
            raise ValueError(f"invalid span [{self.start}, {self.stop})")

    @property
    def length(self) -> int:
        return self.stop - self.start

    def content_range(self, size: int) -> str:
        """The ``Content-Range`` value for this span of a ``size``-byte file (§14.4)."""
        return f"bytes {self.start}-{self.stop - 1}/{size}"


@dataclass(frozen=True, slots=True)
class RangeSpec:
    """One parsed range-spec: an int-range (``first``, optional ``last``) or a suffix."""

    first: int | None
    last: int | None

    def resolve(self, size: int) -> Span | None:
        """The span this spec selects in a ``size``-byte file, or None if unsatisfiable."""
        if self.first is None:  # suffix-range; "-0" is valid but unsatisfiable (§14.1.2)
            assert self.last is not None
            return Span(max(0, size - self.last), size) if self.last and size else None
        if self.first >= size:
            return None
        # A last-pos at or beyond the end is clipped to size - 1 (§14.1.2).
        stop = size if self.last is None else min(self.last + 1, size)
        return Span(self.first, stop)


class RangeKind(enum.Enum):
    NONE = "none"  # no Range header: plain 200
    IGNORED = "ignored"  # present but unusable (syntax, unit, abuse): 200
    SATISFIABLE = "satisfiable"  # 206
    UNSATISFIABLE = "unsatisfiable"  # 416


@dataclass(frozen=True, slots=True)
class RangeResult:
    kind: RangeKind
    spans: tuple[Span, ...] = ()


NO_RANGE = RangeResult(RangeKind.NONE)
IGNORED = RangeResult(RangeKind.IGNORED)
UNSATISFIABLE = RangeResult(RangeKind.UNSATISFIABLE)


def _numeral(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return _HUGE if len(digits) > _MAX_DIGITS else int(digits)


def _less(a: str, b: str) -> bool:
    """``int(a) < int(b)`` for digit strings of any length, without converting them."""
    a, b = a.lstrip("0"), b.lstrip("0")
    return (len(a), a) < (len(b), b)


def parse_range_header(value: str) -> tuple[RangeSpec, ...] | None:
    """Parse ``bytes=...``; None when the unit is not ``bytes`` or the syntax is invalid.

    §14.1.1: a ranges-specifier is invalid if any range-spec is (e.g. last < first).
    §5.6.1.2: empty list elements are accepted and ignored. OWS is tolerated around
    ``=``, ``,`` and ``-`` (the RFC's own example has ``bytes= 0-999``).
    """
    plain = _PLAIN_SINGLE.fullmatch(value)
    if plain is not None:
        start, end = int(plain[1]), int(plain[2]) if plain[2] else None
        if end is None or end >= start:
            return (RangeSpec(start, end),)
        return None  # §14.1.1: last < first makes the whole header invalid
    unit, sep, range_set = value.partition("=")
    unit = unit.strip(_OWS)
    if range_set.count(",") >= MAX_ELEMENTS:
        return None
    if not sep or not _TOKEN.fullmatch(unit) or unit.lower() != "bytes":
        return None  # §14.2: an unknown unit MUST be ignored
    specs = []
    for element in range_set.split(","):
        element = element.strip(_OWS)
        if not element:
            continue
        match = _SPEC.fullmatch(element)
        if match is None:
            return None
        first, last = match.groups()
        if first:
            if last and _less(last, first):  # compared before capping huge numerals
                return None
            first_pos, last_pos = _numeral(first), _numeral(last) if last else None
            spec = RangeSpec(first_pos, last_pos)
        elif last:
            spec = RangeSpec(None, _numeral(last))
        else:
            return None  # a lone "-"
        specs.append(spec)
    return tuple(specs) or None


def coalesce(spans: Sequence[Span], gap: int = COALESCE_GAP) -> tuple[Span, ...]:
    """Merge spans that overlap or lie within ``gap`` bytes, keeping request order.

    Each merged part takes the position of its earliest requested member (§15.3.7.2:
    parts SHOULD follow the request order, minus coalesced ranges).
    """
    order = sorted(range(len(spans)), key=lambda i: spans[i].start)
    groups: list[tuple[int, int, int]] = []  # (start, stop, first request index)
    for i in order:
        span = spans[i]
        if groups and span.start <= groups[-1][1] + gap:
            start, stop, first_index = groups[-1]
            groups[-1] = (start, max(stop, span.stop), min(first_index, i))
        else:
            groups.append((span.start, span.stop, i))
    groups.sort(key=lambda group: group[2])
    return tuple(Span(start, stop) for start, stop, _ in groups)


def select_spans(specs: Iterable[RangeSpec], size: int, max_parts: int) -> RangeResult:
    """Decide what a parsed, valid Range header means for a ``size``-byte file.

    Unsatisfiable members are dropped; none left is 416 (§14.1.1, §15.5.17). Abuse is
    answered with the whole file: more parts than ``max_parts`` after coalescing, or
    requested spans that add up to more than the file (the CVE-2011-3192 defence).
    """
    spans = [span for spec in specs if (span := spec.resolve(size)) is not None]
    if not spans:
        return UNSATISFIABLE
    if len(spans) == 1 and max_parts >= 1:
        return RangeResult(RangeKind.SATISFIABLE, (spans[0],))  # nothing to merge
    if len(spans) > 1 and sum(span.length for span in spans) > size:
        return IGNORED
    parts = coalesce(spans)
    if len(parts) > max_parts:
        return IGNORED
    return RangeResult(RangeKind.SATISFIABLE, parts)


def evaluate_range(value: str | None, size: int, max_parts: int) -> RangeResult:
    """The whole Range decision for a GET/HEAD whose preconditions passed (§14.2)."""
    if value is None:
        return NO_RANGE
    if size == 0:
        return IGNORED  # §14.2: a server MAY ignore Range on a zero-length representation
    specs = parse_range_header(value)
    if specs is None:
        return IGNORED
    return select_spans(specs, size, max_parts)
