"""ZIP archives (PKWARE APPNOTE.TXT 6.3.10), every member STORED, laid out without I/O
from the members' facts, their CRC-32s included.

Each member is a local file header followed by the file's bytes as they are (method 0:
every byte of a member is one byte of its file, which is what makes the archive
addressable by ranges), then one central directory header per member, then the end
records. Rules followed here that are not obvious:

- The CRC-32 and both sizes are in the local header, and flag bit 3 (data descriptor)
  is never set (4.4.4): a streaming reader cannot find the end of a STORED entry
  whose sizes follow it.
- Every name is UTF-8 with flag bit 11 set (4.4.4, appendix D); a folder's ends in "/".
- ZIP64 only where a value overflows its field, since forcing it breaks some readers
  (4.5.3): an entry of 0xFFFFFFFF bytes or more carries the ZIP64 extra field with both
  sizes in its local header, and in its central header with the sizes and, if that
  overflows too, the local header's offset; the ZIP64 end record and its locator
  (4.3.14, 4.3.15) come only when the entry count, the central directory's size or its
  offset overflows the end record's fields, which then hold -1 (4.4.1.4).

Choices the format leaves open: the DOS date and time fields (4.4.6) hold the UTC time,
so no server's time zone leaks in and every node writes the same bytes; they are
rounded down to even seconds and clamped to 1980-01-01 .. 2107-12-31, the span they can
hold. The extended timestamp field (0x5455, Info-ZIP) gives the exact UTC second when
it fits its 32 bits unsigned (1970 .. 2106), as Info-ZIP's unzip and libarchive read it;
outside that span only the DOS fields remain. "Version made by" is Unix, so the external
attributes carry the modes of the tar layout (0644, 0755 for executable files and for
folders, which also get the MS-DOS directory bit). No archive or member comments.
"""

from __future__ import annotations

import struct
import time
from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence

from service.sansio.archive import Member, MemberSpan, Piece, clipped, merged

_LOCAL = struct.Struct("<IHHHHHIIIHH")  # 4.3.7
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # 4.3.12
_END = struct.Struct("<IHHHHIIH")  # 4.3.16
_END64 = struct.Struct("<IQHHIIQQQQ")  # 4.3.14
_LOCATOR = struct.Struct("<IIQI")  # 4.3.15
_LOCAL_SIGNATURE, _CENTRAL_SIGNATURE = 0x04034B50, 0x02014B50
_END_SIGNATURE, _END64_SIGNATURE, _LOCATOR_SIGNATURE = 0x06054B50, 0x06064B50, 0x07064B50

_UTF8 = 0x0800  # general purpose flag bit 11
_STORED = 0
_MAX32, _MAX16 = 0xFFFFFFFF, 0xFFFF
_ZIP64_TAG, _TIMESTAMP_TAG = 0x0001, 0x5455
_VERSION_FILE, _VERSION_FOLDER, _VERSION_ZIP64 = 10, 20, 45  # 4.4.3.2
_MADE_BY = (3 << 8) | 63  # Unix, by this version (6.3) of the APPNOTE (4.4.2)
_DOS_FOLDER = 0x10
_NS = 1_000_000_000
_DOS_FIRST = 315_532_800  # 1980-01-01T00:00:00Z
_DOS_LAST = 4_354_819_198  # 2107-12-31T23:59:58Z


class ZipLayout:
    """The STORED zip of ``members`` (in the order given): its length and any range.
    Every file member needs its ``crc32``."""

    def __init__(self, members: Sequence[Member]) -> None:
        self.members = members
        local = array("q", [0])
        offset = 0
        for member in members:
            if member.crc32 is None and not member.is_folder:
                raise ValueError(f"{member.path!r} has no CRC-32")
            offset += local_header_length(member) + member.size
            local.append(offset)
        central = array("q", [offset])
        for index, member in enumerate(members):
            offset += len(central_header(member, local[index]))
            central.append(offset)
        self._local = local  # where member i's local header begins; [-1]: the directory
        self._central = central  # where member i's central header begins; [-1]: the end
        self._end = end_records(len(members), local[-1], offset - local[-1])
        self.length = offset + len(self._end)

    def pieces(self, start: int, stop: int) -> Iterator[Piece]:
        """The bytes ``[start, stop)`` of the archive: header bytes (joined where they
        meet) and spans of member files."""
        return merged(self._pieces(start, stop))

    def _pieces(self, start: int, stop: int) -> Iterator[Piece]:
        if not 0 <= start <= stop <= self.length:
            raise ValueError(f"[{start}, {stop}) is outside the archive of {self.length}")
        local, central, members = self._local, self._central, self.members
        index = bisect_right(local, start) - 1
        while index < len(members) and local[index] < stop:
            member, base = members[index], local[index]
            header = local_header(member, base)
            yield clipped(header, base, start, stop)
            data = base + len(header)
            if member.size and start < data + member.size and data < stop:
                first, last = max(start, data), min(stop, data + member.size)
                yield MemberSpan(index, first - data, last - data)
            index += 1
        index = max(0, bisect_right(central, start) - 1)
        while index < len(members) and central[index] < stop:
            yield clipped(central_header(members[index], local[index]), central[index], start, stop)
            index += 1
        yield clipped(self._end, central[-1], start, stop)


def _name(member: Member) -> bytes:
    path = member.path + "/" if member.is_folder else member.path
    return path.encode("utf-8", "surrogateescape")


def _needs_zip64(member: Member) -> bool:
    return member.size >= _MAX32


def _version(member: Member, offset: int) -> int:
    if _needs_zip64(member) or offset >= _MAX32:
        return _VERSION_ZIP64
    return _VERSION_FOLDER if member.is_folder else _VERSION_FILE


def local_header_length(member: Member) -> int:
    """Bytes of a member's local header: its fixed part, name and extra fields."""
    return _LOCAL.size + len(_name(member)) + len(_local_extra(member))


def local_header(member: Member, offset: int) -> bytes:
    """The local file header of ``member``, whose header begins at ``offset``."""
    name, extra = _name(member), _local_extra(member)
    size = _MAX32 if _needs_zip64(member) else member.size
    dos_time, dos_date = dos_datetime(member.mtime_ns)
    fixed = _LOCAL.pack(
        _LOCAL_SIGNATURE, _version(member, offset), _UTF8, _STORED, dos_time, dos_date,
        member.crc32 or 0, size, size, len(name), len(extra),
    )  # fmt: skip
    return fixed + name + extra


def central_header(member: Member, offset: int) -> bytes:
    """The central directory header of ``member``, whose local header is at ``offset``."""
    name = _name(member)
    zip64 = []
    if _needs_zip64(member):
        zip64 += [member.size, member.size]  # original, then compressed (4.5.3)
    if offset >= _MAX32:
        zip64.append(offset)
    extra = _zip64_extra(zip64) + _timestamp_extra(member.mtime_ns)
    size = _MAX32 if _needs_zip64(member) else member.size
    dos_time, dos_date = dos_datetime(member.mtime_ns)
    version = _version(member, offset)
    fixed = _CENTRAL.pack(
        _CENTRAL_SIGNATURE, _MADE_BY, version, _UTF8, _STORED, dos_time, dos_date,
        member.crc32 or 0, size, size, len(name), len(extra), 0, 0, 0,
        _external_attributes(member), min(offset, _MAX32),
    )  # fmt: skip
    return fixed + name + extra


def end_records(count: int, directory_at: int, directory_size: int) -> bytes:
    """The end of central directory record, after the ZIP64 end record and its locator
    when one of its fields overflows (those fields then hold -1)."""
    end = _END.pack(
        _END_SIGNATURE, 0, 0, min(count, _MAX16), min(count, _MAX16),
        min(directory_size, _MAX32), min(directory_at, _MAX32), 0,
    )  # fmt: skip
    if count < _MAX16 and directory_at < _MAX32 and directory_size < _MAX32:
        return end
    record_at = directory_at + directory_size
    record = _END64.pack(
        _END64_SIGNATURE, _END64.size - 12, _MADE_BY, _VERSION_ZIP64, 0, 0,
        count, count, directory_size, directory_at,
    )  # fmt: skip
    return record + _LOCATOR.pack(_LOCATOR_SIGNATURE, 0, record_at, 1) + end


def _local_extra(member: Member) -> bytes:
    sizes = [member.size, member.size] if _needs_zip64(member) else []
    return _zip64_extra(sizes) + _timestamp_extra(member.mtime_ns)


def _zip64_extra(values: list[int]) -> bytes:
    if not values:
        return b""
    return struct.pack(f"<HH{len(values)}Q", _ZIP64_TAG, 8 * len(values), *values)


def _timestamp_extra(mtime_ns: int) -> bytes:
    """Info-ZIP's extended timestamp with the modification time only (flag bit 0), the
    same bytes in the local and the central header."""
    seconds = mtime_ns // _NS
    if not 0 <= seconds <= _MAX32:
        return b""
    return struct.pack("<HHBI", _TIMESTAMP_TAG, 5, 1, seconds)


def dos_datetime(mtime_ns: int) -> tuple[int, int]:
    """The DOS (time, date) fields of a UTC time, clamped to the span they can hold."""
    seconds = min(max(mtime_ns // _NS, _DOS_FIRST), _DOS_LAST)
    utc = time.gmtime(seconds)
    dos_time = (utc.tm_hour << 11) | (utc.tm_min << 5) | (utc.tm_sec // 2)
    dos_date = ((utc.tm_year - 1980) << 9) | (utc.tm_mon << 5) | utc.tm_mday
    return dos_time, dos_date


def _external_attributes(member: Member) -> int:
    if member.is_folder:
        return (0o040755 << 16) | _DOS_FOLDER
    return (0o100755 if member.executable else 0o100644) << 16
