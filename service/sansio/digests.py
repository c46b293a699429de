"""Integrity fields: RFC 9530 ``Repr-Digest`` and the legacy RFC 3230 ``Digest``.

We compute one algorithm, SHA-256, over the whole file (the selected representation:
no content coding, so it is also what a 206 is a part of). What a client wants is read
from ``Want-Repr-Digest`` (RFC 9530 §4) and ``Want-Digest`` (RFC 3230 §4.3.1); we never
claim an algorithm we do not have. A malformed preference field counts as absent.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from functools import lru_cache

from service.sansio.validators import EntityTag

REPR_DIGEST = "Repr-Digest"
LEGACY_DIGEST = "Digest"
SHA256 = "sha-256"  # RFC 9530 §7.2 registry key; RFC 3230 names are case-insensitive
SHA256_LENGTH = 32

# RFC 8941 §3.2 dictionary keys; RFC 9530 §4: the value is an Integer from 0 to 10.
_SF_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_SF_PREFERENCE = re.compile(r"[0-9]{1,2}")
_SF_PARAMETERS = re.compile(r"(;[ ]*[a-z*][a-z0-9_\-.*]*(=[^;]*)?)+")
# RFC 3230 §4.3.1 / RFC 9110 §12.4.2: digest-algorithm [ ";" "q" "=" qvalue ]
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QVALUE = re.compile(r"q[ \t]*=[ \t]*(0(\.[0-9]{0,3})?|1(\.0{0,3})?)", re.IGNORECASE)
_MAX_MEMBERS = 64


@dataclass(frozen=True, slots=True)
class DigestChoice:
    """Which integrity fields to send with a known SHA-256."""

    repr_digest: bool = True
    legacy_digest: bool = False


@lru_cache(maxsize=256)  # clients send the same few values again and again
def choose(want_digest: str | None, want_repr_digest: str | None) -> DigestChoice:
    """RFC 9530 §4: preferences are hints; a sender MAY send a field unasked.

    ``Repr-Digest`` goes out unless ``Want-Repr-Digest`` marks sha-256 "not acceptable"
    (0): asking only for sha-512 still gets sha-256, as we have nothing else. The legacy
    ``Digest`` goes out only when ``Want-Digest`` accepts SHA-256 (q above 0).
    """
    repr_preferences = (
        None if want_repr_digest is None else parse_want_repr_digest(want_repr_digest)
    )
    repr_refused = repr_preferences is not None and repr_preferences.get(SHA256) == 0
    legacy = want_digest is not None and parse_want_digest(want_digest).get(SHA256, 0.0) > 0
    return DigestChoice(repr_digest=not repr_refused, legacy_digest=legacy)


def parse_want_repr_digest(value: str) -> dict[str, int] | None:
    """RFC 9530 §4: an RFC 8941 Dictionary of algorithm -> Integer 0-10, else None.

    A member that breaks the Dictionary syntax fails the whole field (RFC 8941 §4.2);
    a value outside 0-10, or not an Integer, is that member's error only and is dropped.
    """
    preferences: dict[str, int] = {}
    if not value.strip(" \t"):
        return preferences  # an empty Dictionary
    members = value.split(",")
    if len(members) > _MAX_MEMBERS:
        return None
    for member in members:
        head, semicolon, parameters = member.strip(" \t").partition(";")
        key, equals, item = head.partition("=")
        if not _SF_KEY.fullmatch(key):
            return None
        if semicolon and not _SF_PARAMETERS.fullmatch(";" + parameters):
            return None
        if equals and _SF_PREFERENCE.fullmatch(item) and int(item) <= 10:
            preferences[key] = int(item)  # a later duplicate overrides (RFC 8941 §4.2.2)
        # Otherwise a bare key (Boolean true) or a non-Integer: not a preference, ignored.
    return preferences


def parse_want_digest(value: str) -> dict[str, float]:
    """RFC 3230 §4.3.1: algorithm (lower-cased) -> q; malformed elements are skipped."""
    preferences: dict[str, float] = {}
    elements = value.split(",")
    if len(elements) > _MAX_MEMBERS:
        return preferences
    for element in elements:
        name, _, parameter = element.partition(";")
        name = name.strip(" \t")
        if not _TOKEN.fullmatch(name):
            continue
        q = 1.0
        if parameter.strip(" \t"):
            match = _QVALUE.fullmatch(parameter.strip(" \t"))
            if match is None:
                continue
            q = float(match.group(1))
        preferences[name.lower()] = q
    return preferences


@lru_cache(maxsize=4096)  # hot files repeat: this runs per request once a file is hashed
def digest_fields(sha256: bytes, choice: DigestChoice) -> tuple[tuple[str, str], ...]:
    """The header fields for a known SHA-256 of the whole representation."""
    fields = []
    if choice.repr_digest:
        fields.append((REPR_DIGEST, repr_digest_value(sha256)))
    if choice.legacy_digest:
        fields.append((LEGACY_DIGEST, legacy_digest_value(sha256)))
    return tuple(fields)


def repr_digest_value(sha256: bytes) -> str:
    """RFC 9530 §3: ``sha-256=:<base64>:``, an RFC 8941 Byte Sequence."""
    return f"{SHA256}=:{base64.b64encode(sha256).decode()}:"


def legacy_digest_value(sha256: bytes) -> str:
    """RFC 3230 §4.3.2 with RFC 5843's name: ``SHA-256=<base64>``."""
    return f"SHA-256={base64.b64encode(sha256).decode()}"


@lru_cache(maxsize=4096)  # an EntityTag is immutable: the same one serves every request
def digest_etag(sha256: bytes) -> EntityTag:
    """A strong tag from the content alone: every node serving these bytes agrees."""
    return EntityTag("sha256-" + base64.urlsafe_b64encode(sha256).decode().rstrip("="))
