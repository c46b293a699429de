"""The JSON listing of a folder: one object per servable entry, folders marked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from service.catalog import FolderEntry
from service.sansio.validators import make_etag


def folder_document(url_prefix: str, entries: list[FolderEntry]) -> dict[str, Any]:
    """``url_prefix`` is the folder's own URL path, ending in ``/``."""
    return {"path": url_prefix, "entries": [_entry(url_prefix, entry) for entry in entries]}


def _entry(url_prefix: str, entry: FolderEntry) -> dict[str, Any]:
    mtime = datetime.fromtimestamp(entry.mtime_ns // 1_000_000_000, UTC)
    item: dict[str, Any] = {
        "name": entry.name,
        "type": "folder" if entry.is_folder else "file",
        "url": url_prefix + quote(entry.name) + ("/" if entry.is_folder else ""),
        "mtime": mtime.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if not entry.is_folder:
        item["size"] = entry.size
        item["etag"] = str(make_etag(entry.size, entry.mtime_ns))
    return item
