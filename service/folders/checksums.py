"""``GET /files/<folder>/?format=sha256``: a folder's files in ``sha256sum`` format.

One ``<hex>  <name>`` line per file whose digest is known, so ``sha256sum -c`` run in a
mirror of the folder checks every listed file. Files not hashed yet are queued and
named in trailing comment lines, which ``sha256sum -c`` skips (as it skips any line
starting with ``#``), so the listing is always checkable and says what it left out; so
are entries the storage would not describe, with the errno.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Response

from service.digests import DigestStore, entry_path
from service.storage.catalog import FolderEntry
from service.web.errors import text_response

PENDING = "# not hashed yet, ask again later: "
UNAVAILABLE = "# unavailable, storage error {}: "


def checksum_listing(
    store: DigestStore | None, folder: str, entries: Iterable[FolderEntry]
) -> Response:
    """The listing of the folder at URL path ``folder`` (``""`` for the root)."""
    if store is None:
        return text_response(404, "Not Found: checksums are turned off")
    known: list[tuple[str, bytes]] = []
    pending: list[str] = []
    unavailable: list[str] = []
    for entry in entries:
        if entry.error is not None:
            unavailable.append(UNAVAILABLE.format(entry.error) + _escape(entry.name)[0])
            continue
        if entry.is_folder:
            continue
        sha256 = store.lookup(entry_path(folder, entry.name), entry.size, entry.mtime_ns)
        if sha256 is None:
            pending.append(entry.name)
        else:
            known.append((entry.name, sha256))
    response = Response(render(known, pending) + render_notes(unavailable), mimetype="text/plain")
    response.headers["Cache-Control"] = "no-cache"
    return response


def render(known: Iterable[tuple[str, bytes]], pending: Iterable[str] = ()) -> str:
    """``sha256sum`` text mode lines, then a comment line per pending name."""
    lines = [_line(sha256.hex(), name) for name, sha256 in known]
    lines += [PENDING + _escape(name)[0] for name in pending]
    return "".join(line + "\n" for line in lines)


def render_notes(notes: Iterable[str]) -> str:
    return "".join(note + "\n" for note in notes)


def _line(hex_digest: str, name: str) -> str:
    escaped, changed = _escape(name)
    # GNU coreutils: a name with a backslash or line feed is escaped, and the line then
    # starts with a backslash (the catalog lists no such names; this keeps lines whole).
    return ("\\" if changed else "") + f"{hex_digest}  {escaped}"


def _escape(name: str) -> tuple[str, bool]:
    escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return escaped, escaped != name
