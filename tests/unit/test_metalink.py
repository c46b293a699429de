"""Metalink 4 documents (RFC 5854) from plain facts: service.sansio.metalink."""

from __future__ import annotations

import hashlib
import os
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.sansio.metalink import (
    MAX_PRIORITY,
    NAMESPACE,
    Source,
    document,
    piece_spans,
    rfc3339,
    xml_name,
)

NS = {"m": NAMESPACE}
PIECE = 4


def facts(content: bytes, piece_size: int = PIECE) -> tuple[bytes, list[bytes]]:
    pieces = [
        hashlib.sha256(content[offset : offset + length]).digest()
        for offset, length in piece_spans(len(content), piece_size)
    ]
    return hashlib.sha256(content).digest(), pieces


def parse(
    name: str, content: bytes, sources: list[Source], mtime: int = 1_700_000_000
) -> ET.Element:
    sha256, pieces = facts(content)
    return ET.fromstring(document(name, len(content), mtime, sha256, pieces, PIECE, sources))


def test_the_document_has_the_rfc_5854_shape() -> None:
    content = b"0123456789"
    sources = [Source("http://a.test/files/x.iso"), Source("http://b.test/files/x.iso", 2, "de")]
    root = parse("x.iso", content, sources)
    assert root.tag == f"{{{NAMESPACE}}}metalink"
    assert [child.tag.split("}")[1] for child in root] == ["generator", "updated", "file"]
    assert root.findtext("m:updated", namespaces=NS) == "2023-11-14T22:13:20Z"
    (file,) = root.findall("m:file", NS)
    assert file.get("name") == "x.iso"
    assert [child.tag.split("}")[1] for child in file] == ["size", "hash", "pieces", "url", "url"]
    assert file.findtext("m:size", namespaces=NS) == "10"
    whole = file.find("m:hash", NS)
    assert whole is not None
    assert (whole.get("type"), whole.text) == ("sha-256", hashlib.sha256(content).hexdigest())
    pieces = file.find("m:pieces", NS)
    assert pieces is not None
    assert (pieces.get("type"), pieces.get("length")) == ("sha-256", str(PIECE))
    assert [h.text for h in pieces] == [
        hashlib.sha256(part).hexdigest() for part in (b"0123", b"4567", b"89")
    ]
    urls = [(u.get("priority"), u.get("location"), u.text) for u in file.findall("m:url", NS)]
    assert urls == [
        ("1", None, "http://a.test/files/x.iso"),
        ("2", "de", "http://b.test/files/x.iso"),
    ]


def test_an_empty_file_has_no_pieces() -> None:
    root = parse("empty", b"", [Source("http://a.test/files/empty")])
    assert root.find("m:file/m:pieces", NS) is None
    assert root.findtext("m:file/m:size", namespaces=NS) == "0"


@pytest.mark.parametrize(
    ("name", "read_back"),
    [
        ("a <b> & \"c\" 'd'.iso", "a <b> & \"c\" 'd'.iso"),
        ("tab\tline\nreturn\r.iso", "tab\tline\nreturn\r.iso"),  # as references, not normalized
        ("bell\x07nul\x00.iso", "bell_nul_.iso"),
        (os.fsdecode(b"bad\xff.iso"), "bad_.iso"),  # an undecodable byte, as listdir gives it
        ("\ufffe\uffff\U0001f3ac.iso", "__\U0001f3ac.iso"),
        ("]]>--><!--.iso", "]]>--><!--.iso"),
    ],
)
def test_hostile_names_come_back_as_the_name(name: str, read_back: str) -> None:
    root = parse(name, b"abc", [Source("http://a.test/f?x=1&y=<2>")])
    assert root.find("m:file", NS).get("name") == read_back  # type: ignore[union-attr]
    assert root.findtext("m:file/m:url", namespaces=NS) == "http://a.test/f?x=1&y=<2>"


@given(st.text())
def test_any_name_makes_a_well_formed_document(name: str) -> None:
    root = parse(name, b"x", [Source("http://a.test/x")])
    assert root.find("m:file", NS).get("name") == xml_name(name)  # type: ignore[union-attr]


SIZES_AND_PIECES = st.integers(0, 10**12).flatmap(
    lambda size: st.tuples(st.just(size), st.integers(max(1, size // 2000), max(1, size + 10)))
)  # at most about 2,000 pieces, so a run stays quick


@given(SIZES_AND_PIECES)
def test_pieces_cover_the_file_exactly_and_only_the_last_is_short(
    size_and_piece: tuple[int, int],
) -> None:
    size, piece_size = size_and_piece
    spans = piece_spans(size, piece_size)
    assert sum(length for _, length in spans) == size
    offset = 0
    for start, length in spans:
        assert start == offset
        offset += length
    assert all(length == piece_size for _, length in spans[:-1])
    assert all(0 < length <= piece_size for _, length in spans)
    assert len(spans) == -(-size // piece_size)


def test_the_piece_hashes_must_match_the_layout() -> None:
    sha256, pieces = facts(b"0123456789")
    with pytest.raises(ValueError, match="piece hashes"):
        document("x", 10, 0, sha256, pieces[:-1], PIECE, [Source("http://a.test/x")])
    with pytest.raises(ValueError, match="at least one URL"):
        document("x", 10, 0, sha256, pieces, PIECE, [])


@pytest.mark.parametrize(
    "bad",
    [
        {"priority": 0},
        {"priority": MAX_PRIORITY + 1},
        {"location": "DE"},
        {"location": "deu"},
        {"url": "http://a.test/\x00"},
    ],
)
def test_a_source_is_checked_when_made(bad: dict[str, object]) -> None:
    fields: dict[str, object] = {"url": "http://a.test/x", **bad}
    with pytest.raises(ValueError, match=r"priority|location|URL"):
        Source(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (-62_135_596_800, "0001-01-01T00:00:00Z"),
        (-(10**15), "0001-01-01T00:00:00Z"),
        (10**15, "9999-12-31T23:59:59Z"),
        (-61_000_000_000, "0036-12-26T11:33:20Z"),
    ],
)
def test_updated_is_an_rfc_3339_date_with_a_four_digit_year(seconds: int, text: str) -> None:
    assert rfc3339(seconds) == text
