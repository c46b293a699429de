"""The JSON listing of a folder: one object per servable entry, folders marked.

With signed links on, each entry URL carries its own signature (``sign``), so a signed
listing leads to links that open. A file's ``etag`` is the one its download carries, and
its ``sha256`` (hex) is listed when already known: listing a folder never queues hashing.
An entry the storage would not describe (its ``stat`` failed) is still listed, with
``type`` ``unknown`` and the ``error`` (an errno name).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from service.sansio import Representation
from service.storage.catalog import FolderEntry

Sign = Callable[[str], str]
#: The SHA-256 of an entry's version if known: (entry name, size, mtime_ns) -> digest.
KnownDigest = Callable[[str, int, int], bytes | None]


def folder_document(
    url_prefix: str,
    entries: list[FolderEntry],
    sign: Sign | None = None,
    known_digest: KnownDigest | None = None,
    digest_etag: bool = False,
) -> dict[str, Any]:
    """``url_prefix`` is the folder's own URL path, ending in ``/``. ``sign``, if given,
    maps an entry's decoded path below the folder (``name``, or ``name/`` for a folder)
    to the query that signs its URL. ``digest_etag``: as ``DL_ETAG=digest``."""
    return {
        "path": url_prefix,
        "entries": [
            _entry(url_prefix, entry, sign, known_digest, digest_etag) for entry in entries
        ],
    }


def archive_urls(url_prefix: str, kinds: Iterable[str], sign: Sign | None) -> dict[str, str]:
    """The folder's archive URLs by format; signed like its entries, for the archive's
    own path form (:func:`service.sansio.archive.signed_path`)."""
    urls = {}
    for kind in kinds:
        query = f"format={kind}"
        urls[kind] = (
            f"{url_prefix}?{query}" if sign is None else f"{url_prefix}?{query}&{sign('?' + query)}"
        )
    return urls


def _entry(
    url_prefix: str,
    entry: FolderEntry,
    sign: Sign | None,
    known_digest: KnownDigest | None,
    digest_etag: bool,
) -> dict[str, Any]:
    relative = entry.name + ("/" if entry.is_folder else "")
    url = url_prefix + quote(relative)
    url = url if sign is None else f"{url}?{sign(relative)}"
    if entry.error is not None:  # its stat failed: what it is stays unknown
        return {"name": entry.name, "type": "unknown", "url": url, "error": entry.error}
    mtime = datetime.fromtimestamp(entry.mtime_ns // 1_000_000_000, UTC)
    item: dict[str, Any] = {
        "name": entry.name,
        "type": "folder" if entry.is_folder else "file",
        "url": url,
        "mtime": mtime.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if not entry.is_folder:
        sha256 = (
            None if known_digest is None else known_digest(entry.name, entry.size, entry.mtime_ns)
        )
        rep = Representation(entry.name, entry.size, entry.mtime_ns, sha256)
        item["size"] = entry.size
        item["etag"] = str(rep.etags(digest_etag)[0])
        if sha256 is not None:
            item["sha256"] = sha256.hex()
        if known_digest is not None:  # the digest pass runs: the file has a Metalink
            # A link signed for a file also opens its Metalink (service.web.metalinks).
            item["meta4"] = f"{url}{'&' if '?' in url else '?'}format=meta4"
    return item
