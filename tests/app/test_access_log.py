"""The JSON access log: one line per request with the bytes really delivered and how
the transfer ended, on both delivery paths."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from config import Settings
from service import create_app
from service.web.errors import TruncatedFileError
from tests.app import BIG, BIG_SIZE, build_tree, wsgi_call
from tests.support.access_log import AccessLines


@pytest.fixture
def records(access_lines: AccessLines) -> AccessLines:
    return access_lines


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return create_app(Settings(data_root=build_tree(tmp_path), chunk_size=4096))


def call(app: Flask, path: str, **extra: Any) -> tuple[list[Any], Any]:
    return wsgi_call(app, path, **{"REMOTE_ADDR": "192.0.2.9", **extra})


def test_a_complete_download_logs_its_bytes_and_request_id(app, records) -> None:
    started, body = call(app, "/files/big.bin", HTTP_USER_AGENT="probe/1")
    assert b"".join(body) == BIG
    body.close()
    (line,) = records.lines
    assert {k: line[k] for k in ("client", "method", "target", "status", "bytes", "outcome")} == {
        "client": "192.0.2.9",
        "method": "GET",
        "target": "/files/big.bin",
        "status": 200,
        "bytes": BIG_SIZE,
        "outcome": "complete",
    }
    assert line["user_agent"] == "probe/1"
    assert line["duration_ms"] >= 0
    assert ("X-Request-Id", line["id"]) in started[1]


def test_a_sane_incoming_request_id_is_kept_and_an_odd_one_replaced(app, records) -> None:
    for offered in ("abc-123.x", "bad id\r\nX: y"):
        _, body = call(app, "/files/a.txt", HTTP_X_REQUEST_ID=offered)
        list(body)
        body.close()
    kept, replaced = records.lines
    assert kept["id"] == "abc-123.x"
    assert replaced["id"] != "bad id\r\nX: y"
    assert len(replaced["id"]) == 32


def test_an_abandoned_download_counts_only_what_the_server_wrote(app, records) -> None:
    _, body = call(app, "/files/big.bin", HTTP_RANGE="bytes=0-49999")
    chunks = iter(body)
    next(chunks)
    next(chunks)  # asking for the second chunk means the first one was written
    body.close()  # the client left while the second was being written
    (line,) = records.lines
    assert (line["status"], line["range"], line["bytes"], line["outcome"]) == (
        206,
        "bytes=0-49999",
        4096,
        "aborted",
    )


def test_a_truncated_file_is_logged_as_truncated(app, records, tmp_path: Path) -> None:
    _, body = call(app, "/files/big.bin")
    chunks = iter(body)
    next(chunks)
    os.truncate(tmp_path / "big.bin", 5000)
    with pytest.raises(TruncatedFileError):
        list(chunks)
    body.close()
    (line,) = records.lines
    assert (line["bytes"], line["outcome"]) == (5000, "truncated")  # all it had


def test_answers_without_a_body_and_errors_are_logged_too(app, records) -> None:
    for path, extra in (("/files/big.bin", {"REQUEST_METHOD": "HEAD"}), ("/files/nope", {})):
        _, body = call(app, path, **extra)
        list(body)
        body.close()
    head, missing = records.lines
    assert (head["method"], head["status"], head["bytes"], head["outcome"]) == (
        "HEAD",
        200,
        0,
        "complete",
    )
    assert (missing["status"], missing["outcome"]) == (404, "complete")
    assert missing["bytes"] == len(b"Not Found\n")


def test_bytes_sent_past_the_server_by_sendfile_are_counted(app, records) -> None:
    near, far = socket.socketpair()
    received = bytearray()

    def drain() -> None:
        while data := far.recv(1 << 16):
            received.extend(data)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        _, body = call(app, "/files/big.bin", **{"gunicorn.socket": near})
        for chunk in body:
            near.sendall(chunk)  # as the server writes what it is handed
        body.close()
        near.shutdown(socket.SHUT_WR)
        reader.join(timeout=10)
    finally:
        near.close()
        far.close()
    assert bytes(received) == BIG
    (line,) = records.lines
    assert (line["bytes"], line["outcome"]) == (BIG_SIZE, "complete")


def test_a_client_that_left_during_sendfile_is_logged_as_aborted(app, records) -> None:
    near, far = socket.socketpair()
    try:
        _, body = call(app, "/files/big.bin", **{"gunicorn.socket": near})
        chunks = iter(body)
        near.sendall(next(chunks))
        far.close()
        list(chunks)
        body.close()
    finally:
        near.close()
    (line,) = records.lines
    assert line["outcome"] == "aborted"
    assert line["bytes"] < BIG_SIZE


def test_the_log_can_be_turned_off(tmp_path: Path, records) -> None:
    app = create_app(Settings(data_root=build_tree(tmp_path), access_log=False))
    _, body = call(app, "/files/a.txt")
    list(body)
    body.close()
    assert records.lines == []


@pytest.mark.parametrize(
    ("behind_proxy", "peer", "logged"),
    [
        (True, "127.0.0.1", "198.51.100.7"),  # a trusted proxy names the client
        (True, "192.0.2.9", "192.0.2.9"),  # anyone else cannot
        (False, "127.0.0.1", "127.0.0.1"),  # not behind a proxy: the header means nothing
    ],
)
def test_behind_a_proxy_the_client_is_the_one_a_trusted_proxy_names(
    tmp_path: Path, records: AccessLines, behind_proxy: bool, peer: str, logged: str
) -> None:
    settings = Settings(data_root=build_tree(tmp_path), behind_proxy=behind_proxy)
    _, body = call(
        create_app(settings), "/files/big.bin", REMOTE_ADDR=peer, HTTP_X_REAL_IP="198.51.100.7"
    )
    b"".join(body)
    body.close()
    (line,) = records.lines
    assert line["client"] == logged


def test_new_request_ids_are_32_hex_digits_and_differ_in_a_forked_worker() -> None:
    from service.observability.accesslog import _new_id

    ids = {_new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 and i == i.lower() for i in ids)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # as gunicorn forks its workers from one master
        os.write(write_end, _new_id().encode())
        os._exit(0)
    os.close(write_end)
    parent_next = _new_id()
    with os.fdopen(read_end, "rb") as pipe:
        child_id = pipe.read().decode()
    os.waitpid(child, 0)
    assert len(child_id) == 32
    assert child_id != parent_next
