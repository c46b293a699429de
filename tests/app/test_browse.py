"""The HTML browse page through Flask's test client: negotiation, escaping, signed links,
the download commands and the player."""

from __future__ import annotations

import hashlib
import io
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urljoin, urlsplit

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from config import Settings
from service import create_app
from service.folders.browse import human_size, index_date
from service.sansio.signing import Signer
from tests.app import BIG, build_tree, wsgi_call
from tests.support.shell import shell_words

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
ODD_NAME = 'it\'s "<b>&amp;" ü $(x) `y` <script>.txt'
SHELLY_FOLDER = "it's (x) $HOME; & z"  # URL-safe characters a shell would act on
KEY = "test-key-0123456789-abcdefghijklmnop"


@dataclass
class Form:
    classes: str
    action: str
    id: str = ""
    fields: list[tuple[str, str]] = field(default_factory=list)  # hidden inputs
    buttons: list[tuple[str, str, str]] = field(default_factory=list)  # (name, value, class)

    def query(self, button: int = 0) -> str:
        """What the browser sends when the form's ``button`` is pressed."""
        name, value, _ = self.buttons[button]
        return urlencode(self.fields + ([(name, value)] if name else []))


@dataclass
class Page:
    """What the HTML says, as a browser would read it (entities decoded)."""

    links: list[dict[str, str]] = field(default_factory=list)  # attrs + "text" + "row"
    codes: list[str] = field(default_factory=list)  # the download commands
    metalinks: list[str] = field(default_factory=list)  # aria2c over the Metalink, once hashed
    digests: list[str] = field(default_factory=list)  # the SHA-256 lines
    media: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    crumbs: list[tuple[str, str | None]] = field(default_factory=list)
    scripts: list[dict[str, str]] = field(default_factory=list)
    forms: list[Form] = field(default_factory=list)
    cells: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> class -> text
    title: str = ""
    h1: str = ""

    def entry_links(self) -> dict[str, str]:
        """Each entry's link (relative to the page), by name."""
        return {a["text"].removesuffix("/"): a["href"] for a in self.links if a["row"] == "entry"}

    def forms_of(self, classes: str) -> list[Form]:
        return [form for form in self.forms if form.classes == classes]

    def presses(self, button_class: str) -> list[str]:
        """``?query`` of each submit button of that class, wherever its form is."""
        return [
            "?" + form.query(index)
            for form in self.forms
            for index, (_, _, classes) in enumerate(form.buttons)
            if classes == button_class
        ]


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._open: list[tuple[str, dict[str, str]]] = []
        self._text: list[str] = []
        self._in_nav = False
        self._row = ""  # the class of the table row we are in
        self._cell = ""
        self._name = ""
        self._cell_text: list[str] = []
        self._h1: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "nav":
            self._in_nav = True
        elif tag == "h1":
            self._h1 = []
        elif tag == "tr":
            self._row = values.get("class", "").split(" ")[0]
            self._name = values.get("data-name", "")
        elif tag == "td":
            self._cell = values.get("class", "").split(" ")[0]
            self._cell_text = []
        elif tag == "form":
            form = Form(values.get("class", ""), values.get("action", ""), values.get("id", ""))
            self.page.forms.append(form)
        elif tag == "input" and values.get("type") == "hidden":
            self.page.forms[-1].fields.append((values["name"], values["value"]))
        elif tag == "button" and values.get("type") == "submit":
            # A button's form= attribute names its form by id; else the form it is in.
            form_id = values.get("form")
            owner = [f for f in self.page.forms if form_id is not None and f.id == form_id]
            (owner[0] if owner else self.page.forms[-1]).buttons.append(
                (values.get("name", ""), values.get("value", ""), values.get("class", ""))
            )
        if tag in ("a", "code", "span", "title"):
            self._open.append((tag, values))
            self._text = []
        elif tag in ("video", "audio"):
            self.page.media.append((tag, values))
        elif tag == "script":
            self.page.scripts.append(values)

    def handle_data(self, data: str) -> None:
        self._text.append(data)
        self._cell_text.append(data)
        if self._h1 is not None:
            self._h1.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "nav":
            self._in_nav = False
        elif tag == "h1" and self._h1 is not None:
            self.page.h1, self._h1 = "".join(self._h1), None
        elif tag == "td" and self._row == "entry" and self._cell != "more":
            self.page.cells.setdefault(self._name, {})[self._cell] = "".join(self._cell_text)
        elif tag == "tr":
            self._row = ""
        if not self._open or self._open[-1][0] != tag:
            return
        _, values = self._open.pop()
        text = "".join(self._text)
        if tag == "title":
            self.page.title = text
        elif tag == "code":
            kind = values.get("class")
            lists = {"sha256": self.page.digests, "metalink": self.page.metalinks}
            lists.get(kind or "", self.page.codes).append(text)
        elif self._in_nav and tag == "a":
            self.page.crumbs.append((text, values["href"]))
        elif self._in_nav and tag == "span":
            self.page.crumbs.append((text, None))
        elif tag == "a":
            self.page.links.append({"class": "", **values, "text": text, "row": self._row})


def read_page(response: TestResponse) -> Page:
    reader = _Reader()
    reader.feed(response.get_data(as_text=True))
    return reader.page


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    build_tree(folder)
    (folder / ODD_NAME).write_bytes(b"odd")
    (folder / "dossier été").mkdir()
    (folder / "dossier été" / "chanson d'été.mp3").write_bytes(b"ID3 not really")
    (folder / SHELLY_FOLDER).mkdir()
    (folder / SHELLY_FOLDER / "f.txt").write_bytes(b"shelly")
    return folder


@pytest.fixture
def client(root: Path) -> Iterator[FlaskClient]:
    with create_app(Settings(data_root=root)).test_client() as test_client:
        yield test_client


def fetch(client: FlaskClient, url: str, accept: str | None = BROWSER, **kw: Any) -> TestResponse:
    headers = {} if accept is None else {"Accept": accept}
    with client.get(url, headers=headers, **kw) as response:
        response.get_data()
    return response


# --- which listing --------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/", "/files/", "/files/sub/"])
def test_a_browser_gets_the_html_page(client: FlaskClient, url: str) -> None:
    response = fetch(client, url)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Vary"] == "Accept"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.get_data(as_text=True).startswith("<!doctype html>")


@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "text/html;q=0.5, application/json",
        "application/json, text/html",
        "application/json, */*;q=0.1",
        "Application/JSON",
    ],
)
def test_clients_naming_json_get_the_json_listing(client: FlaskClient, accept: str) -> None:
    response = fetch(client, "/files/sub/", accept)
    assert response.mimetype == "application/json"
    assert response.headers["Vary"] == "Accept"
    assert [e["name"] for e in response.get_json()["entries"]] == ["b.txt", "deeper"]


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "*/*",
        "text/html",
        "application/*",
        "application/json;q=0",
        "application/json;q=0.5, text/html",
        "application/json;q=0.5, */*",
        "text/*, application/json;q=0.9",
    ],
)
def test_everyone_else_gets_the_page_as_index_readers_expect(
    client: FlaskClient, accept: str | None
) -> None:
    """rclone sends no Accept, lftp and wget ``*/*``: like nginx's autoindex, HTML."""
    response = fetch(client, "/files/sub/", accept)
    assert response.mimetype == "text/html"
    assert response.headers["Vary"] == "Accept"
    assert set(read_page(response).entry_links()) == {"b.txt", "deeper"}


def test_the_format_query_overrides_the_accept_header(client: FlaskClient) -> None:
    assert fetch(client, "/files/?format=json").mimetype == "application/json"
    assert fetch(client, "/files/?format=html", "application/json").mimetype == "text/html"
    assert fetch(client, "/?format=json", None).get_json()["path"] == "/files/"
    assert fetch(client, "/files/?format=other", "*/*").mimetype == "text/html"


def test_the_root_page_lists_the_root_folder_with_links_below_files(client: FlaskClient) -> None:
    at_slash = read_page(fetch(client, "/")).entry_links()
    at_files = read_page(fetch(client, "/files/")).entry_links()
    assert at_slash == {name: "files/" + href for name, href in at_files.items()}
    assert urljoin("http://localhost/", at_slash["a.txt"]) == "http://localhost/files/a.txt"


def test_head_of_the_page_has_no_body(client: FlaskClient) -> None:
    with client.head("/files/", headers={"Accept": BROWSER}) as response:
        assert response.mimetype == "text/html"
        assert response.get_data() == b""


def test_missing_and_hidden_folders_are_404_as_html_too(client: FlaskClient) -> None:
    assert fetch(client, "/files/missing/").status_code == 404
    assert fetch(client, "/files/.git/").status_code == 404


# --- what the page shows -------------------------------------------------------------------


def test_entries_link_to_their_files_and_hidden_ones_are_left_out(client: FlaskClient) -> None:
    links = read_page(fetch(client, "/files/")).entry_links()
    assert set(links) == {
        *("a.txt", "big.bin", "empty.txt", "sub", "video.mp4"),
        *(ODD_NAME, "dossier été", SHELLY_FOLDER),
    }
    assert links["sub"] == "sub/"
    assert links["dossier été"] == "dossier%20%C3%A9t%C3%A9/"
    for name, href in links.items():
        response = fetch(client, urljoin("/files/", href), None)
        assert response.status_code == 200, name
    assert fetch(client, "/files/" + links["big.bin"]).data == BIG
    assert fetch(client, "/files/" + links[ODD_NAME]).data == b"odd"


def test_the_title_and_heading_say_index_of_the_folder(client: FlaskClient) -> None:
    for url, path in [("/", "/files/"), ("/files/", "/files/"), ("/files/sub/", "/files/sub/")]:
        page = read_page(fetch(client, url))
        assert (page.title, page.h1) == (f"Index of {path}", f"Index of {path}"), url
    page = read_page(fetch(client, "/files/dossier%20%C3%A9t%C3%A9/"))
    assert page.title == "Index of /files/dossier été/"


def test_below_the_root_the_first_link_is_the_parent(client: FlaskClient) -> None:
    for url in ("/files/sub/", "/files/sub/deeper/"):
        parents = [a["href"] for a in read_page(fetch(client, url)).links if a["row"] == "parent"]
        assert parents == ["../"]
    for url in ("/", "/files/"):
        assert not [a for a in read_page(fetch(client, url)).links if a["row"] == "parent"]


def test_every_link_on_the_page_is_an_entry_or_leads_out_of_the_folder(
    client: FlaskClient,
) -> None:
    """What a mirror tool follows (every href, every src) stays the folder's entries: the
    player, the checksums and the crumbs are not links into it."""
    for url in ("/files/", "/files/sub/", "/files/?play=video.mp4", "/files/?file=a.txt"):
        text = fetch(client, url).get_data(as_text=True)
        page = read_page(fetch(client, url))
        entries = set(page.entry_links().values())
        for a in page.links:
            target = urljoin("http://localhost" + url, a["href"])
            inside = target.startswith("http://localhost" + url.split("?")[0])
            assert not inside or a["href"] in entries, (url, a)
            assert "?" not in a["href"], (url, a)
        body = text.split("<body>")[1].split("<script")[0]
        assert "http://" not in body, url  # no URL that a scanner would take for a link


def test_rows_carry_the_index_date_then_the_exact_bytes_then_the_human_size(
    client: FlaskClient,
) -> None:
    response = fetch(client, "/files/")
    cells = read_page(response).cells
    assert cells["big.bin"] == {
        "name": "big.bin",
        "mtime": "14-Nov-2023 22:13",
        "size": "100000",
        "human": "97.7 KiB",
    }
    assert cells["empty.txt"]["size"] == "0"
    assert cells["sub"]["size"] == "-"
    text = response.get_data(as_text=True)
    assert '<time datetime="2023-11-14T22:13:20Z">14-Nov-2023 22:13</time>' in text
    (line,) = [line for line in text.splitlines() if 'href="big.bin"' in line]
    stripped = " ".join(re.sub(r"<[^>]+>", "", line).split())
    assert stripped == "big.bin 14-Nov-2023 22:13 100000 97.7 KiB"  # as lftp reads the row


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.00 KiB"),
        (1536, "1.50 KiB"),
        (100_000, "97.7 KiB"),
        (300 * 2**20, "300 MiB"),
        (4_700_000_000, "4.38 GiB"),
        (2**60, "1024 PiB"),
    ],
)
def test_human_size(size: int, shown: str) -> None:
    assert human_size(size) == shown


def test_names_with_quotes_markup_and_unicode_are_escaped(client: FlaskClient) -> None:
    response = fetch(client, "/files/")
    text = response.get_data(as_text=True)
    assert "<b>" not in text  # the name's markup never reaches the page as markup
    page = read_page(response)
    assert ODD_NAME in [a["text"] for a in page.links]  # but reads as the name
    assert unquote(page.entry_links()[ODD_NAME]) == ODD_NAME


def test_each_file_has_a_button_to_three_commands_with_its_absolute_shell_quoted_url(
    client: FlaskClient,
) -> None:
    base = "http://files.example.org:8080"
    page = read_page(fetch(client, "/files/", base_url=base))
    assert page.codes == []  # the commands are written for the chosen file only
    expected = {"a.txt", "big.bin", "empty.txt", "video.mp4", ODD_NAME}
    assert sorted(page.presses("file")) == sorted(f"?{urlencode({'file': n})}" for n in expected)
    by_url: dict[str, list[list[str]]] = {}
    for press in page.presses("file"):
        for command in read_page(fetch(client, "/files/" + press, base_url=base)).codes:
            words = shell_words(command)
            by_url.setdefault(words[-1], []).append(words[:-1])
    assert set(by_url) == {f"{base}/files/{quote(n)}" for n in expected}
    for argvs in by_url.values():
        assert argvs == [["curl", "-C", "-", "-O"], ["wget", "-c"], ["aria2c", "-x8", "-s8"]]


@pytest.mark.parametrize("name", ["sub", "missing.txt", ".hidden", "../a.txt", "sub/b.txt", ""])
def test_commands_are_shown_for_a_listed_file_only(client: FlaskClient, name: str) -> None:
    response = fetch(client, f"/files/?file={quote(name)}")
    assert response.status_code == 200
    assert read_page(response).codes == []
    assert 'class="chosen"' not in response.get_data(as_text=True)


def test_the_played_file_comes_with_its_commands(client: FlaskClient) -> None:
    page = read_page(fetch(client, "/files/?play=video.mp4"))
    assert [shell_words(c)[-1] for c in page.codes] == ["http://localhost/files/video.mp4"] * 3
    assert page.presses("file")  # the buttons drop the play= of the page they are on
    assert not [press for press in page.presses("file") if "play=" in press]


def test_a_row_carries_its_entry_and_buttons_only(root: Path, client: FlaskClient) -> None:
    """A big folder's page stays small: rclone and lftp read it whole before their first
    HEAD. Each further file adds its row and nothing else (about 320 bytes plus its name
    four times), whatever is known of it."""
    folder = root / "many"
    folder.mkdir()
    (folder / "f0000.bin").write_bytes(b"x")
    one = len(fetch(client, "/files/many/").data)
    for index in range(1, 100):
        (folder / f"f{index:04d}.bin").write_bytes(b"x")
    fetch(client, "/files/many/f0001.bin", None)
    assert client.application.extensions["digests"].wait_idle(10)
    hundred = len(fetch(client, "/files/many/").data)
    assert (hundred - one) / 99 < 350 + 4 * len("f0000.bin")  # the commands were 1,000 more


@pytest.mark.parametrize(("peer", "scheme"), [("127.0.0.1", "https"), ("192.0.2.9", "http")])
def test_behind_a_tls_proxy_the_commands_name_https(root: Path, peer: str, scheme: str) -> None:
    """Only a trusted proxy's X-Forwarded-Proto changes the scheme of the shown URLs."""
    app = create_app(Settings(data_root=root, behind_proxy=True))
    with app.test_client() as proxied:
        headers = {"Accept": BROWSER, "X-Forwarded-Proto": "https", "Host": "dl.example.org"}
        environ = {"REMOTE_ADDR": peer}
        with proxied.get("/files/?file=a.txt", headers=headers, environ_base=environ) as r:
            page = read_page(r)
    urls = {shell_words(command)[-1] for command in page.codes}
    assert urls == {f"{scheme}://dl.example.org/files/a.txt"}


def test_known_digests_are_shown_and_the_folder_links_its_sha256_list(
    client: FlaskClient,
) -> None:
    first = read_page(fetch(client, "/files/sub/?file=b.txt"))
    assert first.digests == []  # listing queues nothing
    sums = ["?" + form.query() for form in first.forms_of("sums")]
    assert sums == ["?format=sha256"]
    fetch(client, "/files/sub/b.txt", None)
    assert client.application.extensions["digests"].wait_idle(10)
    assert read_page(fetch(client, "/files/sub/")).digests == []  # not in the rows
    page = read_page(fetch(client, "/files/sub/?file=b.txt"))
    assert page.digests == [hashlib.sha256(b"in a folder\n").hexdigest()]
    listing = fetch(client, "/files/sub/" + sums[0], None)
    assert listing.mimetype == "text/plain"
    assert page.digests[0] + "  b.txt\n" in listing.get_data(as_text=True)


def test_a_hashed_file_offers_aria2c_over_its_metalink_and_no_link_to_it(
    client: FlaskClient,
) -> None:
    unhashed = read_page(fetch(client, "/files/sub/?file=b.txt"))
    assert unhashed.metalinks == []
    assert len(unhashed.codes) == 3
    fetch(client, "/files/sub/b.txt", None)
    assert client.application.extensions["digests"].wait_idle(10)
    response = fetch(client, "/files/sub/?file=b.txt", base_url="http://files.example.org:8080")
    page = read_page(response)
    metalinks = [shell_words(code) for code in page.metalinks]
    url = "http://files.example.org:8080/files/sub/b.txt?format=meta4"
    assert metalinks == [["aria2c", "--follow-metalink=mem", url]]
    assert "meta4" not in " ".join(a["href"] for a in page.links)  # nothing to crawl
    assert "http://files.example.org" not in response.get_data(as_text=True)  # nor to scan
    document = fetch(client, url, None)
    assert document.mimetype == "application/metalink4+xml"
    assert b"<size>12</size>" in document.data


def test_without_digests_the_page_has_no_sha256_list(root: Path) -> None:
    with create_app(Settings(data_root=root, digests=False)).test_client() as plain:
        page = read_page(fetch(plain, "/files/"))
    assert not page.forms_of("sums")


def test_commands_quote_urls_that_the_shell_would_split(client: FlaskClient) -> None:
    folder_url = "/files/it's%20(x)%20$HOME;%20&%20z/"  # as Werkzeug quotes a path
    response = fetch(client, folder_url + "?file=f.txt")
    assert response.status_code == 200
    page = read_page(response)
    url = f"http://localhost{folder_url}f.txt"
    assert [shell_words(command) for command in page.codes] == [
        ["curl", "-C", "-", "-O", url],
        ["wget", "-c", url],
        ["aria2c", "-x8", "-s8", url],
    ]
    assert fetch(client, url, None).data == b"shelly"


def test_breadcrumbs_lead_back_up(client: FlaskClient, root: Path) -> None:
    page = read_page(fetch(client, "/files/sub/deeper/"))
    assert page.crumbs == [("files", "/files/"), ("sub", "/files/sub/"), ("deeper", None)]
    assert read_page(fetch(client, "/")).crumbs == [("files", None)]
    page = read_page(fetch(client, "/files/dossier%20%C3%A9t%C3%A9/"))
    assert page.crumbs == [("files", "/files/"), ("dossier été", None)]


def test_an_empty_folder_says_so(client: FlaskClient, root: Path) -> None:
    (root / "empty").mkdir()
    assert "This folder is empty." in fetch(client, "/files/empty/").get_data(as_text=True)


def test_the_only_script_carries_the_nonce_the_policy_allows(client: FlaskClient) -> None:
    response = fetch(client, "/files/")
    policy = response.headers["Content-Security-Policy"]
    (script,) = read_page(response).scripts
    assert f"script-src 'nonce-{script['nonce']}'" in policy
    assert "default-src 'none'" in policy
    assert fetch(client, "/files/").headers["Content-Security-Policy"] != policy


# --- the player ----------------------------------------------------------------------------


def test_media_files_have_a_play_link_to_a_player_streaming_them_inline(
    client: FlaskClient,
) -> None:
    page = read_page(fetch(client, "/files/"))
    assert page.presses("play") == ["?play=video.mp4"]
    assert page.media == []
    player = read_page(fetch(client, "/files/?play=video.mp4"))
    ((tag, attrs),) = player.media
    assert tag == "video"
    assert attrs["src"] == "/files/video.mp4?inline=1"
    assert attrs["preload"] == "metadata"
    assert "controls" in attrs
    response = fetch(client, attrs["src"], None)
    assert response.headers["Content-Disposition"].startswith("inline")


def test_audio_gets_an_audio_player(client: FlaskClient) -> None:
    page = read_page(fetch(client, "/files/dossier%20%C3%A9t%C3%A9/?play=chanson d'été.mp3"))
    ((tag, attrs),) = page.media
    assert tag == "audio"
    assert attrs["src"] == "/files/dossier%20%C3%A9t%C3%A9/chanson%20d%27%C3%A9t%C3%A9.mp3?inline=1"


@pytest.mark.parametrize("name", ["a.txt", "missing.mp4", ".hidden", "../video.mp4"])
def test_play_is_ignored_for_anything_but_a_listed_media_file(
    client: FlaskClient, name: str
) -> None:
    response = fetch(client, f"/files/?play={quote(name)}")
    assert response.status_code == 200
    assert read_page(response).media == []


# --- signed links --------------------------------------------------------------------------


def signed_query(path: str, ttl: int = 600) -> str:
    return Signer((KEY.encode(),)).query(path, int(time.time()) + ttl, None)


@pytest.fixture
def signed_client(root: Path) -> Iterator[FlaskClient]:
    app = create_app(Settings(data_root=root, signing_key=(KEY,)))
    with app.test_client() as test_client:
        yield test_client


def test_a_signed_page_links_carry_their_signatures_and_open(signed_client: FlaskClient) -> None:
    query = signed_query("")
    for url in ("/files/", "/"):
        assert fetch(signed_client, url).status_code == 403
    response = fetch(signed_client, f"/?{query}")
    assert response.status_code == 200
    page = read_page(response)
    expires = parse_qs(query)["expires"]
    for name, href in page.entry_links().items():
        assert parse_qs(urlsplit(href).query)["expires"] == expires, name
        assert fetch(signed_client, "/" + href).status_code == 200, name
        assert fetch(signed_client, "/" + urlsplit(href).path).status_code == 403, name
    (sums,) = ["?" + form.query() for form in page.forms_of("sums")]
    assert fetch(signed_client, "/" + sums, None).mimetype == "text/plain"  # still signed
    presses = page.presses("file")
    assert presses
    commands = [c for press in presses for c in read_page(fetch(signed_client, "/" + press)).codes]
    assert len(commands) == 3 * len(presses)  # each chosen page opens, signed as it was
    for command in commands:
        url = shell_words(command)[-1]
        assert fetch(signed_client, url.removeprefix("http://localhost"), None).status_code == 200


def test_a_signed_player_keeps_the_signature_for_the_page_and_the_stream(
    signed_client: FlaskClient,
) -> None:
    page = read_page(fetch(signed_client, f"/files/?{signed_query('')}"))
    (play,) = page.presses("play")
    response = fetch(signed_client, "/files/" + play)
    assert response.status_code == 200
    ((_, attrs),) = read_page(response).media
    with signed_client.get(attrs["src"], headers={"Range": "bytes=0-3"}) as answer:
        assert answer.status_code == 206
        assert answer.headers["Content-Disposition"].startswith("inline")


def test_a_signed_page_links_no_folder_above_it(signed_client: FlaskClient) -> None:
    page = read_page(fetch(signed_client, f"/files/sub/?{signed_query('sub/')}"))
    assert page.crumbs == [("files", None), ("sub", None)]
    assert not [a for a in page.links if a["row"] == "parent"]
    assert fetch(signed_client, "/files/sub/" + page.entry_links()["deeper"]).status_code == 200


def test_under_a_prefix_every_link_and_command_keeps_it(client: FlaskClient) -> None:
    page = read_page(fetch(client, "/files/sub/deeper/", base_url="http://localhost/dl"))
    assert page.presses("file") == ["?file=c.txt"]
    page = read_page(fetch(client, "/files/sub/deeper/?file=c.txt", base_url="http://localhost/dl"))
    assert page.crumbs == [("files", "/dl/files/"), ("sub", "/dl/files/sub/"), ("deeper", None)]
    assert page.entry_links() == {"c.txt": "c.txt"}
    assert shell_words(page.codes[1]) == [
        "wget",
        "-c",
        "http://localhost/dl/files/sub/deeper/c.txt",
    ]


def test_a_host_with_an_impossible_port_is_a_400_not_a_crash(client: FlaskClient) -> None:
    """RFC 9112 §3.2: a Host with an invalid value is a 400 (the page needs the host for
    its commands' URLs); downloads never read it."""
    app = client.application
    environ = {"HTTP_HOST": "example.org:99999", "HTTP_ACCEPT": BROWSER, "REMOTE_ADDR": "::1"}
    for path, answer in [
        ("/files/", ("400 Bad Request", b"Bad Request\n")),
        ("/files/a.txt", ("200 OK", b"hello, world\n")),
    ]:
        (status, _), body = wsgi_call(app, path, **environ)
        try:
            assert (status, b"".join(body)) == answer
        finally:
            body.close()


def test_the_folders_archives_are_forms_the_json_names_and_no_link(client: FlaskClient) -> None:
    page = read_page(fetch(client, "/files/sub/"))
    forms = page.forms_of("archive")
    assert [form.action for form in forms] == ["", ""]
    assert ["?" + form.query() for form in forms] == ["?format=tar", "?format=zip"]
    assert not [a for a in page.links if "format=" in a["href"]]  # nothing for wget -r
    archive = fetch(client, "/files/sub/?" + forms[0].query(), None)
    assert archive.mimetype == "application/x-tar"
    document = fetch(client, "/files/sub/", "application/json").get_json()
    assert document["archives"] == {
        "tar": "/files/sub/?format=tar",
        "zip": "/files/sub/?format=zip",
    }


def test_a_zip_waits_for_its_crc32s_with_a_503_and_retry_after(client: FlaskClient) -> None:
    pending = fetch(client, "/files/sub/?format=zip", None)
    assert pending.status_code == 503
    assert int(pending.headers["Retry-After"]) >= 1
    assert b"being computed" in pending.data
    client.application.extensions["digests"].wait_idle(10)
    ready = fetch(client, "/files/sub/?format=zip", None)
    assert (ready.status_code, ready.mimetype) == (200, "application/zip")
    with zipfile.ZipFile(io.BytesIO(ready.data)) as archive:
        assert archive.testzip() is None


def test_without_digests_no_zip_is_offered_or_served(root: Path) -> None:
    with create_app(Settings(data_root=root, digests=False)).test_client() as plain:
        page = read_page(fetch(plain, "/files/"))
        assert ["?" + form.query() for form in page.forms_of("archive")] == ["?format=tar"]
        document = fetch(plain, "/files/", "application/json").get_json()
        assert list(document["archives"]) == ["tar"]
        assert fetch(plain, "/files/?format=zip", None).status_code == 404
        assert fetch(plain, "/files/?format=tar", None).status_code == 200


def test_without_archives_neither_the_page_nor_the_json_offers_one(root: Path) -> None:
    with create_app(Settings(data_root=root, archives=False)).test_client() as plain:
        assert not read_page(fetch(plain, "/files/")).forms_of("archive")
        assert "archives" not in fetch(plain, "/files/", "application/json").get_json()
        assert fetch(plain, "/files/?format=tar", None).status_code == 404


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
def test_index_date_is_the_minute_as_autoindex_writes_it(moment: datetime) -> None:
    """The listing's ISO date, read by slicing, says what strftime says in the C locale."""
    iso = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert index_date(iso) == moment.strftime("%d-%b-%Y %H:%M")
