"""Range abuse against the real server: 500 generated hostile Range headers.

The CVE-2011-3192 "Apache killer" turned one request into gigabytes with overlapping
ranges. Here every hostile header (overlaps, thousands of tiny ranges, reversed order,
duplicates, suffix/prefix overlaps, huge numerals, ranges just past the end, invalid
members, and headers at and over gunicorn's size limits) must get:

- 200 (the whole file), 206 (correct parts) or 416 (``bytes */SIZE``); or, for a head
  over gunicorn's limits, gunicorn's own 431/414 with the connection closed;
- a body of at most twice the file plus a small constant; in fact at most the file plus
  the multipart framing of ``DL_MAX_RANGES`` parts;
- an answer within a second.

The header limits are gunicorn's: ``LIMITS`` reads them from
``gunicorn.conf.py`` the way gunicorn does (the file's value, else gunicorn's default),
and ``test_gunicorn_enforces_the_effective_header_limits`` probes each boundary.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import runpy
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from unittest import mock

import pytest
from gunicorn.config import Config

from tests.integration import rawhttp
from tests.integration.conftest import ServerFactory
from tests.integration.helpers import MiB, assert_healthy, pseudo_random, the_worker
from tests.support.server import REPO, GunicornServer

pytestmark = pytest.mark.server

SIZE = MiB
DATA = pseudo_random(SIZE, seed=2011_3192)
SMALL_SIZE = 1000
SMALL = pseudo_random(SMALL_SIZE, seed=2011)
MAX_RANGES = 16  # DL_MAX_RANGES, set explicitly on the server below
HOSTILE_INPUTS = 500
SMALL_FILE_INPUTS = 100
SEED = 20110824  # the day CVE-2011-3192 was published
#: Bound on the multipart framing of one part: delimiter, boundary, Content-Type and
#: Content-Range lines (about 110 bytes for this file size).
PART_FRAMING = 200
#: "At most about twice the file", plus the framing of the largest multipart.
SLACK = MAX_RANGES * PART_FRAMING
PER_REQUEST_SECONDS = 1.0
TOTAL_SECONDS = 30.0
#: Spans at least this far apart are never coalesced (the service merges gaps up to
#: 80 bytes); used to know the part count without copying the service's constant.
SURELY_APART = 1024

LIMIT_NAMES = ("limit_request_line", "limit_request_fields", "limit_request_field_size")
GUNICORN_DEFAULTS = {
    "limit_request_line": 4094,
    "limit_request_fields": 100,
    "limit_request_field_size": 8190,
}


def configured_limits() -> dict[str, int]:
    """The limits ``gunicorn.conf.py`` sets itself (read as gunicorn reads the file)."""
    with mock.patch.dict(os.environ, {"DL_DATA_ROOT": str(REPO)}):
        namespace = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    return {name: int(namespace[name]) for name in LIMIT_NAMES if name in namespace}


CONFIGURED = configured_limits()
#: What the server enforces: the config's value, else gunicorn's default.
LIMITS = {name: CONFIGURED.get(name, Config().settings[name].get()) for name in LIMIT_NAMES}
#: gunicorn counts a field line's CRLF against limit_request_field_size.
FIELD_LINE_MAX = LIMITS["limit_request_field_size"] - 2
RANGE_BUDGET = FIELD_LINE_MAX - len("Range: ")


# -- the hostile headers --------------------------------------------------------------

#: One range-spec as sent: (first, last) digit strings; (None, n) is the suffix "-n".
Member = tuple[str | None, str | None]
INVALID = "invalid"  # an element that makes the whole header invalid (ignored: 200)
EMPTY = "empty"  # an empty list element: allowed and skipped (RFC 9110 §5.6.1.2)
Element = tuple[str, Member | str]


@dataclass(frozen=True)
class Case:
    kind: str
    lines: tuple[bytes, ...]
    #: The valid range-specs sent, or None when the header must be ignored (200).
    members: tuple[Member, ...] | None
    #: The status gunicorn itself answers (a head over its limits), else None.
    gunicorn_status: int | None = None
    #: Pad the target with a query string to make the request line this long.
    request_line: int | None = None

    def request(self, target: str) -> bytes:
        if self.request_line is not None:
            target += "?" + "q" * (self.request_line - len(f"GET {target}? HTTP/1.1"))
        raw = rawhttp.build_request("GET", target, list(self.lines))
        assert self.request_line in (None, raw.index(b"\r\n"))
        return raw

    def describe(self) -> str:
        head = b"\r\n".join(self.lines)
        line = f" request line of {self.request_line}" if self.request_line else ""
        return f"{self.kind}{line}: {head[:160]!r}... ({len(head)} bytes)"


def member(first: int | str | None, last: int | str | None = None) -> Element:
    first_s = None if first is None else str(first)
    last_s = None if last is None else str(last)
    return f"{first_s or ''}-{last_s or ''}", (first_s, last_s)


def bad(text: str) -> Element:
    return text, INVALID


def fit(elements: Iterable[Element], budget: int = RANGE_BUDGET) -> list[Element]:
    """The longest prefix of ``elements`` whose ``bytes=`` list fits ``budget`` chars."""
    kept: list[Element] = []
    used = len("bytes=") - 1
    for element in elements:
        used += len(element[0]) + 1
        if used > budget:
            break
        kept.append(element)
    return kept


def range_case(kind: str, elements: list[Element], *, unit: str = "bytes", sep: str = ",") -> Case:
    value = f"{unit}=" + sep.join(text for text, _ in elements)
    members: tuple[Member, ...] | None = None
    kinds = [what for _, what in elements]
    if unit.lower() == "bytes" and INVALID not in kinds:
        members = tuple(what for what in kinds if isinstance(what, tuple)) or None
    return Case(kind, (b"Range: " + value.encode("latin-1"),), members)


def apache_killer(rng: random.Random, size: int) -> Case:
    # The CVE-2011-3192 header itself: "5-0" has last < first, so it is invalid.
    count = rng.randint(50, 1300)
    return range_case("apache-killer", fit([member(0), *(bad(f"5-{i}") for i in range(count))]))


def apache_killer_valid(rng: random.Random, size: int) -> Case:
    # The same flood with every member valid: "0-,5-5,5-6,...": spans add up past the file.
    start = rng.randint(0, 50)
    elements = [member(start, start + i) for i in range(rng.randint(2, 1300))]
    if rng.random() < 0.5:
        elements.insert(0, member(0))
    return range_case("apache-killer-valid", fit(elements))


def overlapping_whole(rng: random.Random, size: int) -> Case:
    wholes = [member(0), member(None, size), member(0, size - 1), member(None, 10**12)]
    count = rng.randint(2, 1300)
    return range_case("overlapping-whole", fit(rng.choice(wholes) for _ in range(count)))


def tiny_ranges(rng: random.Random, size: int, *, kind: str, stride: int, order: str) -> Case:
    """As many ranges of 1-21 bytes, ``stride`` apart, as fit: thousands for small strides."""
    width = rng.randint(0, min(stride - 1, 20))
    every = range(rng.randint(0, stride), size + 4 * stride, stride)
    starts: Iterable[int] = every
    if order == "reversed":
        starts = reversed(every)
    elif order == "shuffled":
        starts = rng.sample(every, min(len(every), 3000))
    return range_case(kind, fit(member(s, s + width) for s in starts))


def tiny_dense(rng: random.Random, size: int) -> Case:
    # Thousands of adjacent or nearly adjacent bytes: they coalesce into few parts.
    order = rng.choice(["ascending", "shuffled"])
    return tiny_ranges(rng, size, kind="tiny-dense", stride=rng.randint(1, 40), order=order)


def tiny_sparse(rng: random.Random, size: int) -> Case:
    # Hundreds of small parts far apart: more than DL_MAX_RANGES parts.
    order = rng.choice(["ascending", "shuffled"])
    stride = rng.randint(SURELY_APART, 5000)
    return tiny_ranges(rng, size, kind="tiny-sparse", stride=stride, order=order)


def reversed_order(rng: random.Random, size: int) -> Case:
    stride = rng.choice([rng.randint(1, 40), rng.randint(SURELY_APART, 50_000)])
    return tiny_ranges(rng, size, kind="reversed", stride=stride, order="reversed")


def duplicates(rng: random.Random, size: int) -> Case:
    first = rng.randrange(size)
    last = min(size - 1, first + rng.choice([0, 1, 99, 999, rng.randrange(size)]))
    count = rng.choice([2, 3, rng.randint(2, 2000)])
    return range_case("duplicates", fit([member(first, last)] * count))


def suffix_prefix(rng: random.Random, size: int) -> Case:
    elements = [member(None, rng.randint(1, size + 10)), member(0, rng.randint(0, size + 10))]
    rng.shuffle(elements)
    if rng.random() < 0.3:
        elements *= rng.randint(2, 5)
    return range_case("suffix-prefix", elements)


def huge_numerals(rng: random.Random, size: int) -> Case:
    digits = rng.choice([20, 25, 4301, rng.randint(26, RANGE_BUDGET - 10)])
    huge = "9" * digits
    half = huge[: (RANGE_BUDGET - 20) // 2]  # for shapes with two numerals
    zeros = "0" * rng.randint(0, (RANGE_BUDGET - 20) // 2)
    shapes: list[list[Element]] = [
        [member(0, huge)],  # 206: the whole file
        [member(huge)],  # 416: starts past the end
        [member(None, huge)],  # 206: a suffix longer than the file is the file
        [member(half, half)],  # 416
        [bad(f"{half}-{half[1:]}")],  # invalid: last < first, told without int()
        [member(zeros + "5", zeros + "9")],  # leading zeros: bytes 5-9
        [member(0, half), member(1, half)],  # spans add up past the file: 200
        [member(size - 1, half), member(half)],  # the last byte, and a dropped member
    ]
    elements = rng.choice(shapes)
    assert fit(elements) == elements
    return range_case("huge-numerals", elements)


def past_end(rng: random.Random, size: int) -> Case:
    choices: list[Callable[[], Element]] = [
        lambda: member(size),
        lambda: member(size, size + rng.randint(0, 10)),
        lambda: member(size + rng.randint(1, 10**6)),
        lambda: member(None, 0),  # "-0": valid, unsatisfiable (§14.1.2)
        lambda: member(size - 1),  # the last byte: satisfiable
        lambda: member(size - rng.randint(1, 5), size + 5),
    ]
    count = rng.choice([1, 2, rng.randint(3, 1000)])
    return range_case("past-end", fit(rng.choice(choices)() for _ in range(count)))


INVALID_MEMBERS = [
    "abc",
    "5-1",
    "-",
    "1-2-3",
    "0x10-0x20",
    "+1-2",
    "1 2-3",
    "\xb2-3",  # superscript two: str.isdigit() is true, but it is no DIGIT
    "1-2;q=1",
    "1.0-2",
    "=1-2",
    '"0-1"',
]


def mixed_invalid(rng: random.Random, size: int) -> Case:
    elements = [member(rng.randrange(size)) for _ in range(rng.randint(0, 20))]
    elements.insert(rng.randint(0, len(elements)), bad(rng.choice(INVALID_MEMBERS)))
    return range_case("mixed-invalid", elements)


def mixed_unsatisfiable(rng: random.Random, size: int) -> Case:
    elements = [member(size + rng.randint(0, 10**9)) for _ in range(rng.randint(1, 500))]
    for _ in range(rng.randint(0, 3)):
        first = rng.randrange(size)
        elements.insert(rng.randint(0, len(elements)), member(first, first + rng.randint(0, 9)))
    return range_case("mixed-unsatisfiable", fit(elements))


def odd_syntax(rng: random.Random, size: int) -> Case:
    first = rng.randrange(size)
    last = first + rng.randint(0, 1000)
    shape = rng.randrange(8)
    if shape == 0:  # the unit is case-insensitive
        return range_case("odd-syntax", [member(first, last)], unit="BYTES")
    if shape == 1:  # OWS around the separators
        return range_case("odd-syntax", [member(first, last), member(0, 0)], sep=" \t, \t")
    if shape == 2:  # thousands of empty list elements, then one range
        empties: list[Element] = [("", EMPTY)] * rng.randint(10, RANGE_BUDGET)
        return range_case("odd-syntax", fit([member(first, last), *empties])[::-1])
    if shape == 3:  # an unknown unit must be ignored, however many ranges it names
        return range_case("odd-syntax", fit(member(i, i) for i in range(5000)), unit="items")
    if shape == 4:  # "bytes=": no range at all
        return range_case("odd-syntax", [])
    if shape == 5:  # no "="
        return Case("odd-syntax", (b"Range: bytes", b"Range-Extra: 0-1"), None)
    if shape == 6:  # obs-text (latin-1) bytes inside a member
        return Case("odd-syntax", (b"Range: bytes=0-1\xff,2-3",), None)
    # Every single byte from ``first`` on, one range each: one part.
    return range_case("odd-syntax", fit(member(i, i) for i in range(first, size)))


def part_cap(rng: random.Random, size: int) -> Case:
    # DL_MAX_RANGES far-apart parts (206), or one or two more (200).
    count = MAX_RANGES + rng.choice([-1, 0, 1, 2])
    step = size // count
    room = step - SURELY_APART - 100
    starts = [i * step + (rng.randrange(room) if room > 0 else 0) for i in range(count)]
    rng.shuffle(starts)
    return range_case("part-cap", [member(s, s + rng.randint(0, 99)) for s in starts])


def pad(line: bytes, length: int) -> bytes:
    """Pad a Range field line with empty list elements (allowed) to ``length`` bytes."""
    assert len(line) <= length
    return line + b"," * (length - len(line))


def field_too_long(rng: random.Random, size: int) -> Case:
    # A Range field line over gunicorn's limit by 1 byte to 8 KB: gunicorn answers 431.
    over = FIELD_LINE_MAX + rng.choice([1, 2, rng.randint(3, 8000)])
    start = rng.randrange(1000)
    case = range_case("field-too-long", fit(member(i, i) for i in range(start, 10**6, 3)))
    return Case(case.kind, (pad(case.lines[0], over),), None, gunicorn_status=431)


def field_at_limit(rng: random.Random, size: int) -> Case:
    # The longest Range field line gunicorn accepts, full of ranges and empty elements.
    stride = rng.choice([1, 3, 50, SURELY_APART])
    case = range_case(
        "field-at-limit", fit(member(i, i) for i in range(rng.randrange(size // 2), 10**7, stride))
    )
    return Case(case.kind, (pad(case.lines[0], FIELD_LINE_MAX),), case.members)


def many_fields(rng: random.Random, size: int) -> Case:
    # One Range list split over up to ~100 field lines (about 800 KB): gunicorn joins
    # repeated fields with "," (RFC 9110 §5.3), so the app parses one list of up to
    # ~60,000 ranges. Past limit_request_fields gunicorn answers 431 itself.
    fields_max = LIMITS["limit_request_fields"]
    count = rng.choice([fields_max - 1, fields_max, rng.randint(2, fields_max + 5)])
    # Stay under gunicorn's total head buffer (fields * (field size + 2)), past which
    # it stops reading mid-request.
    budget = min(RANGE_BUDGET, 790_000 // count)
    stride = rng.choice([2, 50, SURELY_APART])
    elements = (member(s, s) for s in range(rng.randrange(stride), 10**8, stride))
    lines: list[bytes] = []
    members: list[Member] = []
    for index in range(count):
        chunk = fit(elements, budget)
        value = ",".join(text for text, _ in chunk)
        lines.append(b"Range: " + (b"bytes=" if index == 0 else b"") + value.encode())
        members += [what for _, what in chunk if isinstance(what, tuple)]
    if 1 + count > fields_max:  # Host is a field too
        return Case("many-fields", tuple(lines), None, gunicorn_status=431)
    return Case("many-fields", tuple(lines), tuple(members))


def long_request_line(rng: random.Random, size: int) -> Case:
    limit = LIMITS["limit_request_line"]
    length = rng.choice([limit, limit + 1, rng.randint(limit - 100, limit + 2000)])
    first = rng.randrange(size)
    case = range_case("long-request-line", [member(first, first + 99), member(None, 500)])
    status = 414 if length > limit else None
    return Case(case.kind, case.lines, case.members, status, request_line=length)


Generator = Callable[[random.Random, int], Case]
#: (generator, how many of the 500): every kind of abuse gets a fair share.
SCHEDULE: list[tuple[Generator, int]] = [
    (apache_killer, 40),
    (apache_killer_valid, 30),
    (overlapping_whole, 25),
    (tiny_dense, 35),
    (tiny_sparse, 35),
    (reversed_order, 30),
    (duplicates, 35),
    (suffix_prefix, 30),
    (huge_numerals, 45),
    (past_end, 35),
    (mixed_invalid, 35),
    (mixed_unsatisfiable, 25),
    (odd_syntax, 30),
    (part_cap, 20),
    (field_too_long, 15),
    (field_at_limit, 15),
    (many_fields, 10),
    (long_request_line, 10),
]
assert sum(count for _, count in SCHEDULE) == HOSTILE_INPUTS


def hostile_cases(seed: int, size: int, count: int) -> list[Case]:
    """``count`` cases for a ``size``-byte file, the same for the same seed, kinds mixed."""
    rng = random.Random(seed)
    cases = [
        generate(rng, size)
        for generate, share in SCHEDULE
        for _ in range(max(1, round(share * count / HOSTILE_INPUTS)))
    ]
    rng.shuffle(cases)
    return cases[:count]


# -- what the answer must be ----------------------------------------------------------


def _number(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return 10**30 if len(digits) > 30 else int(digits)


def resolve(spec: Member, size: int) -> tuple[int, int] | None:
    """RFC 9110 §14.1.2: the half-open span a range-spec selects, or None."""
    first, last = spec
    if first is None:
        suffix = _number(last or "0")
        return (max(0, size - suffix), size) if suffix else None
    start = _number(first)
    if start >= size:
        return None
    return start, size if last is None else min(_number(last) + 1, size)


def expected_statuses(case: Case, size: int) -> set[int]:
    """What the README promises, without the service's coalescing constant."""
    if case.gunicorn_status is not None:
        return {case.gunicorn_status}
    if case.members is None:
        return {200}
    allowed = _by_spans([span for spec in case.members if (span := resolve(spec, size))], size)
    elements = sum(line.count(b",") + 1 for line in case.lines)
    if elements > MAX_RANGES:
        # The whole file is always a fair answer to a long list (§14.2 lets a server
        # ignore Range, §5.6.1.2 only asks for "a reasonable number" of empty elements):
        # refusing long lists before parsing them is a sound defence too (see
        # test_a_list_at_gunicorns_limits_costs_the_worker_little).
        allowed.add(200)
    return allowed


def _by_spans(spans: list[tuple[int, int]], size: int) -> set[int]:
    if not spans:
        return {416}
    if len(spans) > 1 and sum(stop - start for start, stop in spans) > size:
        return {200}
    if len(spans) <= MAX_RANGES:
        return {206}  # coalescing only ever lowers the count
    gaps, reach = [], -1
    for start, stop in sorted(spans):
        if reach >= 0:
            gaps.append(start - reach)
        reach = max(reach, stop)
    if all(gap >= SURELY_APART for gap in gaps):
        return {200}  # nothing merges: more parts than DL_MAX_RANGES
    return {200, 206}  # 206 if they coalesce into few enough parts


def parse_parts(response: rawhttp.RawResponse, size: int) -> list[tuple[int, int, bytes]]:
    """(start, stop, bytes) of each part of a 206, single or multipart, parsed strictly."""
    content_type = response["Content-Type"]
    if not content_type.startswith("multipart/byteranges"):
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", response["Content-Range"])
        assert match, response["Content-Range"]
        first, last, total = map(int, match.groups())
        assert total == size
        return [(first, last + 1, response.body)]
    assert response.get("Content-Range") is None
    match = re.fullmatch(
        r"multipart/byteranges; boundary=([0-9A-Za-z'()+_,\-./:=?]{1,70})", content_type
    )
    assert match, content_type
    delimiter = b"--" + match.group(1).encode()
    body, pos, parts = response.body, 0, []
    while True:
        assert body.startswith(delimiter, pos), body[pos : pos + 80]
        pos += len(delimiter)
        if body[pos:] in (b"--", b"--\r\n"):
            return parts
        assert body.startswith(b"\r\n", pos), body[pos : pos + 80]
        end = body.index(b"\r\n\r\n", pos)
        fields = {
            name.strip().lower(): value.strip()
            for name, _, value in (
                line.decode("ascii").partition(":") for line in body[pos + 2 : end].split(b"\r\n")
            )
        }
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", fields["content-range"])
        assert match, fields
        first, last, total = map(int, match.groups())
        assert total == size
        pos = end + 4
        parts.append((first, last + 1, body[pos : pos + last + 1 - first]))
        pos += last + 1 - first
        assert body.startswith(b"\r\n", pos), body[pos : pos + 80]
        pos += 2
        assert len(parts) <= MAX_RANGES, "more parts than DL_MAX_RANGES"


def check_answer(case: Case, response: rawhttp.RawResponse, data: bytes) -> None:
    size = len(data)
    status = response.status
    # The amplification bound first: it holds whatever the status.
    assert len(response.body) <= 2 * size + SLACK, f"{len(response.body)} bytes amplified"
    assert status in expected_statuses(case, size), status
    if status == 200:
        assert response["Content-Length"] == str(size)
        assert response.body == data
    elif status == 416:
        assert response["Content-Range"] == f"bytes */{size}"
        assert len(response.body) < 100
    elif status == 206:
        check_parts(case, parse_parts(response, size), data)
    else:  # gunicorn's own answer to a head over its limits
        assert response["Connection"] == "close"
        assert response["Content-Type"] == "text/html"
        assert len(response.body) < 1000


def check_parts(case: Case, parts: list[tuple[int, int, bytes]], data: bytes) -> None:
    size = len(data)
    assert 1 <= len(parts) <= MAX_RANGES
    for start, stop, chunk in parts:
        assert 0 <= start < stop <= size
        assert chunk == data[start:stop], f"wrong bytes for {start}-{stop - 1}"
    ordered = sorted((start, stop) for start, stop, _ in parts)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ordered)), "parts overlap"
    assert sum(stop - start for start, stop in ordered) <= size
    assert case.members is not None
    spans = [span for spec in case.members if (span := resolve(spec, size))]

    def part_of(position: int) -> int:
        index = next((i for i, (s, e, _) in enumerate(parts) if s <= position < e), None)
        assert index is not None, f"requested byte {position} is in no part"
        return index

    # Every requested span lies inside one part; every part starts and ends on
    # requested bytes; parts come in the order of their first request (§15.3.7.2).
    order: list[int] = []
    for start, stop in spans:
        index = part_of(start)
        assert parts[index][1] >= stop, f"requested {start}-{stop - 1} is split"
        if index not in order:
            order.append(index)
    assert order == list(range(len(parts)))
    for start, stop, _ in parts:
        assert any(s <= start < e for s, e in spans), f"part {start}- was never requested"
        assert any(s < stop <= e for s, e in spans), f"part -{stop - 1} was never requested"


# -- the run --------------------------------------------------------------------------


@dataclass
class Site:
    server: GunicornServer
    worker: int


@dataclass
class Figures:
    requests: int = 0
    body_bytes: int = 0
    worst_ratio: float = 0.0
    worst_ratio_case: str = ""
    max_seconds: float = 0.0
    slowest_case: str = ""
    statuses: dict[int, int] = field(default_factory=dict)
    kinds: dict[str, set[int]] = field(default_factory=dict)

    def report(self, title: str) -> str:
        kinds = ", ".join(f"{k} {sorted(v)}" for k, v in sorted(self.kinds.items()))
        return (
            f"\n{title}: {self.requests} hostile Range requests, statuses {self.statuses}, "
            f"{self.body_bytes} body bytes in all; worst amplification "
            f"{self.worst_ratio:.4f}x ({self.worst_ratio_case[:100]}); slowest "
            f"{self.max_seconds * 1000:.1f} ms ({self.slowest_case[:100]})\n  {kinds}"
        )


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, module_server_factory: ServerFactory
) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("range-abuse") / "data"
    root.mkdir()
    (root / "big.bin").write_bytes(DATA)
    (root / "small.bin").write_bytes(SMALL)
    server = module_server_factory(root, DL_MAX_RANGES=str(MAX_RANGES))
    worker = the_worker(server)
    yield Site(server, worker)
    assert_healthy(server)
    assert the_worker(server) == worker, "the worker was replaced"
    assert re.search(r"^Traceback \(most recent call last\):", server.log(), re.M) is None


def run_cases(site: Site, cases: list[Case], target: str, data: bytes) -> Figures:
    """Send every case on keep-alive connections; reconnect only when the server closes."""
    figures = Figures()
    began = time.monotonic()
    conn: rawhttp.Connection | None = None
    try:
        for case in cases:
            if conn is None:
                conn = rawhttp.Connection(site.server.host, site.server.port)
            start = time.monotonic()
            conn.send(case.request(target))
            response = conn.read_response(deadline=start + 5 * PER_REQUEST_SECONDS)
            seconds = time.monotonic() - start
            try:
                check_answer(case, response, data)
            except AssertionError as error:
                raise AssertionError(f"{case.describe()}\n-> {response.status}: {error}") from None
            if response.get("Connection") == "close":
                assert conn.closed_by_peer(), case.describe()
                conn.close()
                conn = None
            figures.requests += 1
            figures.body_bytes += len(response.body)
            figures.statuses[response.status] = figures.statuses.get(response.status, 0) + 1
            figures.kinds.setdefault(case.kind, set()).add(response.status)
            ratio = len(response.body) / len(data)
            if ratio > figures.worst_ratio:
                figures.worst_ratio, figures.worst_ratio_case = ratio, case.describe()
            if seconds > figures.max_seconds:
                figures.max_seconds, figures.slowest_case = seconds, case.describe()
    finally:
        if conn is not None:
            conn.close()
    assert time.monotonic() - began < TOTAL_SECONDS
    return figures


def test_unset_header_limits_are_gunicorns_defaults() -> None:
    # gunicorn.conf.py sets none of the three today, so the server runs with gunicorn 27's
    # defaults. Once it sets them on purpose, the probes below follow its values.
    for name in LIMIT_NAMES:
        if name not in CONFIGURED:
            assert LIMITS[name] == GUNICORN_DEFAULTS[name], name
    assert 0 < LIMITS["limit_request_field_size"] <= 16 * 1024
    assert 0 < LIMITS["limit_request_fields"] <= 200
    assert 0 < LIMITS["limit_request_line"] <= 8190


def test_generated_hostile_headers_are_deterministic_and_varied() -> None:
    cases = hostile_cases(SEED, SIZE, HOSTILE_INPUTS)
    assert len(cases) == HOSTILE_INPUTS
    assert cases == hostile_cases(SEED, SIZE, HOSTILE_INPUTS)
    assert len({case.request("/files/big.bin") for case in cases}) > 0.9 * HOSTILE_INPUTS
    longest = max(len(line) for case in cases for line in case.lines)
    assert longest > FIELD_LINE_MAX  # some go past the limit...
    in_limit = [len(c.lines[0]) for c in cases if c.gunicorn_status is None]
    assert max(in_limit) > FIELD_LINE_MAX - 20  # ...and some fill it to the last bytes
    statuses = set().union(*(expected_statuses(case, SIZE) for case in cases))
    assert statuses == {200, 206, 414, 416, 431}


def test_500_hostile_range_headers_never_amplify(site: Site) -> None:
    cases = hostile_cases(SEED, SIZE, HOSTILE_INPUTS)
    figures = run_cases(site, cases, "/files/big.bin", DATA)
    print(figures.report(f"{SIZE}-byte file"))
    assert figures.requests == HOSTILE_INPUTS
    # The whole file, plus at most the framing of DL_MAX_RANGES parts: far under 2x.
    assert figures.worst_ratio <= 1 + SLACK / SIZE
    assert figures.max_seconds < PER_REQUEST_SECONDS
    assert set(figures.statuses) == {200, 206, 414, 416, 431}


def test_hostile_range_headers_on_a_small_file(site: Site) -> None:
    # On a small file the multipart framing dominates: the bound is 2x + the framing of
    # DL_MAX_RANGES parts, never a multiple of the number of ranges requested.
    cases = hostile_cases(SEED + 1, SMALL_SIZE, SMALL_FILE_INPUTS)
    figures = run_cases(site, cases, "/files/small.bin", SMALL)
    print(figures.report(f"{SMALL_SIZE}-byte file"))
    assert figures.worst_ratio <= 2 + SLACK / SMALL_SIZE
    assert figures.max_seconds < PER_REQUEST_SECONDS


def _exchange(site: Site, raw: bytes) -> tuple[rawhttp.RawResponse, bool]:
    """One request on a fresh connection; also whether the server then closed it."""
    with rawhttp.Connection(site.server.host, site.server.port) as conn:
        conn.send(raw)
        response = conn.read_response()
        return response, conn.closed_by_peer(wait=0.3)


def _assert_gunicorn_refused(response: rawhttp.RawResponse, closed: bool, status: int) -> None:
    reasons = {414: "URI Too Long", 431: "Request Header Fields Too Large"}
    assert (response.status, response.reason) == (status, reasons[status])
    assert response["Connection"] == "close"
    assert closed


def test_gunicorn_enforces_the_effective_header_limits(site: Site) -> None:
    # limit_request_field_size counts the field line with its CRLF. Trailing OWS counts
    # too, and gunicorn strips it, so the app sees the same short Range either way.
    padded = "Range: bytes=10-19".ljust(FIELD_LINE_MAX)
    raw = rawhttp.build_request("GET", "/files/big.bin", [padded])
    assert len(raw.split(b"\r\n")[2]) == FIELD_LINE_MAX
    response, closed = _exchange(site, raw)
    assert (response.status, response.body, closed) == (206, DATA[10:20], False)
    response, closed = _exchange(
        site, rawhttp.build_request("GET", "/files/big.bin", [padded + " "])
    )
    _assert_gunicorn_refused(response, closed, 431)

    # limit_request_fields counts every field, Host included.
    fields_max = LIMITS["limit_request_fields"]
    extra = [f"X-Filler-{i}: {i}" for i in range(fields_max - 2)] + ["Range: bytes=0-0"]
    response, closed = _exchange(site, rawhttp.build_request("GET", "/files/big.bin", extra))
    assert (response.status, response.body, closed) == (206, DATA[:1], False)
    over = [*extra, "X-One-Too-Many: 1"]
    response, closed = _exchange(site, rawhttp.build_request("GET", "/files/big.bin", over))
    _assert_gunicorn_refused(response, closed, 431)

    # limit_request_line: method, target and version with the two spaces, no CRLF.
    line_max = LIMITS["limit_request_line"]
    target = "/files/big.bin?" + "q" * (line_max - len("GET /files/big.bin? HTTP/1.1"))
    raw = rawhttp.build_request("GET", target, ["Range: bytes=-1"])
    assert raw.index(b"\r\n") == line_max
    response, closed = _exchange(site, raw)
    assert (response.status, response.body, closed) == (206, DATA[-1:], False)
    raw = rawhttp.build_request("GET", target + "q", ["Range: bytes=-1"])
    response, closed = _exchange(site, raw)
    _assert_gunicorn_refused(response, closed, 414)


def _seconds(site: Site, raw: bytes, runs: int) -> float:
    """The fastest of ``runs`` answers to ``raw`` on one keep-alive connection."""
    best = float("inf")
    with rawhttp.Connection(site.server.host, site.server.port, timeout=10.0) as conn:
        for _ in range(runs):
            start = time.monotonic()
            conn.send(raw)
            response = conn.read_response()
            best = min(best, time.monotonic() - start)
            assert response.status in (200, 206), response.head
    return best


@pytest.mark.parametrize(("name", "element"), [("Range", "0-0,"), ("If-None-Match", '"x",')])
def test_a_list_at_gunicorns_limits_costs_the_worker_little(
    site: Site, name: str, element: str
) -> None:
    count = LIMITS["limit_request_fields"] - 1  # and Host
    # The whole head must stay within gunicorn's buffer, fields * (field size + 2).
    per_line = min(RANGE_BUDGET, 790_000 // count) // len(element)
    prefix = "bytes=" if name == "Range" else ""
    lines = [f"{name}: {prefix if i == 0 else ''}{element * per_line}" for i in range(count)]
    ignored = [line.replace(f"{name}:", "X-Ignored:", 1) for line in lines]
    baseline = _seconds(site, rawhttp.build_request("GET", "/files/big.bin", ignored), 3)
    loaded = _seconds(site, rawhttp.build_request("GET", "/files/big.bin", lines), 2)
    print(
        f"\n{name}: {count} fields, {count * per_line} elements: {loaded * 1000:.0f} ms, "
        f"{baseline * 1000:.0f} ms with the same bytes under a name the app ignores"
    )
    assert loaded - baseline < 0.1
