"""Headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright) against a real
gunicorn server, and the media it plays.

One browser per session; every test gets a fresh context with the HTTP cache off, so
each media request the page makes reaches the server and its access log (with the cache
on, Chromium answers repeats itself or rewrites a seek's ``Range`` into an ``If-Range``
one). HOME and TMPDIR point into a temporary folder: Chromium writes crash reports,
dconf and pulse state there.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.clients.support import Access, parse_access_log, run
from tests.support.server import GunicornServer
from tests.support.tools import require_tool

CLIP = "démo clip.mp4"  # 10 s, 320x240, H.264 + AAC at ~4 Mbit/s: ~5 MB
TONE = "tone.m4a"  # 3 s of AAC
ODD = 'it\'s "<b>&amp;" ü $(x).txt'
HIDDEN = ".secret.txt"
SIGNING_KEY = "browser-test-key-0123456789-abcdefghij"

_ARGS = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]
_CLIP_ARGS = [
    *("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=10"),
    *("-f", "lavfi", "-i", "sine=frequency=440:duration=10"),
    # Noise makes the encoder reach the bitrate (a clean pattern is a few hundred KB);
    # a keyframe every second, so a seek to 5 s starts decoding near the middle.
    *("-vf", "noise=alls=60:allf=t", "-g", "30", "-sc_threshold", "0"),
    *("-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p"),
    *("-b:v", "4M", "-maxrate", "4M", "-bufsize", "4M", "-c:a", "aac", "-b:a", "128k"),
    *("-movflags", "+faststart"),  # moov first: only seeks ask for a later start
]
_TONE_ARGS = ["-f", "lavfi", "-i", "sine=frequency=660:duration=3", "-c:a", "aac"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Site:
    """A running server over the test tree; ``digests`` by file name."""

    server: GunicornServer
    root: Path
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def accesses(self) -> list[Access]:
        return parse_access_log(self.server.log())

    def wait_for_access(
        self, matches: Callable[[Access], bool], since: int = 0, timeout: float = 10.0
    ) -> list[Access]:
        """Access-log lines after the first ``since`` that ``matches``, once there is one.

        A line is written when its response is finished, which for a media request the
        browser left open is when the page is closed."""
        deadline = time.monotonic() + timeout
        while True:
            found = [a for a in self.accesses()[since:] if matches(a)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    ffmpeg = require_tool("ffmpeg")
    folder = tmp_path_factory.mktemp("media")
    made = {}
    for name, args in ((CLIP, _CLIP_ARGS), (TONE, _TONE_ARGS)):
        out = folder / name
        run([ffmpeg, "-nostdin", "-v", "error", *args, str(out)], timeout=60)
        made[name] = out.read_bytes()
    assert 4_000_000 < len(made[CLIP]) < 7_000_000, len(made[CLIP])
    return made


def _tree(root: Path, media: dict[str, bytes]) -> dict[str, str]:
    """The served files: the media, an odd name, a folder, a hidden file."""
    files = {
        **media,
        ODD: os.urandom(300_000),
        "docs/readme.txt": b"inside a folder\n",
        HIDDEN: b"not listed",
    }
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
    return {name: sha256(content) for name, content in files.items()}


def _start_site(root: Path, log: Path, env: dict[str, str], media: dict[str, bytes]) -> Site:
    root.mkdir()
    digests = _tree(root, media)
    return Site(GunicornServer(root, log, env).start(), root, digests)


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, delivery: dict[str, str], media: dict[str, bytes]
) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("site")
    site = _start_site(base / "data", base / "gunicorn.log", delivery, media)
    yield site
    site.server.stop()


@pytest.fixture(scope="module")
def signed_site(
    tmp_path_factory: pytest.TempPathFactory, delivery: dict[str, str], media: dict[str, bytes]
) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("signed-site")
    env = {**delivery, "DL_SIGNING_KEY": SIGNING_KEY}
    site = _start_site(base / "data", base / "gunicorn.log", env, media)
    yield site
    site.server.stop()


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    executable = require_tool("chromium")
    home = tmp_path_factory.mktemp("chromium-home")
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(home)}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=_ARGS, env=env)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """A page in a fresh context, and what its console and scripts reported."""

    page: Page
    problems: list[str]

    def close(self) -> None:
        self.page.context.close()


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    context = browser.new_context(
        viewport={"width": 1000, "height": 720}, accept_downloads=True, locale="en-US"
    )
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":  # CSP violations land here too
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.set_default_timeout(15_000)
    yield Tab(page, problems)
    context.close()
