"""Archive layouts rendered in memory for the pure tests: stand-in member bytes, any
range of a layout as bytes, and the members hypothesis draws."""

from __future__ import annotations

import hashlib
import zlib

from hypothesis import strategies as st

from service.sansio.archive import Layout, Member


def content(member: Member) -> bytes:
    """A member's stand-in bytes, different per path."""
    seed = hashlib.sha256(member.path.encode()).digest()
    return (seed * (member.size // len(seed) + 1))[: member.size]


def with_crc(member: Member) -> Member:
    """``member`` with the CRC-32 of its stand-in bytes, as the digest pass finds it."""
    crc = None if member.is_folder else zlib.crc32(content(member))
    return Member(
        member.path, member.size, member.mtime_ns, member.is_folder, member.executable, crc
    )


def render(layout: Layout, start: int, stop: int) -> bytes:
    out = []
    for piece in layout.pieces(start, stop):
        if isinstance(piece, bytes):
            out.append(piece)
        else:
            out.append(content(layout.members[piece.member])[piece.start : piece.stop])
    return b"".join(out)


members_strategy = st.lists(
    st.builds(
        Member,
        path=st.text(
            st.characters(blacklist_characters="/\0", codec="utf-8"), min_size=1, max_size=120
        ),
        size=st.integers(0, 3000),
        mtime_ns=st.integers(-(2**62), 2**62),
        executable=st.booleans(),
    ),
    max_size=8,
    unique_by=lambda member: member.path,
)
