"""Storage errors through the app: the answer, the log line, the record and the metric.

The real faults (stalls, EIO on a FUSE mount, a real worker) are in
tests/integration/test_storage_faults.py; these pin each answer in-process.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from config import Settings
from service import create_app
from service.storage.catalog import Catalog
from service.web.errors import StorageBusyError
from tests.app import build_tree, wsgi_call
from tests.support.access_log import AccessLines

BIG = "big.bin"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return build_tree(tmp_path)


@pytest.fixture
def app(root: Path) -> Flask:
    return create_app(Settings(data_root=root, chunk_size=4096))


def fetch(app: Flask, path: str, **extra: Any) -> tuple[str, dict[str, str], bytes]:
    started, body = wsgi_call(app, path, REMOTE_ADDR="127.0.0.1", **extra)
    try:
        data = b"".join(body)
    finally:
        body.close()
    return started[0], dict(started[1]), data


def failing(code: int) -> Any:
    def fail(*args: object, **kwargs: object) -> Any:
        raise OSError(code, os.strerror(code))

    return fail


def records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == name]


@pytest.mark.parametrize("code", [errno.EIO, errno.ESTALE, errno.ENOTCONN, errno.EREMOTEIO])
def test_a_failing_open_is_503_with_retry_after_one_line_and_its_record(
    app: Flask,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    access_lines: AccessLines,
    code: int,
) -> None:
    monkeypatch.setattr(Catalog, "open_cached", lambda self, url_path: None)
    monkeypatch.setattr(os, "open", failing(code))
    with caplog.at_level(logging.INFO):
        status, headers, body = fetch(app, f"/files/{BIG}", HTTP_X_REQUEST_ID="req-1")
    assert status == "503 Service Unavailable"
    assert headers["Retry-After"] == "5"
    assert body == b"Service Unavailable: storage error, try again\n"
    (line,) = records(caplog, "service.storage")
    name = errno.errorcode[code]
    assert line.levelno == logging.ERROR
    assert line.getMessage() == f"storage error: {name} opening {BIG!r}; request req-1"
    (record,) = access_lines.lines
    assert (record["status"], record["outcome"]) == (503, "storage_error")


def test_a_failing_first_read_is_503_before_any_byte(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(os, "pread", failing(errno.EIO))
    with caplog.at_level(logging.INFO):
        status, headers, _ = fetch(app, f"/files/{BIG}", HTTP_RANGE="bytes=5000-")
    assert status.startswith("503")
    assert headers["Retry-After"] == "5"
    (line,) = records(caplog, "service.storage")
    assert f"EIO reading {BIG!r} at byte 5000" in line.getMessage()


def test_a_file_whose_threads_are_all_stuck_is_refused_with_503(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def busy(*args: object, **kwargs: object) -> Any:
        raise StorageBusyError("every thread this file uses is stuck")

    monkeypatch.setattr(app.extensions["storage"], "open_file", busy)
    with caplog.at_level(logging.INFO):
        status, headers, _ = fetch(app, f"/files/{BIG}")
    assert status.startswith("503")
    assert headers["Retry-After"] == "5"
    (line,) = records(caplog, "service.storage")
    assert "EBUSY opening" in line.getMessage()
    assert "(every thread this file uses is stuck)" in line.getMessage()


def test_storage_errors_are_counted_by_errno(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Catalog, "open_cached", lambda self, url_path: None)
    with monkeypatch.context() as patch:
        patch.setattr(os, "open", failing(errno.EIO))
        for _ in range(2):
            fetch(app, f"/files/{BIG}")
    _, _, text = fetch(app, "/metrics")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }
    assert samples[("download_storage_errors_total", (("errno", "EIO"),))] == 2
    assert ("download_io_threads_busy", ()) in samples


@pytest.fixture
def broken_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """``stat`` of ``sub/b.txt``'s folder entry fails with EIO."""
    real_scandir = os.scandir

    class Entry:
        def __init__(self, entry: os.DirEntry[str]) -> None:
            self.entry, self.name, self.path = entry, entry.name, entry.path

        def is_symlink(self) -> bool:
            return self.entry.is_symlink()

        def stat(self) -> os.stat_result:
            if self.name == "b.txt":
                raise OSError(errno.EIO, "Input/output error")
            return self.entry.stat()

    class Scan:
        def __init__(self, path: str) -> None:
            self.scan = real_scandir(path)

        def __enter__(self) -> list[Entry]:
            return [Entry(entry) for entry in self.scan]

        def __exit__(self, *args: object) -> None:
            self.scan.close()

        def __iter__(self) -> Any:  # others iterate scandir without a with block
            with self as entries:
                return iter(entries)

    monkeypatch.setattr(os, "scandir", Scan)


@pytest.mark.usefixtures("broken_entry")
def test_a_listing_keeps_an_entry_it_cannot_examine_in_every_format(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="service.storage"):
        _, _, document = fetch(app, "/files/sub/", QUERY_STRING="format=json")
        _, _, page = fetch(app, "/files/sub/", QUERY_STRING="format=html")
        _, _, sums = fetch(app, "/files/sub/", QUERY_STRING="format=sha256")
    entries = {entry["name"]: entry for entry in json.loads(document)["entries"]}
    assert entries["b.txt"] == {
        "name": "b.txt",
        "type": "unknown",
        "url": "/files/sub/b.txt",
        "error": "EIO",
    }
    assert b"unavailable (EIO)" in page
    assert b"# unavailable, storage error EIO: b.txt\n" in sums
    lines = [record.getMessage() for record in records(caplog, "service.storage")]
    assert len(lines) == 1  # logged once while the error lasts, not per listing
    assert lines[0].startswith("storage error: EIO examining 'sub/b.txt' for a listing")


def test_a_folder_that_cannot_be_read_is_503(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(os, "scandir", failing(errno.EIO))
    with caplog.at_level(logging.ERROR):
        status, headers, _ = fetch(app, "/files/sub/")
    assert status.startswith("503")
    assert headers["Retry-After"] == "5"
    (line,) = records(caplog, "service.storage")
    assert line.getMessage().startswith("storage error: EIO listing 'sub/'")


def test_health_says_when_the_io_threads_are_all_busy(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.extensions["storage"].pool, "saturated_for", lambda: 7.4)
    status, _, body = fetch(app, "/healthz")
    assert status.startswith("503")
    assert body.startswith(b"all ")
    assert b"I/O threads busy for 7s" in body
