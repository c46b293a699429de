"""Conditional requests: RFC 9110 §13.2.2 evaluation order, one predicate per header.

Only GET and HEAD reach this module, and only for a representation that exists
(§13.2.1: a 404 wins over every precondition).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from service.sansio.validators import (
    EntityTag,
    parse_entity_tags,
    parse_http_date,
    strong_match,
    weak_match,
)


class Outcome(enum.Enum):
    PROCEED = "proceed"
    NOT_MODIFIED = "not modified"  # 304
    PRECONDITION_FAILED = "precondition failed"  # 412


@dataclass(frozen=True, slots=True)
class Validators:
    """What the selected representation offers for comparison."""

    etag: EntityTag  # the tag this response sends
    last_modified: int  # seconds since the epoch, already clamped to ``now``
    now: int  # the response's Date, seconds since the epoch
    # Other strong tags of this very version (the size-mtime tag and the digest tag
    # both name exactly these bytes): a request's tag matches if it matches any of them.
    alternatives: tuple[EntityTag, ...] = ()

    @property
    def etags(self) -> tuple[EntityTag, ...]:
        return (self.etag, *self.alternatives)


def if_match_passes(value: str, validators: Validators) -> bool:
    """§13.1.1: ``*`` or any listed tag matching by *strong* comparison."""
    tags = parse_entity_tags(value)
    if isinstance(tags, str):  # ANY
        return True
    return any(strong_match(tag, ours) for tag in tags for ours in validators.etags)


def if_none_match_passes(value: str, validators: Validators) -> bool:
    """§13.1.2: false for ``*`` or when any listed tag matches by *weak* comparison."""
    tags = parse_entity_tags(value)
    if isinstance(tags, str):  # ANY
        return False
    return not any(weak_match(tag, ours) for tag in tags for ours in validators.etags)


def _date_or_none(value: str, validators: Validators) -> int | None:
    # A list ("more than one member") is not a valid HTTP-date and is ignored, too.
    return parse_http_date(value, now_year=time.gmtime(validators.now).tm_year)


def if_modified_since_passes(value: str, validators: Validators) -> bool:
    """§13.1.3: false (304) when Last-Modified is not later than the date; invalid: ignored."""
    date = _date_or_none(value, validators)
    return date is None or validators.last_modified > date


def if_unmodified_since_passes(value: str, validators: Validators) -> bool:
    """§13.1.4: true when Last-Modified is not later than the date; invalid: ignored."""
    date = _date_or_none(value, validators)
    return date is None or validators.last_modified <= date


def evaluate(
    *,
    if_match: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
    if_unmodified_since: str | None,
    validators: Validators,
) -> Outcome:
    """Steps 1-4 of §13.2.2 for GET/HEAD; step 5 (If-Range) is :func:`if_range_allows`."""
    # Step 1, else step 2: If-Unmodified-Since is ignored when If-Match is present.
    if if_match is not None:
        if not if_match_passes(if_match, validators):
            return Outcome.PRECONDITION_FAILED
    elif if_unmodified_since is not None and not if_unmodified_since_passes(
        if_unmodified_since, validators
    ):
        return Outcome.PRECONDITION_FAILED
    # Step 3, else step 4: If-Modified-Since is ignored when If-None-Match is present.
    if if_none_match is not None:
        if not if_none_match_passes(if_none_match, validators):
            return Outcome.NOT_MODIFIED
    elif if_modified_since is not None and not if_modified_since_passes(
        if_modified_since, validators
    ):
        return Outcome.NOT_MODIFIED
    return Outcome.PROCEED


def if_range_allows(value: str, validators: Validators) -> bool:
    """§13.1.5: may the Range be honoured? False means send the whole representation.

    An entity-tag must match *strongly* and exactly; a weak tag never does. A date must
    equal Last-Modified exactly and be a strong validator: per §8.8.2.2 the date is only
    strong when it lies at least one second before the response's Date.
    """
    if '"' in value[:3]:  # §13.1.5: a DQUOTE in the first three characters = entity-tag
        tags = parse_entity_tags(value)
        # Any strong tag of this version will do: a resume that began before the digest
        # was known holds the size-mtime tag, and the bytes it asks for are unchanged.
        return (
            isinstance(tags, tuple)
            and len(tags) == 1
            and any(strong_match(tags[0], ours) for ours in validators.etags)
        )
    date = _date_or_none(value, validators)
    return date == validators.last_modified and validators.last_modified < validators.now
