"""A web app on another origin reading files by ranges (CORS), in headless Chromium.

The service runs with ``DL_CORS_ORIGINS`` naming one page origin; two small pages on
other loopback ports play the app (allowed) and a stranger (not listed). Requests that
Fetch preflights (a suffix range, a multi-range, ``If-None-Match``) must read the right
bytes and fields; a ``<video crossorigin>`` must seek and play; the stranger's reads must
fail as browsers require, though the service still sends the bytes.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pytest

from tests.browser.conftest import CLIP, Site, Tab, _start_site
from tests.clients.support import Access

pytestmark = [pytest.mark.server, pytest.mark.browser]

DATA = "data.bin"
PAGE = (
    b"<!doctype html><html><head><meta charset=utf-8><title>app</title></head><body></body></html>"
)


class PageServer:
    """A static page on a free 127.0.0.1 port, in a thread of the test process."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(PAGE)))
                self.end_headers()
                self.wfile.write(PAGE)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> PageServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@dataclass
class Origins:
    app: PageServer
    stranger: PageServer


@pytest.fixture(scope="module")
def origins() -> Iterator[Origins]:
    app, stranger = PageServer().start(), PageServer().start()
    try:
        yield Origins(app, stranger)
    finally:
        app.stop()
        stranger.stop()


@pytest.fixture(scope="module")
def cors_site(
    tmp_path_factory: pytest.TempPathFactory,
    delivery: dict[str, str],
    media: dict[str, bytes],
    origins: Origins,
) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("cors-site")
    env = {**delivery, "DL_CORS_ORIGINS": origins.app.origin}
    site = _start_site(base / "data", base / "gunicorn.log", env, media)
    (site.root / DATA).write_bytes(hashlib.shake_256(b"cors").digest(1_000_003))
    yield site
    site.server.stop()


READ = """async ([url, headers]) => {
  const response = await fetch(url, {headers, cache: "no-store"});
  const body = new Uint8Array(await response.arrayBuffer());
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body));
  return {
    status: response.status,
    contentRange: response.headers.get("Content-Range"),
    contentType: response.headers.get("Content-Type"),
    etag: response.headers.get("ETag"),
    length: body.length,
    sha256: Array.from(digest, b => b.toString(16).padStart(2, "0")).join(""),
    bytes: body.length < 4096 ? Array.from(body) : null,
  };
}"""


def read(tab: Tab, url: str, **headers: str) -> dict[str, Any]:
    result: dict[str, Any] = tab.page.evaluate(READ, [url, headers])
    return result


def requests_for(site: Site, method: str) -> list[str]:
    return [a.range or "" for a in site.accesses() if a.method == method and DATA in a.target]


def test_a_suffix_range_from_another_origin_reads_the_last_bytes(
    tab: Tab, cors_site: Site, origins: Origins
) -> None:
    tab.page.goto(origins.app.origin + "/")
    data = (cors_site.root / DATA).read_bytes()
    got = read(tab, f"{cors_site.url}/files/{DATA}", Range="bytes=-1000")
    assert got["status"] == 206
    assert got["contentRange"] == f"bytes {len(data) - 1000}-{len(data) - 1}/{len(data)}"
    assert got["sha256"] == hashlib.sha256(data[-1000:]).hexdigest()
    assert "" in requests_for(cors_site, "OPTIONS")  # Fetch asked first: a preflight
    assert tab.problems == []


def test_a_multi_range_from_another_origin_reads_each_part(
    tab: Tab, cors_site: Site, origins: Origins
) -> None:
    tab.page.goto(origins.app.origin + "/")
    data = (cors_site.root / DATA).read_bytes()
    got = read(tab, f"{cors_site.url}/files/{DATA}", Range="bytes=0-9,-10")
    assert got["status"] == 206
    assert got["contentType"].startswith("multipart/byteranges; boundary=")
    body = bytes(got["bytes"])
    assert b"\r\n\r\n" + data[:10] + b"\r\n" in body
    assert b"\r\n\r\n" + data[-10:] + b"\r\n" in body
    assert f"Content-Range: bytes 0-9/{len(data)}".encode() in body
    assert tab.problems == []


def test_a_revalidation_from_another_origin_sees_the_304(
    tab: Tab, cors_site: Site, origins: Origins
) -> None:
    tab.page.goto(origins.app.origin + "/")
    url = f"{cors_site.url}/files/{DATA}"
    first = read(tab, url, Range="bytes=0-0")
    assert first["etag"], "the ETag is exposed to script"
    again = read(tab, url, **{"If-None-Match": first["etag"]})
    assert (again["status"], again["length"]) == (304, 0)
    assert tab.problems == []


def test_a_crossorigin_video_seeks_to_the_middle_and_plays(
    tab: Tab, cors_site: Site, origins: Origins
) -> None:
    page = tab.page
    page.goto(origins.app.origin + "/")
    src = f"{cors_site.url}/files/{CLIP}"
    page.evaluate(
        """src => {
          const video = document.createElement("video");
          video.id = "player"; video.crossOrigin = "anonymous"; video.muted = true;
          video.preload = "metadata"; video.src = src;
          document.body.append(video);
        }""",
        src,
    )
    video = page.locator("video#player")
    # Seek before playing: the first request fetched the head (moov) only, so the seek
    # starts a request near the middle (CORS mode: each one a cross-origin read).
    page.wait_for_function("v => v.readyState >= 1 || v.error", arg=video.element_handle())
    before_seek = len(cors_site.accesses())
    video.evaluate("v => { v.currentTime = v.duration / 2; }")
    page.wait_for_function(
        "v => v.error || (!v.seeking && v.readyState >= 2)", arg=video.element_handle()
    )
    video.evaluate("v => v.play()")
    page.wait_for_function(
        "v => v.error || (v.currentTime > 5.5 && !v.paused)", arg=video.element_handle()
    )
    state = video.evaluate("v => [v.error && v.error.message, v.videoWidth, v.currentTime]")
    assert state[0] is None
    assert state[1] == 320
    # The frame is readable by script: the answer was CORS-same-origin, not tainted.
    tainted = page.evaluate(
        """() => {
          const video = document.getElementById("player");
          const canvas = document.createElement("canvas");
          canvas.width = 8; canvas.height = 8;
          const context = canvas.getContext("2d");
          context.drawImage(video, 0, 0, 8, 8);
          try { context.getImageData(0, 0, 1, 1); return false; } catch { return true; }
        }"""
    )
    assert tainted is False
    video.evaluate("v => v.pause()")
    assert tab.problems == []
    tab.close()  # ends the media requests still open, so the server logs them
    size = (cors_site.root / CLIP).stat().st_size

    def from_the_middle(access: Access) -> bool:
        return (
            CLIP in unquote(access.target)
            and access.status == 206
            and bool(access.bounds and size * 0.3 < access.bounds[0] < size * 0.7)
        )

    assert cors_site.wait_for_access(from_the_middle, since=before_seek), cors_site.accesses()


def test_a_page_from_an_unlisted_origin_cannot_read(
    tab: Tab, cors_site: Site, origins: Origins
) -> None:
    page = tab.page
    page.goto(origins.stranger.origin + "/")
    url = f"{cors_site.url}/files/{DATA}"
    for headers in ({}, {"Range": "bytes=0-99"}, {"Range": "bytes=-100"}):
        failure = page.evaluate(
            """async ([url, headers]) => {
              try { await fetch(url, {headers, cache: "no-store"}); return null; }
              catch (error) { return error.name; }
            }""",
            [url, headers],
        )
        assert failure == "TypeError", headers
    # The simple GETs reached the service and were answered: browsers enforce CORS.
    assert "bytes=0-99" in requests_for(cors_site, "GET")
