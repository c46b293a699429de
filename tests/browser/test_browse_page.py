"""The browse page in headless Chromium against a real gunicorn server: it renders, its
links download the right bytes, its commands name the right URL, and its player plays
and seeks by HTTP ranges (checked in the server's own access log)."""

from __future__ import annotations

import http.client
import os
import shutil
import tarfile
import time
import zipfile
import zlib
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from service.sansio.signing import Signer
from tests.browser.conftest import CLIP, HIDDEN, ODD, SIGNING_KEY, TONE, Site, Tab, sha256
from tests.clients.support import Access
from tests.support.shell import shell_words

pytestmark = [pytest.mark.server, pytest.mark.browser]

FILES = sorted([CLIP, ODD, TONE])
#: Where to save a copy of the player screenshot (the README's docs/browse.png), if set.
SAVE_SCREENSHOT = os.environ.get("BROWSE_SCREENSHOT")


def png_facts(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the decoded image data) of a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = int.from_bytes(data[16:20]), int.from_bytes(data[20:24])
    chunks, offset = [], 8
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4])
        if data[offset + 4 : offset + 8] == b"IDAT":
            chunks.append(data[offset + 8 : offset + 8 + length])
        offset += 12 + length
    return width, height, len(set(zlib.decompress(b"".join(chunks))))


def test_the_page_lists_the_folder_and_its_links_download_the_right_bytes(
    tab: Tab, site: Site
) -> None:
    page = tab.page
    page.goto(site.url + "/")
    assert page.title() == "Index of /files/"
    names = page.locator("tr.entry").evaluate_all("rows => rows.map(r => r.dataset.name)")
    assert names == sorted([*FILES, "docs"])  # the hidden file is left out
    assert HIDDEN not in page.content()

    for name in FILES:
        row = page.locator("tr.entry").filter(has=page.get_by_text(name, exact=True))
        assert row.locator("td.size").inner_text() == str((site.root / name).stat().st_size)
        with page.expect_download() as info:
            row.locator("td.name a").click()
        download = info.value
        assert download.failure() is None
        assert sha256(Path(download.path()).read_bytes()) == site.digests[name], name
    assert download.suggested_filename == TONE

    page.get_by_role("link", name="docs/").click()
    page.wait_for_url(site.url + "/files/docs/")
    assert page.locator("h1").inner_text() == "Index of /files/docs/"
    page.locator("nav.crumbs a", has_text="files").click()
    page.wait_for_url(site.url + "/files/")
    assert tab.problems == []


def wait_for_zip(site: Site, folder: str, timeout: float = 30.0) -> None:
    """Until the folder's zip is served: 503 while its CRC-32s are being computed."""
    deadline = time.monotonic() + timeout
    while True:
        conn = http.client.HTTPConnection(site.server.host, site.server.port, timeout=10)
        try:
            conn.request("HEAD", f"/files/{folder}?format=zip")
            status = conn.getresponse().status
        finally:
            conn.close()
        if status == 200:
            return
        assert status == 503, status
        assert time.monotonic() < deadline, "the zip stayed 503"
        time.sleep(0.1)


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_the_folders_archive_downloads_from_its_button(tab: Tab, site: Site, kind: str) -> None:
    if kind == "zip":
        wait_for_zip(site, "")
    page = tab.page
    page.goto(site.url + "/files/")
    with page.expect_download() as info:
        page.get_by_role("button", name=f".{kind} archive").click()
    download = info.value
    assert download.failure() is None
    assert download.suggested_filename == f"files.{kind}"
    saved = Path(download.path())
    if kind == "tar":
        with tarfile.open(saved) as archive:
            got = {m.name: archive.extractfile(m).read() for m in archive if m.isfile()}  # type: ignore[union-attr]
    else:
        with zipfile.ZipFile(saved) as archive:
            assert archive.testzip() is None
            got = {n: archive.read(n) for n in archive.namelist() if not n.endswith("/")}
    assert {name: sha256(data) for name, data in got.items()} == {
        name: digest for name, digest in site.digests.items() if name != HIDDEN
    }
    assert tab.problems == []


def test_the_commands_name_the_absolute_url_of_the_link_and_copy(
    tab: Tab, site: Site, tmp_path: Path
) -> None:
    page = tab.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    page.goto(site.url + "/files/")
    row = page.locator("tr.entry").filter(has=page.get_by_text(ODD, exact=True))
    # What the browser resolves the link to, and so what the commands must name.
    href = row.locator("td.name a").evaluate("a => a.href")
    assert href == f"{site.url}/files/{quote(ODD)}"
    row.locator("button.file").click()
    page.wait_for_url(f"{site.url}/files/?file=*")
    chosen = page.locator("section.chosen")
    assert chosen.locator("h2").inner_text().startswith(f"Download {ODD}")
    # The commands only: once the background hashing is done, the section also has the
    # file's SHA-256 and its Metalink command in <code>s of their own, whenever the
    # page was rendered.
    commands = chosen.locator("code:not(.sha256):not(.metalink)").all_inner_texts()
    assert [shell_words(command) for command in commands] == [
        ["curl", "-C", "-", "-O", href],
        ["wget", "-c", href],
        ["aria2c", "-x8", "-s8", href],
    ]
    for metalink in chosen.locator("code.metalink").all_inner_texts():
        assert shell_words(metalink) == ["aria2c", "--follow-metalink=mem", href + "?format=meta4"]
    copy = chosen.locator("button.copy").nth(1)
    copy.click()
    expect(copy).to_have_text("Copied")  # the click handler awaits the clipboard
    assert page.evaluate("navigator.clipboard.readText()") == commands[1]

    path = tmp_path / "browse.png"
    page.screenshot(path=str(path), full_page=True)
    width, height, distinct = png_facts(path)
    assert width == 1000
    assert height >= 300
    assert distinct > 64, "the screenshot is (nearly) blank"
    assert tab.problems == []


def test_the_video_plays_and_a_seek_to_the_middle_is_a_206_from_there(
    tab: Tab, site: Site, tmp_path: Path
) -> None:
    page = tab.page
    page.goto(site.url + "/files/")
    page.locator("tr.entry").filter(has=page.get_by_text(CLIP, exact=True)).locator(
        "button.play"
    ).click()
    video = page.locator("video#player")
    src = video.evaluate("v => v.currentSrc")
    assert src == f"{site.url}/files/{quote(CLIP)}?inline=1"
    clip_target = src.removeprefix(site.url)
    size = (site.root / CLIP).stat().st_size

    # preload="metadata": the first request fetches the head (moov) only; a seek before
    # play starts a new request near the middle (a played-then-seeked file on loopback
    # would already be in memory and ask for nothing).
    page.wait_for_function("v => v.readyState >= 1", arg=video.element_handle())
    before_seek = len(site.accesses())
    video.evaluate("v => { v.muted = true; v.currentTime = v.duration / 2; }")
    page.wait_for_function("v => !v.seeking && v.readyState >= 2", arg=video.element_handle())
    video.evaluate("v => v.play()")
    page.wait_for_function("v => v.currentTime > 5.5 && !v.paused", arg=video.element_handle())
    state = video.evaluate("v => [v.error, v.duration, v.videoWidth, v.videoHeight]")
    assert state[0] is None
    assert 9.5 < state[1] < 10.5
    assert state[2:] == [320, 240]
    video.evaluate("v => v.pause()")
    shot = tmp_path / "player.png"
    page.screenshot(path=str(shot))
    assert png_facts(shot)[2] > 64, "the screenshot is (nearly) blank"
    if SAVE_SCREENSHOT:
        shutil.copyfile(shot, SAVE_SCREENSHOT)
    tab.close()  # ends the media requests still open, so the server logs them

    def seek_answer(access: Access) -> bool:
        bounds = access.bounds
        return (
            access.target == clip_target
            and access.status == 206
            and bounds is not None
            and 0.35 * size <= bounds[0] <= 0.65 * size
        )

    found = site.wait_for_access(seek_answer, since=before_seek)
    clip_log = [str(a) for a in site.accesses() if a.target == clip_target]
    assert found, "no 206 from the middle after the seek:\n" + "\n".join(clip_log)
    first = next(a for a in site.accesses() if a.target == clip_target)
    assert (first.range, first.status) == ("bytes=0-", 206)
    assert all(a.status == 206 for a in site.accesses() if a.target == clip_target)
    assert tab.problems == []


def test_the_audio_player_plays(tab: Tab, site: Site) -> None:
    page = tab.page
    page.goto(f"{site.url}/?play={quote(TONE)}")
    audio = page.locator("audio#player")
    audio.evaluate("a => { a.muted = true; return a.play(); }")
    page.wait_for_function("a => a.currentTime > 0.5", arg=audio.element_handle())
    assert audio.evaluate("a => a.error") is None
    tab.close()
    target = f"/files/{TONE}?inline=1"
    assert site.wait_for_access(lambda a: a.target == target and a.status in (200, 206))
    assert tab.problems == []


def test_a_signed_page_downloads_and_plays_through_its_signatures(
    tab: Tab, signed_site: Site
) -> None:
    page = tab.page
    query = Signer((SIGNING_KEY.encode(),)).query("", int(time.time()) + 600, None)
    assert page.request.get(f"{signed_site.url}/files/").status == 403
    page.goto(f"{signed_site.url}/?{query}")
    row = page.locator("tr.entry").filter(has=page.get_by_text(ODD, exact=True))
    with page.expect_download() as info:
        row.locator("td.name a").click()
    assert sha256(Path(info.value.path()).read_bytes()) == signed_site.digests[ODD]
    page.locator("tr.entry").filter(has=page.get_by_text(TONE, exact=True)).locator(
        "button.play"
    ).click()
    audio = page.locator("audio#player")
    page.wait_for_function("a => a.readyState >= 1", arg=audio.element_handle())
    assert audio.evaluate("a => a.error") is None
    page.get_by_role("link", name="docs/").click()
    page.wait_for_url("**/files/docs/?*")
    assert page.locator("td.name a").inner_text() == "readme.txt"
    assert tab.problems == []
