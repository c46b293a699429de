"""Metalink 4 (RFC 5854) documents for one file, planned from plain facts (no I/O).

A document names the file, its size, its SHA-256 and the SHA-256 of each piece, and
the URLs it can be fetched from, best first: what ``aria2c -M`` needs to download one
file from several servers at once and re-fetch only the pieces that fail their hash.

Choices where RFC 5854 leaves one:

- ``<updated>`` (§4.2.13, a child of ``<metalink>``) is the file's modification time:
  the document changes exactly when the file does. It is clamped to years 1-9999, the
  range an RFC 3339 date can write.
- ``<file name>`` (§4.1.2.1) is the file's own name, never a path. XML 1.0 cannot carry
  every character a file name may hold (C0 controls other than tab, LF and CR; lone
  surrogates, which is how Python spells a name's undecodable bytes; U+FFFE, U+FFFF):
  each of those becomes ``_``, as in the ASCII fallback of ``Content-Disposition``.
- Hashes are lower-case hex under the IANA names (``sha-256``); pieces are
  ``piece_size`` octets each, the last one shorter when the size is not a multiple.
"""

from __future__ import annotations

import base64
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from service.sansio.validators import EntityTag

NAMESPACE = "urn:ietf:params:xml:ns:metalink"
MEDIA_TYPE = "application/metalink4+xml"
HASH_TYPE = "sha-256"
GENERATOR = "download-service"
MAX_PRIORITY = 999_999  # §4.2.16.2: 1 (the most preferred) to 999999

# XML 1.0 §2.2 Char, inverted: what no XML document can hold, escaped or not.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_COUNTRY = re.compile("[a-z]{2}")
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Source:
    """One place the file can be fetched from (``<url>``, §4.2.16)."""

    url: str
    priority: int = 1
    location: str | None = None  # ISO 3166-1 alpha-2 country code, lower case

    def __post_init__(self) -> None:
        if not 1 <= self.priority <= MAX_PRIORITY:
            raise ValueError(f"priority {self.priority} is outside 1-{MAX_PRIORITY}")
        if self.location is not None and not _COUNTRY.fullmatch(self.location):
            raise ValueError(f"location {self.location!r} is not a two-letter country code")
        if _NOT_XML.search(self.url):
            raise ValueError("a URL with characters XML cannot carry")


def piece_spans(size: int, piece_size: int) -> list[tuple[int, int]]:
    """``(offset, length)`` of each piece of a ``size``-byte file, in order: they cover
    it exactly, every one ``piece_size`` long but the last; none for an empty file."""
    if piece_size <= 0 or size < 0:
        raise ValueError(f"no pieces of {piece_size} bytes for a size of {size}")
    return [(offset, min(piece_size, size - offset)) for offset in range(0, size, piece_size)]


def xml_name(name: str) -> str:
    """``name`` with every character XML 1.0 cannot hold replaced by ``_``."""
    return _NOT_XML.sub("_", name)


def rfc3339(seconds: int) -> str:
    """``2026-12-04T03:00:00Z`` for a Unix time, clamped to years 1-9999."""
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        moment = _EARLIEST if seconds < 0 else _LATEST
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def document(
    name: str,
    size: int,
    mtime: int,
    sha256: bytes,
    pieces: Sequence[bytes],
    piece_size: int,
    sources: Sequence[Source],
) -> bytes:
    """The ``.meta4`` of one file version: UTF-8 XML. ``pieces`` are the SHA-256 of
    :func:`piece_spans` (size, piece_size), in order; ``sources`` best first."""
    if len(pieces) != len(piece_spans(size, piece_size)):
        raise ValueError(f"{len(pieces)} piece hashes for {size} bytes in {piece_size}-byte pieces")
    if not sources:
        raise ValueError("a metalink needs at least one URL")
    ET.register_namespace("", NAMESPACE)
    root = ET.Element(_tag("metalink"))
    ET.SubElement(root, _tag("generator")).text = GENERATOR
    ET.SubElement(root, _tag("updated")).text = rfc3339(mtime)
    file = ET.SubElement(root, _tag("file"), name=xml_name(name))
    ET.SubElement(file, _tag("size")).text = str(size)
    ET.SubElement(file, _tag("hash"), type=HASH_TYPE).text = sha256.hex()
    if pieces:  # §4.2.9: the piece hashes in order; an empty file has none
        listed = ET.SubElement(file, _tag("pieces"), length=str(piece_size), type=HASH_TYPE)
        for digest in pieces:
            ET.SubElement(listed, _tag("hash")).text = digest.hex()
    for source in sources:
        url = ET.SubElement(file, _tag("url"), priority=str(source.priority))
        if source.location is not None:
            url.set("location", source.location)
        url.text = source.url
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"


def document_etag(document: bytes) -> EntityTag:
    """A strong tag of the document's own bytes (RFC 9110 §8.8.3): another file
    version, another source or another signature makes another tag."""
    digest = hashlib.sha256(document).digest()[:18]
    return EntityTag("meta4-" + base64.urlsafe_b64encode(digest).decode())


def _tag(local: str) -> str:
    return f"{{{NAMESPACE}}}{local}"
