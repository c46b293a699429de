"""POSIX pax archives (IEEE Std 1003.1-2017, ``pax`` "pax Interchange Format"), laid
out without I/O from the members' facts.

Each member is a 512-byte ustar header, preceded by a ``pax`` extended header (typeflag
``x``) when a ustar field cannot hold a value exactly: a path that is not ASCII or longer
than the 100-byte ``name`` field, a size of 8 GiB or more (11 octal digits), an mtime
with a fraction of a second, before 1970 or past the 11-digit field. The body follows,
padded with zeros to a 512-byte block; the archive ends with two zero blocks.

Choices the format leaves open: uid and gid 0 and empty user and group names (the
archive is the same on every node); modes normalised to 0644 for files, 0755 for
executable files and folders; no ``prefix`` field splitting (a long path gets a pax
``path`` record instead, which every pax reader honours); the pax header's own name is
``././@PaxHeader`` (what Python's tarfile writes); no padding to a 10 KiB record (readers
stop at the two zero blocks).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence

from service.sansio.archive import Member, MemberSpan, Piece, clipped, merged

BLOCK = 512
TRAILER = bytes(2 * BLOCK)
_NAME_FIELD = 100
_OCTAL_11 = 8**11  # the size and mtime fields hold 11 octal digits
_PAX_NAME = b"././@PaxHeader"
_REGULAR, _FOLDER, _PAX = b"0", b"5", b"x"
_NS = 1_000_000_000


class TarLayout:
    """The pax archive of ``members`` (in the order given): its length and any range."""

    def __init__(self, members: Sequence[Member]) -> None:
        self.members = members
        starts = array("q", [0])
        offset = 0
        for member in members:
            offset += header_length(member) + _padded(member.size)
            starts.append(offset)
        self._starts = starts  # where member i's headers begin; [-1]: the trailer
        self.length = offset + len(TRAILER)

    def pieces(self, start: int, stop: int) -> Iterator[Piece]:
        """The bytes ``[start, stop)`` of the archive: header bytes (joined where they
        meet) and spans of member files."""
        return merged(self._pieces(start, stop))

    def _pieces(self, start: int, stop: int) -> Iterator[Piece]:
        if not 0 <= start <= stop <= self.length:
            raise ValueError(f"[{start}, {stop}) is outside the archive of {self.length}")
        starts, members = self._starts, self.members
        index = bisect_right(starts, start) - 1
        while index < len(members) and starts[index] < stop:
            member = members[index]
            base = starts[index]
            data = base + header_length(member)
            yield clipped(member_header(member), base, start, stop)
            if member.size and start < data + member.size and data < stop:
                first, last = max(start, data), min(stop, data + member.size)
                yield MemberSpan(index, first - data, last - data)
            padding = _padded(member.size) - member.size
            yield clipped(bytes(padding), data + member.size, start, stop)
            index += 1
        yield clipped(TRAILER, starts[-1], start, stop)


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def header_length(member: Member) -> int:
    """Bytes before the member's body: its ustar header and any pax header."""
    records = _pax_records(member)
    if not records:
        return BLOCK
    return 2 * BLOCK + _padded(len(records))


def member_header(member: Member) -> bytes:
    """The header blocks of one member, exactly :func:`header_length` bytes."""
    name = _tar_name(member)
    ustar = _ustar(name, _mode(member), member.size, member.mtime_ns, _type(member))
    records = _pax_records(member)
    if not records:
        return ustar
    pax = _ustar(_PAX_NAME, 0o644, len(records), member.mtime_ns, _PAX)
    return pax + records + bytes(_padded(len(records)) - len(records)) + ustar


def _tar_name(member: Member) -> bytes:
    path = member.path + "/" if member.is_folder else member.path
    return path.encode("utf-8", "surrogateescape")


def _pax_records(member: Member) -> bytes:
    """The pax records a member needs, in a fixed order; empty when ustar holds it all."""
    records = []
    name = _tar_name(member)
    if len(name) > _NAME_FIELD or not name.isascii():
        records.append(_record(b"path", name))
    if member.size >= _OCTAL_11:
        records.append(_record(b"size", str(member.size).encode()))
    seconds, fraction = divmod(member.mtime_ns, _NS)
    if fraction or not 0 <= seconds < _OCTAL_11:
        records.append(_record(b"mtime", _pax_time(member.mtime_ns).encode()))
    return b"".join(records)


def _pax_time(ns: int) -> str:
    """Seconds since the Epoch as pax writes them: a sign, digits, a decimal fraction."""
    sign = "-" if ns < 0 else ""
    whole, fraction = divmod(abs(ns), _NS)
    if not fraction:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:09d}".rstrip("0")


def _record(key: bytes, value: bytes) -> bytes:
    """``"%d %s=%s\\n"``, where the decimal length counts the whole record, itself too."""
    rest = len(key) + len(value) + 3  # the space, "=" and the newline
    length = rest + len(str(rest))
    if len(str(length)) > len(str(rest)):
        length = rest + len(str(length))
    return b"%d %s=%s\n" % (length, key, value)


def _mode(member: Member) -> int:
    return 0o755 if member.is_folder or member.executable else 0o644


def _type(member: Member) -> bytes:
    return _FOLDER if member.is_folder else _REGULAR


def _ustar(name: bytes, mode: int, size: int, mtime_ns: int, typeflag: bytes) -> bytes:
    """One ustar header block; values a field cannot hold are 0 here (and in pax)."""
    seconds = mtime_ns // _NS
    size_field = size if size < _OCTAL_11 else 0
    mtime_field = seconds if 0 <= seconds < _OCTAL_11 else 0
    fitted = name if len(name) <= _NAME_FIELD and name.isascii() else _ascii_name(name)
    header = b"".join(
        (
            fitted.ljust(_NAME_FIELD, b"\0"),
            b"%07o\0" % mode,
            b"0000000\0",  # uid
            b"0000000\0",  # gid
            b"%011o\0" % size_field,
            b"%011o\0" % mtime_field,
            b" " * 8,  # the checksum, counted as spaces
            typeflag,
            bytes(100),  # linkname
            b"ustar\x0000",  # magic and version
            bytes(32),  # uname
            bytes(32),  # gname
            b"0000000\0",  # devmajor
            b"0000000\0",  # devminor
            bytes(155),  # prefix
            bytes(12),
        )
    )
    checksum = b"%06o\0 " % sum(header)
    return header[:148] + checksum + header[156:]


def _ascii_name(name: bytes) -> bytes:
    """A stand-in for the ``name`` field when the pax ``path`` record holds the name."""
    text = name.decode("utf-8", "surrogateescape").encode("ascii", "replace")
    return text[:_NAME_FIELD]
