"""Content-Type from a file name: built-in table only, compression is never an encoding."""

from __future__ import annotations

import pytest

from service.sansio.media_types import DEFAULT, guess_type


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("video.mp4", "video/mp4"),
        ("clip.m4v", "video/mp4"),
        ("movie.mkv", "video/x-matroska"),
        ("movie.webm", "video/webm"),
        ("song.mp3", "audio/mpeg"),
        ("song.flac", "audio/flac"),
        ("song.m4a", "audio/mp4"),
        ("notes.txt", "text/plain"),
        ("doc.pdf", "application/pdf"),
        ("archive.zip", "application/zip"),
        ("archive.7z", "application/x-7z-compressed"),
        ("archive.zst", "application/zstd"),
        ("disk.iso", "application/x-iso9660-image"),
        ("pkg.deb", "application/vnd.debian.binary-package"),
        ("pkg.rpm", "application/x-rpm"),
        ("app.apk", "application/vnd.android.package-archive"),
        ("data.parquet", "application/vnd.apache.parquet"),
        ("vm.qcow2", "application/octet-stream"),
        ("picture.JPG", "image/jpeg"),  # the extension's case does not matter
        ("VIDEO.MP4", "video/mp4"),
    ],
)
def test_type_follows_the_extension(name: str, media_type: str) -> None:
    assert guess_type(name) == media_type


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("backup.tar.gz", "application/gzip"),
        ("backup.tgz", "application/gzip"),
        ("log.txt.gz", "application/gzip"),
        ("plain.gz", "application/gzip"),
        ("image.svgz", "application/gzip"),
        ("backup.tar.bz2", "application/x-bzip2"),
        ("backup.tar.xz", "application/x-xz"),
        ("backup.txz", "application/x-xz"),
        ("old.tar.Z", "application/x-compress"),
        ("page.html.br", "application/x-brotli"),
    ],
)
def test_compressed_file_is_typed_as_the_compressed_format(name: str, media_type: str) -> None:
    assert guess_type(name) == media_type


@pytest.mark.parametrize("name", ["README", "noext.", "file.unknownext", ".gz", ".bashrc", ""])
def test_unknown_or_missing_extension_is_octet_stream(name: str) -> None:
    assert guess_type(name) == DEFAULT == "application/octet-stream"


@pytest.mark.parametrize(
    "name",
    ["data:text/html,x.mp4", "data:,a.mp4", "data:foo;base64,x.mp4", "http:x.mp4", "file:x.mp4"],
)
def test_name_that_looks_like_a_url_is_still_typed_by_its_extension(name: str) -> None:
    assert guess_type(name) == "video/mp4"


def test_name_that_looks_like_a_data_url_is_not_html() -> None:
    assert guess_type("data:text/html,<script>") == DEFAULT


@pytest.mark.parametrize(
    "name", ["a.tar.gz", "a.gz", "a.bz2", "a.xz", "a.Z", "a.br", "a.tgz", "a.svgz", "x.html.gz"]
)
def test_type_is_always_a_media_type_never_a_content_coding(name: str) -> None:
    media_type = guess_type(name)
    assert "/" in media_type
    assert media_type not in ("gzip", "bzip2", "xz", "compress", "br")
    assert not media_type.startswith(("text/html", "application/x-tar"))
