"""Metrics without a server: the plan's kind, the recorder fed with access-log records,
who may scrape, the digest-queue hook, the master's metrics folder and the settings."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from config import Settings, SettingsError
from service.observability import metrics, metricsdir
from service.observability.accesslog import Transfer
from service.observability.metrics import Metrics, Recorder
from service.sansio import Conditions, Policy, Representation, plan_response

LOOPBACK = Settings().metrics_allow
REP = Representation("f.bin", 1000, 1_700_000_000_000_000_000)
ETAG = str(REP.etag)
NOW = 1_800_000_000


@pytest.mark.parametrize(
    ("conditions", "kind"),
    [
        (Conditions(), "full"),
        (Conditions(range="bytes=0-9"), "range"),
        (Conditions(range="bytes=0-9,500-599"), "multipart"),
        (Conditions(range="bytes=0-9,9-20"), "range"),  # merged into one part
        (Conditions(range="bytes=5000-"), "range_not_satisfiable"),
        (Conditions(range="items=0-9"), "full"),  # an unknown unit is ignored
        (Conditions(if_none_match=ETAG), "not_modified"),
        (Conditions(if_match='"other"'), "precondition_failed"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_plan_knows_its_kind(conditions: Conditions, kind: str, method: str) -> None:
    plan = plan_response(method, conditions, REP, Policy(), NOW)
    assert plan.kind == kind


def record(
    kind: str | None,
    status: int,
    sent: int = 0,
    *,
    method: str = "GET",
    outcome: str = "complete",
) -> Transfer:
    transfer = Transfer({"REQUEST_METHOD": method})
    transfer.kind, transfer.status, transfer.bytes, transfer.outcome = kind, status, sent, outcome
    return transfer


def serve(recorder: Recorder, *transfers: Transfer) -> None:
    """As the access log calls its observers: started for each, then finished."""
    for transfer in transfers:
        if transfer.kind is not None:  # None: the app raised, nothing started
            recorder.started(transfer)
    for transfer in transfers:
        recorder.finished(transfer)


def value(m: Metrics, name: str, **labels: str) -> float:
    found = m.exposed.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_each_request_is_counted_once_by_code_and_kind() -> None:
    m = Metrics(LOOPBACK, None)
    serve(
        Recorder(m),
        record("full", 200, 1000),
        record("range", 206, 10),
        record("range", 206, 10),
        record("multipart", 206, 250),
        record("not_modified", 304),
        record("precondition_failed", 412, 20),
        record("range_not_satisfiable", 416, 22),
        record("listing", 200, 99),
        record("other", 404, 10),
        record("full", 200, method="HEAD"),
    )
    counts = {
        (s.labels["code"], s.labels["kind"]): s.value
        for family in m.exposed.collect()
        if family.name == "download_requests"
        for s in family.samples
        if s.name == "download_requests_total"
    }
    assert counts == {
        ("200", "full"): 2,
        ("206", "range"): 2,
        ("206", "multipart"): 1,
        ("304", "not_modified"): 1,
        ("412", "precondition_failed"): 1,
        ("416", "range_not_satisfiable"): 1,
        ("200", "listing"): 1,
        ("404", "other"): 1,
    }
    sent = {kind: value(m, "download_sent_bytes_total", kind=kind) for kind in metrics.KINDS}
    assert sent == {
        "full": 1000,
        "range": 20,
        "multipart": 250,
        "not_modified": 0,
        "precondition_failed": 20,
        "range_not_satisfiable": 22,
        "listing": 99,
        "other": 10,
    }


def test_only_gets_of_file_bytes_are_transfers() -> None:
    m = Metrics(LOOPBACK, None)
    recorder = Recorder(m)
    transfers = [record("full", 200, 5), record("range", 206, 5), record("multipart", 206, 5)]
    others = [record("full", 200, method="HEAD"), record("listing", 200), record("other", 404)]
    for transfer in transfers + others:
        recorder.started(transfer)
    assert value(m, "download_transfers_in_flight") == 3
    for transfer in transfers + others:
        recorder.finished(transfer)
    assert value(m, "download_transfers_in_flight") == 0
    for kind in ("full", "range", "multipart"):
        assert value(m, "download_transfer_duration_seconds_count", kind=kind) == 1
        assert value(m, "download_transfer_duration_seconds_bucket", kind=kind, le="+Inf") == 1


def test_aborted_and_truncated_transfers_are_counted() -> None:
    m = Metrics(LOOPBACK, None)
    serve(
        Recorder(m),
        record("full", 200, 300, outcome="aborted"),
        record("range", 206, 300, outcome="aborted"),
        record("full", 200, 500, outcome="truncated"),
        record("full", 200, 900, outcome="error"),
        record("listing", 200, 0, outcome="aborted"),  # not a transfer
    )
    assert value(m, "download_transfers_aborted_total") == 2
    assert value(m, "download_transfers_truncated_total") == 1
    assert value(m, "download_sent_bytes_total", kind="full") == 1700
    assert value(m, "download_transfers_in_flight") == 0


def test_scrapes_are_not_counted_and_strange_kinds_are_other() -> None:
    m = Metrics(LOOPBACK, None)
    serve(
        Recorder(m),
        record(metrics.SCRAPE, 200, 5000),
        record("surprise", 200, 7),
        record(None, 0, outcome="error"),  # the app raised: the server answers 500
    )
    assert value(m, "download_requests_total", code="200", kind="other") == 1
    assert value(m, "download_requests_total", code="500", kind="other") == 1
    assert value(m, "download_requests_total", code="200", kind="metrics") == 0
    assert value(m, "download_sent_bytes_total", kind="other") == 7
    assert value(m, "download_transfers_in_flight") == 0


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # IPv4-mapped counts as IPv4
        ("", True),  # a unix-socket peer is local
        ("192.0.2.9", False),
        ("::ffff:192.0.2.9", False),
        ("2001:db8::1", False),
        ("not-an-address", False),
    ],
)
def test_only_loopback_may_scrape_by_default(peer: str, allowed: bool) -> None:
    assert Metrics(LOOPBACK, None).allows(peer) is allowed


def test_other_networks_may_be_allowed() -> None:
    allow = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))
    m = Metrics(allow, None)
    assert [m.allows(p) for p in ("10.9.8.7", "2001:db8::5", "127.0.0.1", "11.0.0.1")] == [
        True,
        True,
        False,
        False,
    ]


def test_the_digest_queue_gauge_follows_the_store_at_requests_and_scrapes() -> None:
    queue = ["a", "b", "c"]
    m = Metrics(LOOPBACK, None, lambda: len(queue))
    serve(Recorder(m), record("full", 200, 10))
    assert value(m, "download_digest_queue_length") == 3
    queue.pop()
    m.refresh_gauges()  # what a scrape does first
    assert value(m, "download_digest_queue_length") == 2


def test_without_a_digest_store_the_gauge_stays_zero() -> None:
    m = Metrics(LOOPBACK, None)
    serve(Recorder(m), record("full", 200, 10))
    m.refresh_gauges()
    assert value(m, "download_digest_queue_length") == 0


def test_a_configured_folder_is_made_and_emptied_of_metric_files(tmp_path: Path) -> None:
    folder = tmp_path / "m" / "metrics"
    environ: dict[str, str] = {}
    assert metricsdir.prepare(folder, environ) == folder
    assert folder.is_dir()
    (folder / "counter_123.db").write_bytes(b"old")
    (folder / "gauge_livesum_123.db").write_bytes(b"old")
    (folder / "notes.txt").write_text("kept")
    metricsdir.prepare(folder, environ)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]  # only *.db go
    assert environ == {metricsdir.ENV: str(folder)}
    metricsdir.remove_created()  # not ours to remove
    assert folder.is_dir()


def test_by_default_each_master_gets_a_new_folder_removed_at_exit() -> None:
    first_env: dict[str, str] = {}
    first = metricsdir.prepare(None, first_env)
    metricsdir.remove_created()
    assert not first.exists()
    environ: dict[str, str] = {}
    folder = metricsdir.prepare(None, environ)
    try:
        assert folder != first
        assert environ[metricsdir.ENV] == str(folder)
        if os.access("/dev/shm", os.W_OK):
            assert folder.parent == Path("/dev/shm")  # memory; writable on a read-only root
        assert list(folder.iterdir()) == []
    finally:
        metricsdir.remove_created()
    assert not folder.exists()


def test_a_dead_worker_loses_its_live_gauges_and_keeps_its_counters(tmp_path: Path) -> None:
    names = ["counter_41.db", "histogram_41.db", "gauge_livesum_41.db", "gauge_livesum_42.db"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    metricsdir.worker_exited(41, {metricsdir.ENV: str(tmp_path)})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(names) - {names[2]})
    metricsdir.worker_exited(42, {})  # metrics off: nothing to do


def test_metrics_settings(tmp_path: Path) -> None:
    base = {"DL_DATA_ROOT": str(tmp_path)}
    default = Settings.from_env(base)
    assert (default.metrics, default.metrics_dir) == (True, None)
    assert [str(n) for n in default.metrics_allow] == ["127.0.0.0/8", "::1/128"]
    custom = Settings.from_env(
        {
            **base,
            "DL_METRICS": "off",
            "DL_METRICS_DIR": "/dev/shm/dl",
            "DL_METRICS_ALLOW": "10.1.2.3/8, 192.0.2.7 ,2001:db8::/32",
        }
    )
    assert (custom.metrics, custom.metrics_dir) == (False, Path("/dev/shm/dl"))
    assert [str(n) for n in custom.metrics_allow] == ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]
    for variable, raw in (
        ("DL_METRICS_ALLOW", ""),
        ("DL_METRICS_ALLOW", "10.0.0.0/33"),
        ("DL_METRICS_ALLOW", "localhost"),
        ("DL_METRICS_DIR", ""),
        ("DL_METRICS", "maybe"),
    ):
        with pytest.raises(SettingsError, match=variable):
            Settings.from_env({**base, variable: raw})
