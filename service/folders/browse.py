"""The HTML index page of a folder: the JSON listing's document, rendered for people and
for the tools that walk folders (rclone, lftp, ``wget -r``, GDAL, fsspec).

It owns which listing a client gets (``?format=`` first, then ``Accept``: HTML unless
JSON is asked for by name) and the page's shape. The shape follows the conventions of
nginx ``autoindex`` and Apache ``mod_autoindex`` that index parsers rely on: a
``<title>`` and ``<h1>`` ``Index of /files/<folder>/``; one plain ``<a href="NAME">`` per
entry, relative and percent-encoded, folders ending in ``/``, with ``../`` first below
the root; each row on one line, with the UTC date as ``DD-Mon-YYYY HH:MM`` and the exact
size in bytes right after the link (lftp and GDAL read them there). Nothing else on the
page is a link into the folder a mirror tool would fetch as a file: breadcrumbs point
above it; the player (``?play=<name>``), a file's download commands (``?file=<name>``)
and the folder's ``sha256sum`` list are reached by GET forms; and the commands' URLs
(the Metalink's too) are written so that no scanner takes them for links. A row holds
only the entry and its buttons, and the commands, SHA-256 and Metalink are written for
the chosen file alone: a folder of 10,000 files is a page of about 4 MB, not 14, which
rclone and lftp read whole before their first HEAD. Jinja escapes everything that
reaches the HTML.
"""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from flask import Request, Response, render_template
from markupsafe import Markup, escape
from werkzeug.exceptions import BadRequest

from service.sansio.media_types import guess_type

HTML, JSON = "text/html", "application/json"
PLAY = "play"
CHOSEN = "file"  # the query parameter naming the file whose commands the page shows
_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")
# English month names whatever the locale: the date format is the index convention.
_DOWNLOADERS = ("curl -C - -O", "wget -c", "aria2c -x8 -s8")
_METALINK_DOWNLOADER = "aria2c --follow-metalink=mem"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class Row:
    """One entry as the page shows it."""

    name: str
    is_folder: bool
    href: str  # relative to the page: what index parsers follow
    mtime: str  # ISO 8601, for <time datetime>
    date: str  # "02-Dec-2026 10:00" (UTC)
    size: int | None
    human_size: str
    media: str | None  # "video" or "audio" when the browser may play it
    inline_href: str | None  # the file with ``inline=1``: what the player streams
    error: str | None = None  # the storage error (errno name) that hides its details


@dataclass(frozen=True, slots=True)
class Chosen:
    """The file the page shows the download commands of (``?file=`` or ``?play=``)."""

    name: str
    commands: tuple[Markup, ...]
    sha256: str | None  # hex, when already known
    #: ``aria2c`` over the file's Metalink, once its hashes are known (as HTML).
    metalink: Markup | None


@dataclass(frozen=True, slots=True)
class Crumb:
    label: str
    href: str | None  # None: not a link (the current folder, or outside a signed link)


def wants_html(request: Request) -> bool:
    """``?format=json`` is JSON and ``?format=html`` the page; otherwise the page, unless
    ``Accept`` names ``application/json`` with a q no lower than ``text/html``'s. So
    browsers, ``*/*`` and no ``Accept`` at all (every index reader) get HTML."""
    chosen = request.args.get("format")
    if chosen in ("html", "json"):
        return chosen == "html"
    accept = request.accept_mimetypes
    named = max((q for value, q in accept if value.lower() == JSON), default=0)
    return not (named > 0 and named >= accept.quality(HTML))


def page(document: dict[str, Any], request: Request, signed: bool, checksums: bool) -> Response:
    """The listing ``document`` (from :func:`service.folders.listing.folder_document`) as HTML.

    ``signed``: the listing came through a signed link, so folders above it are shown
    without links (their URLs would need signatures of their own). ``checksums``: the
    folder's ``?format=sha256`` list exists (digests are on)."""
    try:
        origin = request.host_url.rstrip("/")  # the commands' absolute URLs
    except ValueError:  # a port out of range: RFC 9112 §3.2, an invalid Host is a 400
        raise BadRequest from None
    here = request.script_root + request.path  # "/" or the folder's own /files/... path
    rows = [_row(entry, here) for entry in document["entries"]]
    playing = next((r for r in rows if r.media and r.name == request.args.get(PLAY)), None)
    crumbs = _crumbs(document["path"], request.script_root, signed)
    at_root = document["path"] == request.script_root + "/files/"
    nonce = secrets.token_urlsafe(16)
    chosen_name = request.args.get(CHOSEN) or request.args.get(PLAY)  # a played file's too
    kept = [(k, v) for k, v in request.args.items(multi=True) if k not in (PLAY, CHOSEN, "format")]
    html = render_template(
        "browse.html",
        title="Index of /" + "".join(f"{crumb.label}/" for crumb in crumbs),
        crumbs=crumbs,
        parent=not (at_root or signed),
        rows=rows,
        playing=playing,
        chosen=_chosen(document["entries"], chosen_name, origin),
        # Hidden fields of the form every row's buttons submit: the page's signature (and
        # format) travel along.
        pick_fields=[(k, v) for k, v in request.args.items(multi=True) if k not in (PLAY, CHOSEN)],
        sums_fields=[*kept, ("format", "sha256")] if checksums else None,
        # Each archive is a form too: its URL's query (a signature of its own) as fields.
        archive_forms=[
            (kind, parse_qsl(urlsplit(url).query))
            for kind, url in document.get("archives", {}).items()
        ],
        nonce=nonce,
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; img-src data:; media-src 'self'; style-src 'unsafe-inline'; "
        f"script-src 'nonce-{nonce}'; base-uri 'none'; form-action 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def index_date(iso: str) -> str:
    """``2026-12-02T10:00:59Z`` -> ``02-Dec-2026 10:00``: the minute, as autoindex shows."""
    day, _, clock = iso.partition("T")
    year, month, date = day.split("-")
    return f"{date}-{_MONTHS[int(month) - 1]}-{year} {clock[:5]}"


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


def commands(url: str) -> tuple[Markup, ...]:
    """Resumable download commands, as HTML; the URL is one shell word whatever it
    contains, and :func:`unscannable`."""
    word = unscannable(shlex.quote(url))
    return tuple(Markup(f"{program} {word}") for program in _DOWNLOADERS)


def unscannable(text: str) -> Markup:
    """``text`` escaped, with ``://`` written as character references: a browser shows
    and copies the same text, but tools that scan a page for ``http://`` URLs (fsspec)
    do not take a command's URL for an entry of the folder."""
    return Markup(str(escape(text)).replace("://", ":&#47;&#47;"))


def media_kind(name: str) -> str | None:
    kind = guess_type(name).partition("/")[0]
    return kind if kind in ("video", "audio") else None


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query (a signed URL keeps its signature)."""
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


def _row(entry: dict[str, Any], here: str) -> Row:
    href = _relative(entry["url"], here)
    if "error" in entry:  # the storage would not say what it is: shown as unavailable
        return Row(entry["name"], False, href, "", "", None, "", None, None, error=entry["error"])
    is_folder = entry["type"] == "folder"
    size = None if is_folder else int(entry["size"])
    media = None if is_folder else media_kind(entry["name"])
    return Row(
        name=entry["name"],
        is_folder=is_folder,
        href=href,
        mtime=entry["mtime"],
        date=index_date(entry["mtime"]),
        size=size,
        human_size="" if size is None else human_size(size),
        media=media,
        inline_href=None if media is None else with_query(entry["url"], inline="1"),
    )


def _chosen(entries: list[dict[str, Any]], name: str | None, origin: str) -> Chosen | None:
    """The listed file called ``name`` with its commands; None for any other name."""
    entry = next((e for e in entries if e["name"] == name and e.get("type") == "file"), None)
    if entry is None:
        return None
    return Chosen(
        name=entry["name"],
        commands=commands(origin + entry["url"]),
        sha256=entry.get("sha256"),
        metalink=_metalink_command(origin, entry),
    )


def _metalink_command(origin: str, entry: dict[str, Any]) -> Markup | None:
    """aria2c reading the file's Metalink from its URL (``mem``: without saving it), while
    the SHA-256 is known: the piece hashes come from the same pass. A command, not a
    link: a mirror tool must not fetch the document as a file of the folder."""
    if "meta4" not in entry or "sha256" not in entry:
        return None
    return Markup(f"{_METALINK_DOWNLOADER} {unscannable(shlex.quote(origin + entry['meta4']))}")


def _relative(url: str, here: str) -> str:
    """An entry's URL relative to the page at ``here``: ``NAME`` in its folder's page,
    ``files/NAME`` on the page at ``/``."""
    base = here[: here.rindex("/") + 1]
    return url[len(base) :] if url.startswith(base) else url


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
