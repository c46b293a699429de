"""ffprobe / ffmpeg over HTTP on an MP4 whose ``moov`` index sits after ``mdat``.

libavformat opens with ``Range: bytes=0-``; it is seekable only if that gets a 206
(or ``Accept-Ranges: bytes``). To read the index it must then jump to the tail with a
new ``bytes=<moov offset>-`` request, and ``-ss`` jumps to a keyframe's byte position
the same way. The movie is noisy so that ``mdat`` is many MB: on a small file
libavformat reads through instead of seeking.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clients.support import ClientServer, describe, run, show
from tests.support.tools import require_tool

pytestmark = pytest.mark.clients

DURATION = 20
SEEK = 12
MIN_MDAT = 4 * 2**20


@dataclass(frozen=True, slots=True)
class Movie:
    path: Path
    moov_offset: int
    keyframes: dict[int, float]  # byte position -> presentation time (s)


def top_level_atoms(path: Path) -> list[tuple[str, int, int]]:
    """(type, offset, size) of each top-level ISO BMFF box."""
    atoms = []
    with open(path, "rb") as file:
        offset = 0
        while header := file.read(8):
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                (size,) = struct.unpack(">Q", file.read(8))
            elif size == 0:  # extends to the end of the file
                size = path.stat().st_size - offset
            atoms.append((kind.decode("latin-1"), offset, size))
            offset += size
            file.seek(offset)
    return atoms


def one_frame(ffmpeg: str, source: str, *output: str) -> list[str]:
    """ffmpeg arguments: seek to SEEK seconds in ``source`` and write one frame."""
    return [
        ffmpeg,
        "-nostdin",
        "-v",
        "error",
        "-ss",
        str(SEEK),
        "-i",
        source,
        "-frames:v",
        "1",
        *output,
    ]


@pytest.fixture(scope="module")
def movie(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Movie]:
    ffmpeg, ffprobe = require_tool("ffmpeg"), require_tool("ffprobe")
    path = tmp_path_factory.mktemp("movie") / "moov-at-end.mp4"
    # The default mp4 muxer (no -movflags +faststart) writes moov after mdat.
    run(
        [
            ffmpeg,
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=duration={DURATION}:size=320x240:rate=25",
            "-vf",
            "noise=alls=30:allf=t",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "25",
            str(path),
        ]
    )
    atoms = top_level_atoms(path)
    kinds = [kind for kind, _, _ in atoms]
    assert "mdat" in kinds, atoms
    assert "moov" in kinds, atoms
    assert kinds.index("moov") > kinds.index("mdat"), f"moov is not at the end: {atoms}"
    mdat_size = next(size for kind, _, size in atoms if kind == "mdat")
    assert mdat_size >= MIN_MDAT, atoms
    probe = run(
        [
            ffprobe,
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,pos,flags",
            "-of",
            "json",
            str(path),
        ]
    )
    packets = json.loads(probe.stdout)["packets"]
    keyframes = {int(p["pos"]): float(p["pts_time"]) for p in packets if "K" in p["flags"]}
    yield Movie(path, next(offset for kind, offset, _ in atoms if kind == "moov"), keyframes)
    path.unlink()


def test_ffprobe_reads_the_duration_from_the_tail(
    client_server: ClientServer, movie: Movie
) -> None:
    ffprobe = require_tool("ffprobe")
    name = "movie-probe.mp4"
    url = client_server.publish(name, movie.path)

    result = run(
        [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", url]
    )

    assert abs(float(result.stdout) - DURATION) < 0.1, describe(result)
    accesses = client_server.settled_accesses(name, minimum=2)
    log = show(accesses)
    assert {a.status for a in accesses} == {206}, log
    starts = [a.bounds[0] for a in accesses if a.bounds is not None]
    assert 0 in starts, f"libavformat opens with bytes=0-:\n{log}"
    assert movie.moov_offset in starts, f"no request for moov at {movie.moov_offset}:\n{log}"


def test_ffmpeg_seeks_into_the_movie(
    client_server: ClientServer, movie: Movie, tmp_path: Path
) -> None:
    ffmpeg = require_tool("ffmpeg")
    name = "movie-seek.mp4"
    url = client_server.publish(name, movie.path)
    frame = tmp_path / "frame.png"

    run(one_frame(ffmpeg, url, "-f", "image2", str(frame)))

    assert frame.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    accesses = client_server.settled_accesses(name, minimum=3)
    log = show(accesses)
    assert {a.status for a in accesses} == {206}, log
    starts = {a.bounds[0] for a in accesses if a.bounds is not None}
    assert movie.moov_offset in starts, f"no request for moov at {movie.moov_offset}:\n{log}"
    near_seek = {pos for pos, t in movie.keyframes.items() if SEEK - 1 <= t <= SEEK}
    assert starts & near_seek, f"no request at a keyframe near {SEEK}s {near_seek}:\n{log}"


def test_ffmpeg_decodes_the_same_frame_over_http(client_server: ClientServer, movie: Movie) -> None:
    ffmpeg = require_tool("ffmpeg")
    url = client_server.publish("movie-frame.mp4", movie.path)

    def raw_frame(source: str) -> bytes:
        result = run(one_frame(ffmpeg, source, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"))
        assert len(result.stdout) == 320 * 240 * 3, describe(result)
        return result.stdout

    remote, local = raw_frame(url), raw_frame(str(movie.path))
    assert hashlib.sha256(remote).hexdigest() == hashlib.sha256(local).hexdigest()
