"""/metrics through the app, as a WSGI server drives it: every kind of answer counted
once, the bytes the access log saw, who may scrape, and nothing at all when turned off."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from config import Settings
from service import create_app
from service.observability.accesslog import AccessLog
from service.web.errors import TruncatedFileError
from tests.app import BIG, BIG_SIZE, MTIME_NS, build_tree, wsgi_call
from tests.support.access_log import AccessLines


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return build_tree(tmp_path)


@pytest.fixture
def app(root: Path) -> Flask:
    return create_app(Settings(data_root=root, chunk_size=4096, access_log=False))


def call(app: Flask, path: str, **extra: Any) -> tuple[list[Any], Any]:
    return wsgi_call(app, path, **{"REMOTE_ADDR": "127.0.0.1", **extra})


def fetch(app: Flask, path: str, **extra: Any) -> tuple[int, bytes]:
    started, body = call(app, path, **extra)
    try:
        return int(started[0][:3]), b"".join(body)
    finally:
        body.close()


def scrape(app: Flask, **extra: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text = fetch(app, "/metrics", **extra)
    assert status == 200, text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def requests_by(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[Any, float]:
    return {
        (dict(labels)["code"], dict(labels)["kind"]): v
        for (name, labels), v in samples.items()
        if name == "download_requests_total"
    }


def test_every_kind_of_answer_is_counted_with_the_bytes_delivered(app: Flask) -> None:
    etag = f'"{BIG_SIZE:x}-{MTIME_NS:x}"'
    requests = [
        ({}, "/files/big.bin", 200),
        ({"HTTP_RANGE": "bytes=10-19"}, "/files/big.bin", 206),
        ({"HTTP_RANGE": "bytes=0-0,-5"}, "/files/big.bin", 206),
        ({"HTTP_IF_NONE_MATCH": etag}, "/files/big.bin", 304),
        ({"HTTP_IF_MATCH": '"nope"'}, "/files/big.bin", 412),
        ({"HTTP_RANGE": "bytes=999999-"}, "/files/big.bin", 416),
        ({"REQUEST_METHOD": "HEAD"}, "/files/big.bin", 200),
        ({}, "/files/sub/", 200),
        ({}, "/files/sub", 301),
        ({}, "/files/missing", 404),
        ({"REQUEST_METHOD": "POST"}, "/files/a.txt", 405),
        ({}, "/healthz", 200),
    ]
    received = 0
    for extra, path, expected in requests:
        status, body = fetch(app, path, **extra)
        assert status == expected, (path, extra)
        received += len(body)
    samples = scrape(app)
    assert requests_by(samples) == {
        ("200", "full"): 2,
        ("206", "range"): 1,
        ("206", "multipart"): 1,
        ("304", "not_modified"): 1,
        ("412", "precondition_failed"): 1,
        ("416", "range_not_satisfiable"): 1,
        ("200", "listing"): 1,
        ("301", "other"): 1,
        ("404", "other"): 1,
        ("405", "other"): 1,
        ("200", "other"): 1,
    }
    sent = sum(v for (name, _), v in samples.items() if name == "download_sent_bytes_total")
    assert sent == received
    full = samples[("download_sent_bytes_total", frozenset({("kind", "full")}))]
    assert full == BIG_SIZE
    assert requests_by(scrape(app)) == requests_by(samples)  # scrapes are not counted


def test_a_refused_download_is_not_counted_as_a_file(root: Path) -> None:
    app = create_app(Settings(data_root=root, access_log=False, max_downloads_per_client=1))
    _started, first = call(app, "/files/big.bin")
    assert fetch(app, "/files/big.bin")[0] == 429
    first.close()
    assert requests_by(scrape(app)) == {("429", "other"): 1, ("200", "full"): 1}


REPORT = {
    "HTTP_X_OFFLOAD_DONE": "1",
    "HTTP_X_OFFLOAD_KIND": "range",
    "HTTP_X_OFFLOAD_BYTES": "10",
    "HTTP_X_OFFLOAD_COMPLETION": "OK",
    "HTTP_X_OFFLOAD_SECONDS": "0.250",
}


def test_offloaded_transfers_count_when_nginx_reports_them(root: Path) -> None:
    """The answer counts as nginx's 206; its bytes, duration and abort come from nginx's
    report, which is no request of its own. A malformed or untrusted report adds nothing."""
    app = create_app(Settings(data_root=root, access_log=False, offload="x-accel"))
    status, body = fetch(app, "/files/big.bin", HTTP_RANGE="bytes=10-19")
    assert (status, body) == (200, b"")  # to nginx: X-Accel-Redirect
    assert fetch(app, "/_offload/done", **REPORT)[0] == 204
    aborted = {**REPORT, "HTTP_X_OFFLOAD_KIND": "full", "HTTP_X_OFFLOAD_BYTES": "7"}
    del aborted["HTTP_X_OFFLOAD_COMPLETION"]
    assert fetch(app, "/_offload/done", **aborted)[0] == 204
    assert fetch(app, "/_offload/done", **{**REPORT, "HTTP_X_OFFLOAD_BYTES": "-5"})[0] == 204
    assert fetch(app, "/_offload/done", **{**REPORT, "REMOTE_ADDR": "192.0.2.1"})[0] == 404
    samples = scrape(app)
    assert requests_by(samples) == {("206", "range"): 1, ("404", "other"): 1}
    assert samples[("download_sent_bytes_total", frozenset({("kind", "range")}))] == 10
    assert samples[("download_sent_bytes_total", frozenset({("kind", "full")}))] == 7
    assert samples[("download_transfers_aborted_total", frozenset())] == 1
    assert samples[("download_transfers_in_flight", frozenset())] == 0
    durations = ("download_transfer_duration_seconds_sum", frozenset({("kind", "range")}))
    assert samples[durations] == 0.25


def test_in_flight_aborted_and_truncated_transfers(app: Flask, root: Path) -> None:
    gauge = ("download_transfers_in_flight", frozenset())
    _, leaving = call(app, "/files/big.bin")
    next(iter(leaving))
    assert scrape(app)[gauge] == 1
    leaving.close()  # the client went away
    assert scrape(app)[gauge] == 0
    _, shrinking = call(app, "/files/big.bin", HTTP_RANGE="bytes=0-49999")
    next(iter(shrinking))
    assert scrape(app)[gauge] == 1
    os.truncate(root / "big.bin", 5000)
    with pytest.raises(TruncatedFileError):
        list(shrinking)
    shrinking.close()
    samples = scrape(app)
    assert samples[gauge] == 0
    assert samples[("download_transfers_aborted_total", frozenset())] == 1
    assert samples[("download_transfers_truncated_total", frozenset())] == 1
    counts = [
        samples[("download_transfer_duration_seconds_count", frozenset({("kind", kind)}))]
        for kind in ("full", "range")
    ]
    assert counts == [1, 1]


def test_the_access_log_and_the_metrics_share_one_record(
    root: Path, access_lines: AccessLines
) -> None:
    app = create_app(Settings(data_root=root, access_log=True))
    assert fetch(app, "/files/big.bin")[1] == BIG
    (line,) = access_lines.lines
    assert line["bytes"] == BIG_SIZE
    samples = scrape(app)
    assert samples[("download_sent_bytes_total", frozenset({("kind", "full")}))] == BIG_SIZE


@pytest.mark.parametrize(
    "peer", ["192.0.2.9", "10.0.0.1", "2001:db8::1", "::ffff:192.0.2.9", "203.0.113.1"]
)
def test_only_loopback_may_scrape_by_default(app: Flask, peer: str) -> None:
    status, body = fetch(app, "/metrics", REMOTE_ADDR=peer)
    assert (status, body) == (403, b"Forbidden\n")
    assert fetch(app, "/metrics", REMOTE_ADDR="::1")[0] == 200


def test_the_allowed_networks_are_a_setting(root: Path) -> None:
    allow = Settings.from_env({"DL_DATA_ROOT": str(root), "DL_METRICS_ALLOW": "192.0.2.0/24"})
    app = create_app(allow)
    assert fetch(app, "/metrics", REMOTE_ADDR="192.0.2.9")[0] == 200
    assert fetch(app, "/metrics", REMOTE_ADDR="127.0.0.1")[0] == 403


def test_the_scrape_is_the_text_format(app: Flask) -> None:
    started, body = call(app, "/metrics")
    body.close()
    headers = dict(started[1])
    assert headers["Content-Type"].startswith("text/plain; version=")
    assert headers["Cache-Control"] == "no-store"


def test_metrics_off_means_no_route_and_no_middleware(root: Path) -> None:
    app = create_app(Settings(data_root=root, metrics=False, access_log=False))
    assert not isinstance(app.wsgi_app, AccessLog)
    assert "metrics" not in app.extensions
    assert fetch(app, "/metrics")[0] == 404
    with_log = create_app(Settings(data_root=root, metrics=False, access_log=True))
    assert isinstance(with_log.wsgi_app, AccessLog)
    assert with_log.wsgi_app.observers == ()


def test_a_gauge_is_written_only_when_its_value_changes(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's own gauges are set at every publication; an unchanged value costs
    no write, and every change, down to zero and back, still reaches the scrape."""
    metrics = app.extensions["metrics"]
    writes: list[float] = []
    real_set = type(metrics.in_flight).set

    def counted(gauge: Any, value: float) -> None:
        writes.append(value)
        real_set(gauge, value)

    monkeypatch.setattr(type(metrics.in_flight), "set", counted)
    for value in (3, 3, 3, 0, 0, 3):
        metrics.set_gauge(metrics.in_flight, value)
        assert metrics.in_flight._value.get() == value
    assert writes == [3, 0, 3]
