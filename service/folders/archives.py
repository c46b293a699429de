"""``GET``/``HEAD /files/<folder>/?format=tar``: a folder's whole tree as one archive,
with ranges and preconditions like a file.

This module does the I/O around the pure layout: it walks the tree (in an I/O thread),
plans the answer through the same core as a file (:func:`service.sansio.plan_response`
over the archive's bytes, with the archive's own validators), and opens each member when
the stream reaches it, as the version it was planned with.
"""

from __future__ import annotations

import time

from flask import Response, current_app, request

from config import Settings
from service.delivery.archives import MemberOpener
from service.delivery.responses import archive_response
from service.sansio import Conditions, Policy, Representation, plan_response
from service.sansio.archive import (
    Member,
    archive_etag,
    archive_filename,
    newest_mtime_ns,
    ordered,
)
from service.sansio.tar import TarLayout
from service.storage.access import Storage
from service.storage.catalog import OpenFile
from service.web.errors import CatalogError, MemberChangedError, NotFoundError, StorageError


def respond(storage: Storage, folder: str, kind: str, conditions: Conditions) -> Response:
    """The answer to a GET or HEAD of ``folder``'s archive (``folder``: its URL path
    below ``/files/``, "" for the root)."""
    settings: Settings = current_app.extensions["settings"]
    if not settings.archives:
        raise NotFoundError
    prefix = folder.rstrip("/") + "/" if folder.strip("/") else ""
    members = ordered(storage.walk_tree(prefix, settings.archive_max_members))
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
