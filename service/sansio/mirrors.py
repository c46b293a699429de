"""Mirrors of the tree and the RFC 6249 ``Link`` fields that name them (no I/O).

A mirror is the ``/files/`` URL of another server that holds the same tree
(``DL_MIRRORS``): a file at ``<path>`` below our ``/files/`` is ``<base><path>`` there.
Each file answer then names the file's other sources and its Metalink in ``Link``
fields, and the Metalink document lists this node first and the mirrors after it.

Choices where RFC 6249 and RFC 8288 leave one:

- One ``Link`` field line per link, not one comma-separated line: RFC 8288 §3 allows
  both, and aria2c reads only the first link of each line.
- A mirror without ``;pri=`` gets 1 + its place in ``DL_MIRRORS`` (2, 3, ...): the list's
  order is its preference, and this node, 1 in the Metalink, comes before all of them.
  RFC 6249 §3.1: 1 to 999999, the lowest first.
- ``rel=duplicate`` and ``pri`` are written as tokens, as in RFC 6249's examples;
  ``type`` of ``describedby`` is a quoted string, as RFC 8288 §3.4.1 writes it.
- The ``describedby`` target is a path-absolute reference (RFC 3986 §4.2), valid behind
  any host name or proxy that keeps the path; mirror targets are absolute, as they name
  other servers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from service.sansio.metalink import MAX_PRIORITY, MEDIA_TYPE, Source

LINK = "Link"
#: Mirrors ``DL_MIRRORS`` may name: more is a mirror network, which needs a redirector.
MAX_MIRRORS = 64

# An absolute http(s) URL with no user, query or fragment, in characters a Link target
# (RFC 8288 §3: between "<" and ">") and an XML text node carry as they are.
_BASE = re.compile(
    r"(?P<scheme>https?)://"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>/[A-Za-z0-9\-._~%!$&'()*+=:@/]*)?",
    re.ASCII,
)
_PRIORITY = re.compile(r"[0-9]{1,6}")
_COUNTRY = re.compile(r"[A-Za-z]{2}")


class MirrorError(ValueError):
    """An entry of ``DL_MIRRORS`` that cannot name a mirror; the message says which."""


@dataclass(frozen=True, slots=True)
class Mirror:
    """The ``/files/`` URL of a server holding the same tree (ends in ``/``)."""

    base: str
    priority: int
    location: str | None = None  # ISO 3166-1 alpha-2, lower case (RFC 6249 §3.1 ``geo``)

    def url(self, path: str) -> str:
        """Its URL of the file at ``path`` below ``/files/``, already percent-encoded."""
        return self.base + path


def parse_mirrors(text: str) -> tuple[Mirror, ...]:
    """``DL_MIRRORS``: comma-separated base URLs, each optionally followed by ``;pri=N``
    and ``;geo=CC``, best first. Empty: no mirrors. Raises :class:`MirrorError`."""
    entries = [entry.strip() for entry in text.split(",")] if text.strip() else []
    if len(entries) > MAX_MIRRORS:
        raise MirrorError(f"{len(entries)} mirrors; at most {MAX_MIRRORS}")
    mirrors = [_mirror(entry, place) for place, entry in enumerate(entries, 1)]
    bases = [mirror.base for mirror in mirrors]
    for place, base in enumerate(bases, 1):
        if base in bases[: place - 1]:
            raise MirrorError(f"mirror {place} repeats mirror {bases.index(base) + 1}: {base}")
    return tuple(sorted(mirrors, key=lambda mirror: mirror.priority))  # stable: ties keep order


def _mirror(entry: str, place: int) -> Mirror:
    where = f"mirror {place}"
    base, *parameters = (part.strip() for part in entry.split(";"))
    found = _BASE.fullmatch(base)
    if found is None:
        raise MirrorError(
            f"{where}: {base!r} is not an http(s) URL without user, query or fragment "
            "(e.g. https://mirror.example.org/files/)"
        )
    if found["port"] is not None and not 1 <= int(found["port"]) <= 65535:
        raise MirrorError(f"{where}: port {found['port']} is out of range")
    priority, location = place + 1, None
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        name = name.strip().lower()
        value = value.strip()
        if name == "pri" and _PRIORITY.fullmatch(value) and 1 <= int(value) <= MAX_PRIORITY:
            priority = int(value)
        elif name == "geo" and _COUNTRY.fullmatch(value):
            location = value.lower()
        else:
            raise MirrorError(
                f"{where}: {parameter!r}; expected pri=1..{MAX_PRIORITY} or geo=<two letters>"
            )
    if not base.endswith("/"):
        base += "/"
    return Mirror(base, min(priority, MAX_PRIORITY), location)


def sources(own_url: str, mirrors: Sequence[Mirror], path: str, query: str) -> list[Source]:
    """The Metalink ``<url>`` list of the file at ``path`` (percent-encoded, below
    ``/files/``): this node's own URL first, at priority 1, then each mirror's.
    ``query`` (a signed link's, or empty) is added to every mirror URL."""
    suffix = f"?{query}" if query else ""
    listed = [Source(own_url)]
    listed.extend(Source(m.url(path) + suffix, m.priority, m.location) for m in mirrors)
    return listed


def link_fields(
    metalink: str | None, mirrors: Sequence[Mirror], path: str, query: str, limit: int
) -> tuple[tuple[str, str], ...]:
    """The ``Link`` fields of a file answer, as header pairs: its Metalink (``metalink``, a URL
    reference, None while it cannot be served) and the first ``limit`` of ``mirrors``
    (best first, as :func:`parse_mirrors` orders them; RFC 6249 §3.1, §3.2). ``path`` and
    ``query`` as for :func:`sources`."""
    fields: list[tuple[str, str]] = []
    if metalink is not None:
        fields.append((LINK, f'<{metalink}>; rel=describedby; type="{MEDIA_TYPE}"'))
    suffix = f"?{query}" if query else ""
    for mirror in mirrors[:limit]:
        geo = f"; geo={mirror.location}" if mirror.location is not None else ""
        link = f"<{mirror.url(path)}{suffix}>; rel=duplicate; pri={mirror.priority}{geo}"
        fields.append((LINK, link))
    return tuple(fields)
