"""Prometheus metrics, served at ``GET /metrics`` to the networks in ``DL_METRICS_ALLOW``.

Fed by the access log's record of each request (:class:`Recorder` is its observer), so
the bytes are the ones really delivered, ``sendfile`` included, and nothing counts twice.
Under gunicorn every worker writes its values to the master's folder
(:mod:`service.observability.metricsdir`) and a scrape of any worker reads the sum of all of them.

The ``kind`` label is a closed set: ``full`` (200 with the file), ``range`` (206, one
range), ``multipart`` (206, multipart/byteranges), ``not_modified`` (304),
``precondition_failed`` (412), ``range_not_satisfiable`` (416), ``listing`` (a folder's
JSON) and ``other`` (everything else: errors, redirects, refusals, ``/healthz``).
Scrapes of ``/metrics`` are not counted. A *transfer* is a GET of the first three kinds.
With ``DL_OFFLOAD`` an offloaded transfer counts as a request when the service answers
it, and its bytes, duration and abort when nginx reports the delivery's end (that report
is not a request of its own); ``download_transfers_in_flight`` counts the service's own.

Requests are tallied in plain counters and published to the values in batches (see
:class:`Recorder`): no lock, no ``getpid`` and no file write per request. The digest
queue gauge is read from this worker's digest store (its length is a plain read) at
each publication, at each scrape, and once a second from a greenlet under
gevent, so a worker's queue that drains while no request comes is still seen to drain.
The hashing thread itself never touches a metric: the values' locks are gevent's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

from config import Settings
from config.settings import Network
from service.delivery.eventloop import Later, loop_callback
from service.observability.accesslog import KIND_KEY, Transfer
from service.observability.metricsdir import ENV
from service.sansio.addresses import local_or_within
from service.sansio.offload import REPORT_KIND
from service.sansio.plan import TRANSFER_KINDS
from service.web.errors import text_response

KINDS = frozenset(
    {*TRANSFER_KINDS, "not_modified", "precondition_failed", "range_not_satisfiable"}
    | {"listing", "other"}
)
#: The kind of a scrape of /metrics itself: not counted.
SCRAPE = "metrics"
#: Seconds, from a cached range request to an hour-long download.
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip

bp = Blueprint("metrics", __name__)


class Metrics:
    """The service's metrics for one process, and what a scrape reads."""

    def __init__(
        self,
        allow: tuple[Network, ...],
        folder: str | None,
        digest_queue_length: Callable[[], int] | None = None,
        io_busy: Callable[[], int] | None = None,
    ) -> None:
        if folder and not getattr(values.ValueClass, "_multiprocess", False):
            raise RuntimeError(f"{ENV} was set after prometheus_client had been imported")
        self.allow = allow
        self.digest_queue_length = digest_queue_length
        self.io_busy = io_busy
        self._gauges: dict[int, float] = {}  # id(gauge) -> the value this process last set
        own = CollectorRegistry()
        self.requests = Counter(
            "download_requests", "Requests answered, by status code and kind of answer",
            ["code", "kind"], registry=own,
        )  # fmt: skip
        self.sent = Counter(
            "download_sent_bytes", "Body bytes delivered to clients, by kind of answer",
            ["kind"], registry=own,
        )  # fmt: skip
        self.in_flight = Gauge(
            "download_transfers_in_flight", "Transfers being sent now",
            registry=own, multiprocess_mode="livesum",
        )  # fmt: skip
        self.aborted = Counter(
            "download_transfers_aborted", "Transfers the client left (or stalled) before the end",
            registry=own,
        )  # fmt: skip
        self.truncated = Counter(
            "download_transfers_truncated", "Transfers cut because the file shrank under them",
            registry=own,
        )  # fmt: skip
        self.duration = Histogram(
            "download_transfer_duration_seconds", "Time from request to the transfer's end",
            ["kind"], buckets=DURATION_BUCKETS, registry=own,
        )  # fmt: skip
        self.digest_queue = Gauge(
            "download_digest_queue_length", "Files waiting for their digest, all workers",
            registry=own, multiprocess_mode="livesum",
        )  # fmt: skip
        self.storage_errors = Counter(
            "download_storage_errors", "Requests cut or refused by a storage error, by errno",
            ["errno"], registry=own,
        )  # fmt: skip
        self.io_threads_busy = Gauge(
            "download_io_threads_busy", "I/O threads running a storage call, all workers",
            registry=own, multiprocess_mode="livesum",
        )  # fmt: skip
        self.exposed = own
        if folder:  # every process's values, read from the folder at each scrape
            self.exposed = CollectorRegistry()
            MultiProcessCollector(self.exposed, folder)  # type: ignore[no-untyped-call]

    def refresh_gauges(self) -> None:
        """This worker's share of the gauges it reports itself (queue, busy threads)."""
        if self.digest_queue_length is not None:
            self.set_gauge(self.digest_queue, self.digest_queue_length())
        if self.io_busy is not None:
            self.set_gauge(self.io_threads_busy, self.io_busy())

    def set_gauge(self, gauge: Gauge, value: float) -> None:
        """``gauge.set(value)`` unless this process last set it to ``value``: its value
        is this process's own (a file of its own under gunicorn), so an unchanged one
        needs no write (a lock and a ``getpid`` in prometheus_client, per publication)."""
        if self._gauges.get(id(gauge)) != value:
            gauge.set(value)
            self._gauges[id(gauge)] = value

    def allows(self, peer: str | None) -> bool:
        """Whether ``peer`` (REMOTE_ADDR) may scrape; a unix-socket peer counts as local."""
        return local_or_within(peer or "", self.allow)


class Recorder:
    """The access log's observer: each request's record is added to plain in-process
    tallies, and those are published to the metric values (under gunicorn: the
    worker's file in the shared folder) in one batch: under gevent from a callback the
    loop runs before it next waits, so the requests that end in one turn of the loop
    cost one write per series they touched, and a lone request is published at once;
    elsewhere at each record. A scrape publishes its own worker's tallies first.
    """

    def __init__(self, metrics: Metrics, later: Later | None = None) -> None:
        self.metrics = metrics
        self._later = later
        self._scheduled = False
        self._requests: dict[tuple[int, str], Counter] = {}
        # Made up front: these series exist (at 0) from the start.
        self._sent = {kind: metrics.sent.labels(kind) for kind in KINDS}
        self._duration = {kind: metrics.duration.labels(kind) for kind in TRANSFER_KINDS}
        self._in_flight = 0  # this process's transfers being sent now
        self._tally = _Tally()

    def started(self, transfer: Transfer) -> None:
        if _is_transfer(transfer):
            self._in_flight += 1
            self._publish_soon()

    def finished(self, transfer: Transfer) -> None:
        kind = transfer.kind or "other"  # None: the app raised before answering
        if kind == SCRAPE:
            return
        tally = self._tally
        if kind == REPORT_KIND:
            if transfer.report is not None:
                report = transfer.report
                tally.add_sent(report.kind, report.bytes)
                tally.durations.append((report.kind, report.seconds))
                tally.aborted += not report.complete
                self._publish_soon()
            return
        if kind not in KINDS:
            kind = "other"
        key = (transfer.status or 500, kind)
        tally.requests[key] = tally.requests.get(key, 0) + 1
        if transfer.bytes:
            tally.add_sent(kind, transfer.bytes)
        if _is_transfer(transfer):
            self._in_flight -= 1
            tally.durations.append((kind, time.monotonic() - transfer.started))
            tally.aborted += transfer.outcome == "aborted"
            tally.truncated += transfer.outcome == "truncated"
        if transfer.storage_errno is not None:
            errors = tally.storage_errors
            errors[transfer.storage_errno] = errors.get(transfer.storage_errno, 0) + 1
        self._publish_soon()

    def _publish_soon(self) -> None:
        if self._later is None:
            self.publish()
        elif not self._scheduled:
            self._scheduled = True
            self._later(self.publish)

    def publish(self) -> None:
        """Add the tallies since the last publication to the metric values."""
        self._scheduled = False
        tally, self._tally = self._tally, _Tally()
        metrics = self.metrics
        for key, count in tally.requests.items():
            counter = self._requests.get(key)
            if counter is None:
                counter = self._requests[key] = metrics.requests.labels(*key)
            counter.inc(count)
        for kind, count in tally.sent.items():
            self._sent[kind].inc(count)
        for kind, seconds in tally.durations:
            self._duration[kind].observe(seconds)
        if tally.aborted:
            metrics.aborted.inc(tally.aborted)
        if tally.truncated:
            metrics.truncated.inc(tally.truncated)
        for name, count in tally.storage_errors.items():
            metrics.storage_errors.labels(name).inc(count)
        metrics.set_gauge(metrics.in_flight, self._in_flight)
        metrics.refresh_gauges()


class _Tally:
    """What requests added since the last publication."""

    __slots__ = ("aborted", "durations", "requests", "sent", "storage_errors", "truncated")

    def __init__(self) -> None:
        self.requests: dict[tuple[int, str], int] = {}
        self.sent: dict[str, int] = {}
        self.durations: list[tuple[str, float]] = []
        self.aborted = 0
        self.truncated = 0
        self.storage_errors: dict[str, int] = {}

    def add_sent(self, kind: str, count: int) -> None:
        self.sent[kind] = self.sent.get(kind, 0) + count


def _is_transfer(transfer: Transfer) -> bool:
    """A body the service itself sends (not a HEAD, not one nginx sends)."""
    return (
        transfer.kind in TRANSFER_KINDS
        and transfer.environ["REQUEST_METHOD"] != "HEAD"
        and transfer.outcome != "offloaded"
    )


@bp.get("/metrics")
def scrape() -> Response:
    request.environ[KIND_KEY] = SCRAPE
    metrics: Metrics = current_app.extensions["metrics"]
    if not metrics.allows(request.remote_addr):
        return text_response(403, "Forbidden")
    current_app.extensions["metrics_recorder"].publish()  # this worker's latest too
    response = Response(generate_latest(metrics.exposed), content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


#: Seconds between refreshes of the worker's own gauges from a greenlet.
GAUGE_REFRESH = 1.0


def _refresh_gauges_forever(metrics: Metrics) -> None:
    """Under gevent (a gunicorn worker), refresh the gauges once a second meanwhile."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        return
    import gevent

    def refresh() -> None:
        while True:
            metrics.refresh_gauges()
            gevent.sleep(GAUGE_REFRESH)

    gevent.spawn(refresh)


def install(
    app: Flask,
    settings: Settings,
    digest_queue_length: Callable[[], int] | None = None,
    io_busy: Callable[[], int] | None = None,
) -> Recorder:
    """Serve ``/metrics`` on ``app``; returns the observer to hand to the access log."""
    metrics = Metrics(settings.metrics_allow, os.environ.get(ENV), digest_queue_length, io_busy)
    app.extensions["metrics"] = metrics
    recorder = app.extensions["metrics_recorder"] = Recorder(metrics, loop_callback())
    app.register_blueprint(bp)
    _refresh_gauges_forever(metrics)
    return recorder
