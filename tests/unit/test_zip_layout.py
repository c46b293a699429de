"""The STORED zip layout of a folder, read back by Python's zipfile and by its own
record structure (APPNOTE 6.3.10); ranges of it by property."""

from __future__ import annotations

import calendar
import io
import itertools
import struct
import zipfile
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.sansio.archive import Member, MemberSpan, ordered
from service.sansio.zip import ZipLayout, central_header, dos_datetime, local_header
from tests.support.archive_bytes import content, members_strategy, render, with_crc

NS = 1_000_000_000
GIB = 2**30

TREE = [
    with_crc(member)
    for member in [
        Member("a b.txt", 5, 1_700_000_000 * NS + 123_456_789),
        Member("dir", 0, 1_600_000_000 * NS, is_folder=True),
        Member("dir/ünïcödé 名前.bin", 1000, 1_600_000_000 * NS, executable=True),
        Member("long/" + "x" * 150, 7, 1_600_000_000 * NS),
        Member("long", 0, 1_600_000_000 * NS, is_folder=True),
        Member("empty file", 0, 1_500_000_000 * NS),
        Member("empty folder", 0, 1_500_000_000 * NS, is_folder=True),
        Member("#?%& 'quotes\"", 3, 1_500_000_000 * NS),
    ]
]


def whole(members: list[Member]) -> bytes:
    layout = ZipLayout(ordered(members))
    data = render(layout, 0, layout.length)
    assert len(data) == layout.length
    return data


def extra_fields(extra: bytes) -> dict[int, bytes]:
    found, at = {}, 0
    while at < len(extra):
        tag, length = struct.unpack_from("<HH", extra, at)
        found[tag] = extra[at + 4 : at + 4 + length]
        at += 4 + length
    assert at == len(extra)
    return found


def local_fields(data: bytes, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], dict[int, bytes]]:
    """The local header of ``info`` as its 11 fixed fields and its extra fields."""
    fixed = struct.unpack_from("<IHHHHHIIIHH", data, info.header_offset)
    extra_at = info.header_offset + 30 + fixed[9]
    return fixed, extra_fields(data[extra_at : extra_at + fixed[10]])


def test_zipfile_reads_every_member_with_its_bytes_type_and_mode() -> None:
    data = whole(TREE)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None  # every CRC-32 matches
        infos = archive.infolist()
        assert [info.filename for info in infos] == [
            m.path + "/" if m.is_folder else m.path for m in ordered(TREE)
        ]
        for member, info in zip(ordered(TREE), infos, strict=True):
            assert info.is_dir() == member.is_folder
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.flag_bits == 0x0800  # UTF-8 names, no data descriptor
            assert info.create_system == 3  # Unix: the external attributes hold the mode
            mode = 0o755 if member.is_folder or member.executable else 0o644
            assert info.external_attr >> 16 == mode | (0o040000 if member.is_folder else 0o100000)
            if not member.is_folder:
                assert archive.read(info) == content(member)


def test_the_local_header_holds_the_crc_and_sizes_and_matches_the_central_one() -> None:
    data = whole(TREE)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            fixed, extras = local_fields(data, info)
            signature, version, flags, method, dos_time, dos_date, crc, csize, usize = fixed[:9]
            assert (signature, flags, method) == (0x04034B50, 0x0800, 0)
            assert (crc, csize, usize) == (info.CRC, info.file_size, info.file_size)
            year, month, day, hour, minute, second = info.date_time  # the central header's
            assert dos_date == ((year - 1980) << 9) | (month << 5) | day
            assert dos_time == (hour << 11) | (minute << 5) | (second // 2)
            assert version == info.extract_version == (20 if info.is_dir() else 10)
            assert data[info.header_offset + 30 :][: fixed[9]] == info.filename.encode()
            assert 0x0001 not in extras  # no ZIP64 where nothing overflows
            assert extras[0x5455] == extra_fields(info.extra)[0x5455]
    assert b"PK\x06\x06" not in data  # nor a ZIP64 end record


def test_an_empty_folder_is_an_end_record_only() -> None:
    data = whole([])
    assert data == b"PK\x05\x06" + bytes(18)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.infolist() == []


def test_a_file_without_its_crc_is_refused() -> None:
    with pytest.raises(ValueError, match="no CRC-32"):
        ZipLayout([Member("a", 1, 0)])
    ZipLayout([Member("d", 0, 0, is_folder=True)])  # a folder needs none


def utc(*fields: int) -> int:
    return calendar.timegm((*fields, 0, 0, 0)) * NS  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mtime_ns", "dos", "stamp"),
    [
        (
            utc(2023, 11, 14, 22, 13, 21) + 5,
            (2023, 11, 14, 22, 13, 20),
            utc(2023, 11, 14, 22, 13, 21),
        ),
        (utc(1975, 6, 1, 12, 0, 0), (1980, 1, 1, 0, 0, 0), utc(1975, 6, 1, 12, 0, 0)),
        (-5 * NS, (1980, 1, 1, 0, 0, 0), None),  # before 1970: the DOS floor only
        (utc(2040, 1, 1, 0, 0, 0), (2040, 1, 1, 0, 0, 0), utc(2040, 1, 1, 0, 0, 0)),  # > 2**31
        ((2**32 - 1) * NS, (2106, 2, 7, 6, 28, 14), (2**32 - 1) * NS),
        (2**32 * NS, (2106, 2, 7, 6, 28, 16), None),  # past 32 bits: DOS fields only
        (utc(2200, 1, 1, 0, 0, 0), (2107, 12, 31, 23, 59, 58), None),  # the DOS ceiling
    ],
)
def test_mtimes_as_the_dos_fields_and_the_extended_timestamp_can_hold_them(
    mtime_ns: int, dos: tuple[int, ...], stamp: int | None
) -> None:
    data = whole([with_crc(Member("f", 1, mtime_ns))])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (info,) = archive.infolist()
    assert info.date_time == dos
    _, local_extras = local_fields(data, info)
    central_extras = extra_fields(info.extra)
    if stamp is None:
        assert 0x5455 not in central_extras
        assert 0x5455 not in local_extras
    else:
        expected = struct.pack("<BI", 1, stamp // NS)  # flags: the mtime only
        assert central_extras[0x5455] == local_extras[0x5455] == expected


def test_dos_fields_are_utc_rounded_down_to_even_seconds() -> None:
    dos_time, dos_date = dos_datetime(utc(2001, 2, 3, 4, 5, 7))
    assert dos_date == (21 << 9) | (2 << 5) | 3
    assert dos_time == (4 << 11) | (5 << 5) | 3


class Lazy(io.RawIOBase):
    """A layout as a seekable file, its members' bytes made on demand: zeros."""

    def __init__(self, layout: ZipLayout) -> None:
        self.layout, self.at = layout, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.at, 2: self.layout.length}[whence]
        self.at = base + offset
        return self.at

    def tell(self) -> int:
        return self.at

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        stop = min(self.layout.length, self.at + len(buffer))
        out = b"".join(
            piece if isinstance(piece, bytes) else bytes(piece.length)
            for piece in self.layout.pieces(self.at, stop)
        )
        buffer[: len(out)] = out
        self.at = stop
        return len(out)


def zeros_crc(size: int) -> int:
    crc, block = 0, bytes(2**24)
    for _ in range(size // len(block)):
        crc = zlib.crc32(block, crc)
    return zlib.crc32(bytes(size % len(block)), crc)


def test_zip64_only_on_the_entries_and_records_that_overflow() -> None:
    """A 5 GiB member carries both sizes in ZIP64 extras; the small member after it
    only its offset, in the central header; the end records gain the ZIP64 pair because
    the directory starts past 4 GiB. Nothing of 5 GiB is ever held in memory."""
    big = Member("big.bin", 5 * GIB, utc(2020, 1, 1, 0, 0, 0), crc32=zeros_crc(5 * GIB))
    after = Member("c.txt", 0, utc(2020, 1, 1, 0, 0, 0), crc32=0)
    before = Member("a.txt", 0, utc(2020, 1, 1, 0, 0, 0), crc32=0)
    layout = ZipLayout([before, big, after])
    with zipfile.ZipFile(io.BufferedReader(Lazy(layout), 2**16)) as archive:
        small, huge, late = archive.infolist()
        assert (huge.file_size, huge.compress_size, huge.extract_version) == (5 * GIB, 5 * GIB, 45)
        assert late.header_offset > 4 * GIB
        assert archive.read(late) == b""  # found at its ZIP64 offset, CRC checked
        assert small.extract_version == 10
    huge_local = local_header(big, small_end := len(local_header(before, 0)))
    fixed = struct.unpack_from("<IHHHHHIIIHH", huge_local)
    assert fixed[7:9] == (0xFFFFFFFF, 0xFFFFFFFF)
    local_extras = extra_fields(huge_local[30 + fixed[9] :])
    assert local_extras[0x0001] == struct.pack("<QQ", 5 * GIB, 5 * GIB)  # both sizes
    central_extras = extra_fields(huge.extra)
    assert central_extras[0x0001] == struct.pack("<QQ", 5 * GIB, 5 * GIB)  # no offset
    assert huge.header_offset == small_end
    late_extras = extra_fields(late.extra)
    assert late_extras[0x0001] == struct.pack("<Q", late.header_offset)  # the offset only
    assert 0x0001 not in extra_fields(local_header(after, late.header_offset)[30 + 5 :])
    directory_at = late.header_offset + len(local_header(after, late.header_offset))
    tail = render(layout, layout.length - 98, layout.length)
    assert tail[:4] == b"PK\x06\x06"  # the ZIP64 end record, its locator, the end record
    assert struct.unpack_from("<QQ", tail, 40) == (layout.length - 98 - directory_at, directory_at)
    assert struct.unpack_from("<IIQI", tail, 56) == (0x07064B50, 0, layout.length - 98, 1)
    assert tail[76:80] == b"PK\x05\x06"
    entries, total, size, offset = struct.unpack_from("<HHII", tail, 76 + 8)
    assert (entries, total, size) == (3, 3, layout.length - 98 - directory_at)  # these fit
    assert offset == 0xFFFFFFFF  # this does not


def test_a_member_just_under_4_gib_needs_no_zip64() -> None:
    member = Member("f", 0xFFFFFFFE, 0, crc32=1)
    fixed = struct.unpack_from("<IHHHHHIIIHH", local_header(member, 0))
    assert fixed[1] == 10
    assert fixed[7:9] == (0xFFFFFFFE, 0xFFFFFFFE)
    assert b"\x01\x00\x10\x00" not in central_header(member, 0)
    exact = Member("f", 0xFFFFFFFF, 0, crc32=1)  # the marker value itself needs ZIP64
    assert struct.unpack_from("<IHHHHHIIIHH", local_header(exact, 0))[7] == 0xFFFFFFFF
    zip64 = extra_fields(local_header(exact, 0)[31:])[0x0001]
    assert zip64 == struct.pack("<QQ", exact.size, exact.size)


def test_65535_entries_take_the_zip64_end_record() -> None:
    members = ordered(Member(f"{i:05d}", 0, 0, crc32=0) for i in range(0xFFFF))
    data = whole(members)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert len(archive.infolist()) == 0xFFFF
    end = data[-22:]
    assert struct.unpack_from("<HH", end, 8) == (0xFFFF, 0xFFFF)
    assert data[-22 - 20 - 56 :][:4] == b"PK\x06\x06"
    fewer = whole(members[:-1])
    assert b"PK\x06\x06" not in fewer[-200:]
    assert struct.unpack_from("<HH", fewer[-22:], 8) == (0xFFFE, 0xFFFE)


def test_pieces_outside_the_archive_are_refused() -> None:
    layout = ZipLayout(TREE)
    with pytest.raises(ValueError, match="outside the archive"):
        list(layout.pieces(0, layout.length + 1))


zip_members = members_strategy.map(lambda members: [with_crc(m) for m in members])


@settings(max_examples=150, deadline=None)
@given(zip_members, st.data())
def test_any_range_is_the_same_slice_of_the_whole_archive(
    members: list[Member], data: st.DataObject
) -> None:
    layout = ZipLayout(ordered(members))
    full = render(layout, 0, layout.length)
    assert len(full) == layout.length
    start = data.draw(st.integers(0, layout.length))
    stop = data.draw(st.integers(start, layout.length))
    assert render(layout, start, stop) == full[start:stop]


@settings(max_examples=150, deadline=None)
@given(zip_members)
def test_every_byte_is_header_or_exactly_one_members(members: list[Member]) -> None:
    layout = ZipLayout(ordered(members))
    pieces = list(layout.pieces(0, layout.length))
    spans = [piece for piece in pieces if isinstance(piece, MemberSpan)]
    headers = sum(len(piece) for piece in pieces if isinstance(piece, bytes))
    assert headers + sum(span.length for span in spans) == layout.length
    assert [(s.member, s.start, s.stop) for s in spans] == [
        (i, 0, m.size) for i, m in enumerate(layout.members) if m.size
    ]
    assert all(
        not (isinstance(a, bytes) and isinstance(b, bytes)) for a, b in itertools.pairwise(pieces)
    )
    with zipfile.ZipFile(io.BytesIO(render(layout, 0, layout.length))) as archive:
        assert archive.testzip() is None
        assert [archive.read(info) for info in archive.infolist()] == [
            content(m) for m in layout.members
        ]
