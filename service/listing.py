"""The JSON listing of a folder: one object per servable entry, folders marked.

With signed links on, each entry URL carries its own signature (``sign``), so a signed
listing leads to links that open.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from service.catalog import FolderEntry
from service.sansio.validators import make_etag

Sign = Callable[[str], str]


def folder_document(
    url_prefix: str, entries: list[FolderEntry], sign: Sign | None = None
) -> dict[str, Any]:
    """``url_prefix`` is the folder's own URL path, ending in ``/``. ``sign``, if given,
    maps an entry's decoded path below the folder (``name``, or ``name/`` for a folder)
    to the query that signs its URL."""
    return {
        "path": url_prefix,
        "entries": [_entry(url_prefix, entry, sign) for entry in entries],
    }


def _entry(url_prefix: str, entry: FolderEntry, sign: Sign | None) -> dict[str, Any]:
    mtime = datetime.fromtimestamp(entry.mtime_ns // 1_000_000_000, UTC)
    relative = entry.name + ("/" if entry.is_folder else "")
    url = url_prefix + quote(relative)
    item: dict[str, Any] = {
        "name": entry.name,
        "type": "folder" if entry.is_folder else "file",
        "url": url if sign is None else f"{url}?{sign(relative)}",
        "mtime": mtime.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if not entry.is_folder:
        item["size"] = entry.size
        item["etag"] = str(make_etag(entry.size, entry.mtime_ns))
    return item
