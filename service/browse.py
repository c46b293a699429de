"""The HTML browse page of a folder: the JSON listing's document, rendered for people.

It owns which listing a client gets (``?format=`` first, then the ``Accept`` header) and
how the page shows each entry: a human size, the UTC date, the download link (signed
exactly as in the JSON listing), copyable ``curl``/``wget``/``aria2c`` commands with the
absolute, shell-quoted URL, the SHA-256 once known, and for audio and video a player
(``?play=<name>``) that streams the file with ``?inline=1``. With digests on, the page
links the folder's ``sha256sum`` list. Jinja escapes everything that reaches the HTML.
"""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

from flask import Request, Response, render_template

from service.sansio.media_types import guess_type

HTML, JSON = "text/html", "application/json"
PLAY = "play"
_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


@dataclass(frozen=True, slots=True)
class Row:
    """One entry as the page shows it."""

    name: str
    is_folder: bool
    href: str
    mtime: str
    size: int | None
    human_size: str
    commands: tuple[str, ...]
    sha256: str | None  # hex, when already known
    media: str | None  # "video" or "audio" when the browser may play it
    play_href: str | None  # this page with the entry's player
    inline_href: str | None  # the file with ``inline=1``: what the player streams
    error: str | None = None  # the storage error (errno name) that hides its details


@dataclass(frozen=True, slots=True)
class Crumb:
    label: str
    href: str | None  # None: not a link (the current folder, or outside a signed link)


def wants_html(request: Request) -> bool:
    """An explicit ``?format=`` wins (only ``html`` is the page); without one, the page
    goes to clients that prefer ``text/html`` (browsers), JSON to everyone else, ``*/*``
    and no ``Accept`` included. RFC 9110 §12.5.1: equal preference keeps JSON."""
    chosen = request.args.get("format")
    if chosen is not None:
        return chosen == "html"
    return request.accept_mimetypes.best_match([JSON, HTML]) == HTML


def page(document: dict[str, Any], request: Request, signed: bool, checksums: bool) -> Response:
    """The listing ``document`` (from :func:`service.listing.folder_document`) as HTML.

    ``signed``: the listing came through a signed link, so folders above it are shown
    without links (their URLs would need signatures of their own). ``checksums``: the
    folder's ``?format=sha256`` list exists (digests are on)."""
    origin = request.host_url.rstrip("/")
    rows = [_row(entry, origin, request) for entry in document["entries"]]
    playing = next((r for r in rows if r.media and r.name == request.args.get(PLAY)), None)
    crumbs = _crumbs(document["path"], request.script_root, signed)
    nonce = secrets.token_urlsafe(16)
    html = render_template(
        "browse.html",
        title="Index of /" + "".join(f"{crumb.label}/" for crumb in crumbs[1:]),
        crumbs=crumbs,
        rows=rows,
        playing=playing,
        sums_href=_page_query(request, format="sha256") if checksums else None,
        nonce=nonce,
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; img-src data:; media-src 'self'; style-src 'unsafe-inline'; "
        f"script-src 'nonce-{nonce}'; base-uri 'none'; form-action 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def human_size(size: int) -> str:
    """``"512 B"``, ``"1.5 KiB"``, ``"300 MiB"``: at most three significant digits."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            break
    return f"{value:.{2 if value < 10 else 1 if value < 100 else 0}f} {unit}"


def commands(url: str) -> tuple[str, ...]:
    """Resumable download commands; the URL is one shell word whatever it contains."""
    word = shlex.quote(url)
    return (f"curl -C - -O {word}", f"wget -c {word}", f"aria2c -x8 -s8 {word}")


def media_kind(name: str) -> str | None:
    kind = guess_type(name).partition("/")[0]
    return kind if kind in ("video", "audio") else None


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query (a signed URL keeps its signature)."""
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


def _row(entry: dict[str, Any], origin: str, request: Request) -> Row:
    if "error" in entry:  # the storage would not say what it is: shown as unavailable
        return Row(entry["name"], False, entry["url"], "", None, "", (), None, None, None, None,
                   error=entry["error"])  # fmt: skip
    is_folder = entry["type"] == "folder"
    size = None if is_folder else int(entry["size"])
    media = None if is_folder else media_kind(entry["name"])
    play_href = None if media is None else _page_query(request, **{PLAY: entry["name"]})
    return Row(
        name=entry["name"],
        is_folder=is_folder,
        href=entry["url"],
        mtime=entry["mtime"],
        size=size,
        human_size="" if size is None else human_size(size),
        commands=() if is_folder else commands(origin + entry["url"]),
        sha256=entry.get("sha256"),
        media=media,
        play_href=play_href,
        inline_href=None if media is None else with_query(entry["url"], inline="1"),
    )


def _page_query(request: Request, **params: str) -> str:
    """A link to this page: its own query (its signature, a format) but the player's
    entry, with ``params`` set."""
    args = {k: v for k, v in request.args.items() if k != PLAY}
    return "?" + urlencode({**args, **params})


def _crumbs(path: str, script_root: str, signed: bool) -> list[Crumb]:
    """One crumb per folder from the root down to ``path`` (the listing's URL path)."""
    root = script_root + "/files/"
    names = [name for name in path.removeprefix(root).split("/") if name]
    crumbs = [Crumb("files", root)]
    for depth, name in enumerate(names, 1):
        crumbs.append(Crumb(unquote(name), root + "/".join(names[:depth]) + "/"))
    last = crumbs[-1]
    crumbs[-1] = Crumb(last.label, None)
    if signed:
        crumbs = [Crumb(crumb.label, None) for crumb in crumbs]
    return crumbs
