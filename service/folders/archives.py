"""``GET``/``HEAD /files/<folder>/?format=tar|zip``: a folder's whole tree as one
archive, with ranges and preconditions like a file.

This module does the I/O around the pure layouts: it walks the tree (in an I/O thread),
takes a zip's CRC-32s from the digest store (``503`` while any is unknown), plans the
answer through the same core as a file (:func:`service.sansio.plan_response` over the
archive's bytes, with the archive's own validators), and opens each member when the
stream reaches it, as the version it was planned with.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from flask import Response, current_app, request

from config import Settings
from service.delivery.archives import MemberOpener
from service.delivery.responses import archive_response
from service.digests import DigestStore, hashing_wait
from service.sansio import Conditions, Policy, Representation, plan_response
from service.sansio.archive import (
    FORMATS,
    Layout,
    Member,
    archive_etag,
    archive_filename,
    newest_mtime_ns,
    ordered,
)
from service.sansio.tar import TarLayout
from service.sansio.zip import ZipLayout
from service.storage.access import Storage
from service.storage.catalog import OpenFile
from service.web.errors import (
    CatalogError,
    ChecksumsPendingError,
    MemberChangedError,
    NotFoundError,
    StorageError,
)


def available(settings: Settings, digests: DigestStore | None) -> tuple[str, ...]:
    """The archive formats this service offers: a zip needs the digest pass."""
    if not settings.archives:
        return ()
    return FORMATS if digests is not None else tuple(k for k in FORMATS if k != "zip")


def respond(storage: Storage, folder: str, kind: str, conditions: Conditions) -> Response:
    """The answer to a GET or HEAD of ``folder``'s archive (``folder``: its URL path
    below ``/files/``, "" for the root)."""
    settings: Settings = current_app.extensions["settings"]
    digests: DigestStore | None = current_app.extensions["digests"]
    if kind not in available(settings, digests):
        raise NotFoundError
    prefix = folder.rstrip("/") + "/" if folder.strip("/") else ""
    members = ordered(storage.walk_tree(prefix, settings.archive_max_members))
    layout: Layout
    if kind == "zip" and digests is not None:  # available() offers no zip without them
        members = _with_crc32s(digests, prefix, members)
        layout = ZipLayout(members)
    else:
        layout = TarLayout(members)
    rep = Representation(
        archive_filename(prefix, kind),
        layout.length,
        newest_mtime_ns(members),
        tag=archive_etag(kind, members),
    )
    policy = Policy(settings.max_ranges, settings.cache_control)
    method = request.environ["REQUEST_METHOD"].upper()
    plan = plan_response(method, conditions, rep, policy, int(time.time()))
    opener = _opener(storage, prefix, members)
    return archive_response(
        layout, plan, opener, settings, request.environ, f"{prefix}?format={kind}"
    )


def _with_crc32s(digests: DigestStore, prefix: str, members: Sequence[Member]) -> list[Member]:
    """``members`` with their CRC-32s; if any is unknown, every missing one is queued
    for the digest pass and the zip waits for them (:class:`ChecksumsPendingError`)."""
    found, files, missing, missing_bytes = [], 0, 0, 0
    for member in members:
        if member.is_folder:
            found.append(member)
            continue
        files += 1
        crc32 = digests.crc32(prefix + member.path, member.size, member.mtime_ns)
        if crc32 is None:
            missing += 1
            missing_bytes += member.size
        else:
            found.append(replace(member, crc32=crc32))
    if missing:
        raise ChecksumsPendingError(missing, files, hashing_wait(missing_bytes))
    return found


def _opener(storage: Storage, prefix: str, members: list[Member]) -> MemberOpener:
    def open_member(index: int) -> OpenFile:
        member = members[index]
        try:
            opened = storage.open_file(prefix + member.path)
        except StorageError:
            raise
        except CatalogError as error:  # gone, replaced by a folder, no longer servable
            raise MemberChangedError(member.path, 0) from error
        facts = opened.representation
        if (facts.size, facts.mtime_ns) != (member.size, member.mtime_ns):
            opened.close()
            raise MemberChangedError(member.path, 0)
        return opened

    return open_member
