"""The pax layout of a folder, read back by Python's tarfile; ranges of it by property."""

from __future__ import annotations

import io
import itertools
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.sansio.archive import (
    Member,
    MemberSpan,
    archive_etag,
    archive_filename,
    newest_mtime_ns,
    ordered,
)
from service.sansio.tar import BLOCK, TarLayout, header_length, member_header
from tests.support.archive_bytes import content, members_strategy, render

NS = 1_000_000_000


def read_back(members: list[Member]) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    layout = TarLayout(ordered(members))
    data = render(layout, 0, layout.length)
    assert len(data) == layout.length
    found = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for info in archive:
            file = archive.extractfile(info)
            found[info.name] = (info, file.read() if file is not None else None)
    return found


TREE = [
    Member("a b.txt", 5, 1_700_000_000 * NS + 123_456_789),
    Member("dir", 0, 1_600_000_000 * NS, is_folder=True),
    Member("dir/ünïcödé 名前.bin", 1000, 1_600_000_000 * NS, executable=True),
    Member("long/" + "x" * 150, 7, 1_600_000_000 * NS),
    Member("long", 0, 1_600_000_000 * NS, is_folder=True),
    Member("empty file", 0, 1_500_000_000 * NS),
    Member("empty folder", 0, 1_500_000_000 * NS, is_folder=True),
    Member("exact-block", BLOCK, 1_500_000_000 * NS),
]


def test_tarfile_reads_every_member_with_its_bytes_type_and_mode() -> None:
    found = read_back(TREE)
    assert list(found) == [m.path for m in ordered(TREE)]
    for member in TREE:
        info, data = found[member.path]
        assert info.isdir() == member.is_folder
        if not member.is_folder:
            assert data == content(member)
        assert info.mode == (0o755 if member.is_folder or member.executable else 0o644)
        assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "", "")


def test_names_that_ustar_cannot_hold_go_in_pax_path_records() -> None:
    found = read_back(TREE)
    assert found["dir/ünïcödé 名前.bin"][0].pax_headers["path"] == "dir/ünïcödé 名前.bin"
    assert "path" in found["long/" + "x" * 150][0].pax_headers
    assert "path" not in found["a b.txt"][0].pax_headers  # ASCII and short: plain ustar


@pytest.mark.parametrize(
    ("mtime_ns", "pax"),
    [
        (1_700_000_000 * NS, None),  # whole seconds: ustar's field
        (1_700_000_000 * NS + 500_000_000, "1700000000.5"),
        (1_700_000_000 * NS + 1, "1700000000.000000001"),
        (-5 * NS - 500_000_000, "-5.5"),  # before 1970
        (-(2**40) * NS, str(-(2**40))),
        ((2**32 + 5) * NS, None),  # after 2106 (past 32 bits), still 11 octal digits
        ((8**11 - 1) * NS, None),  # the last second the field holds
        (8**11 * NS, str(8**11)),  # past the ustar field
    ],
)
def test_mtimes_the_ustar_field_cannot_hold_go_in_pax(mtime_ns: int, pax: str | None) -> None:
    (info, _) = read_back([Member("f", 1, mtime_ns)])["f"]
    assert info.pax_headers.get("mtime") == pax
    assert info.mtime == pytest.approx(mtime_ns / NS)


def test_a_member_of_8_gib_or_more_has_a_pax_size() -> None:
    big = Member("huge.bin", 9 * 2**30, 1_600_000_000 * NS)
    layout = TarLayout([big])
    assert layout.length == header_length(big) + big.size + 2 * BLOCK  # no padding needed
    head = render(layout, 0, header_length(big))  # the headers only: no 9 GiB in memory
    with tarfile.open(fileobj=io.BytesIO(head), mode="r:") as archive:
        info = archive.next()
    assert info is not None
    assert (info.size, info.pax_headers["size"]) == (big.size, str(big.size))


def test_just_under_8_gib_stays_in_ustar() -> None:
    member = Member("f", 8**11 - 1, 0)
    assert header_length(member) == BLOCK
    assert member_header(member)[124:136] == b"77777777777\0"


def test_an_empty_folder_is_two_zero_blocks() -> None:
    layout = TarLayout([])
    assert layout.length == 2 * BLOCK
    assert render(layout, 0, layout.length) == bytes(2 * BLOCK)


def test_the_header_checksum_is_what_tar_expects() -> None:
    header = member_header(Member("a", 3, 0))
    stored = int(header[148:154], 8)
    assert stored == sum(header[:148]) + 8 * 0x20 + sum(header[156:])
    assert header[257:265] == b"ustar\x0000"


def test_order_is_by_path_bytes_with_folders_before_their_contents() -> None:
    members = [Member("a/x", 1, 0), Member("a-b", 1, 0), Member("a", 0, 0, True), Member("B", 1, 0)]
    assert [m.path for m in ordered(members)] == ["B", "a", "a-b", "a/x"]


def test_the_etag_changes_with_any_member_fact_and_not_with_anything_else() -> None:
    base = archive_etag("tar", TREE)
    assert base == archive_etag("tar", list(TREE))
    assert not base.weak
    assert base.opaque.startswith("tar-")
    changed = [
        [*TREE[:-1], Member("exact-block", BLOCK + 1, TREE[-1].mtime_ns)],
        [*TREE[:-1], Member("exact-block", BLOCK, TREE[-1].mtime_ns + 1)],
        [*TREE[:-1], Member("exact-block", BLOCK, TREE[-1].mtime_ns, executable=True)],
        [*TREE[:-1], Member("exact-blocks", BLOCK, TREE[-1].mtime_ns)],
        TREE[:-1],
    ]
    tags = {archive_etag("tar", members) for members in changed}
    assert base not in tags
    assert len(tags) == len(changed)
    assert archive_etag("zip", TREE) != base


def test_names_and_last_modified() -> None:
    assert archive_filename("photos/2024/", "tar") == "2024.tar"
    assert archive_filename("", "tar") == "files.tar"
    assert newest_mtime_ns(TREE) == 1_700_000_000 * NS + 123_456_789
    assert newest_mtime_ns([]) == 0


def test_pieces_outside_the_archive_are_refused() -> None:
    layout = TarLayout(TREE)
    with pytest.raises(ValueError, match="outside the archive"):
        list(layout.pieces(0, layout.length + 1))


@settings(max_examples=150, deadline=None)
@given(members_strategy, st.data())
def test_any_range_is_the_same_slice_of_the_whole_archive(
    members: list[Member], data: st.DataObject
) -> None:
    layout = TarLayout(ordered(members))
    whole = render(layout, 0, layout.length)
    assert len(whole) == layout.length
    start = data.draw(st.integers(0, layout.length))
    stop = data.draw(st.integers(start, layout.length))
    assert render(layout, start, stop) == whole[start:stop]


@settings(max_examples=150, deadline=None)
@given(members_strategy)
def test_every_byte_is_header_or_exactly_one_members(members: list[Member]) -> None:
    layout = TarLayout(ordered(members))
    pieces = list(layout.pieces(0, layout.length))
    spans = [piece for piece in pieces if isinstance(piece, MemberSpan)]
    headers = sum(len(piece) for piece in pieces if isinstance(piece, bytes))
    assert headers + sum(span.length for span in spans) == layout.length
    # Each member with bytes appears once, whole, in order; header bytes never touch.
    assert [(s.member, s.start, s.stop) for s in spans] == [
        (i, 0, m.size) for i, m in enumerate(layout.members) if m.size
    ]
    assert all(
        not (isinstance(a, bytes) and isinstance(b, bytes)) for a, b in itertools.pairwise(pieces)
    )
