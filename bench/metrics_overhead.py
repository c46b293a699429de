"""What the metrics add to one request, measured in-process (no server, no sockets).

``.venv/bin/python -m bench.metrics_overhead``: a 64 KiB range request through the WSGI
app with metrics off and on (multiprocess files in a temporary folder, as under
gunicorn), with and without the access log (to a null handler), in interleaved rounds
so that a busy machine slows every setup alike; then the metrics' own work alone.
"""

from __future__ import annotations

import io
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REQUESTS = 5_000
ROUNDS = 15
SETUPS = {
    "no access log, metrics off": {"access_log": False, "metrics": False},
    "no access log, metrics on": {"access_log": False, "metrics": True},
    "access log, metrics off": {"access_log": True, "metrics": False},
    "access log, metrics on": {"access_log": True, "metrics": True},
}
ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/files/data.bin",
    "QUERY_STRING": "",
    "SERVER_NAME": "bench",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "HTTP_RANGE": "bytes=65536-131071",
    "wsgi.url_scheme": "http",
}


def _start_response(status: str, headers: object, exc_info: object = None) -> None:
    assert status.startswith("206"), status


def _round(app: Callable[..., Any]) -> float:
    """µs per request over REQUESTS requests."""
    began = time.perf_counter()
    for _ in range(REQUESTS):
        environ = {**ENVIRON, "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO()}
        body = app(environ, _start_response)
        for _chunk in body:
            pass
        body.close()
    return (time.perf_counter() - began) / REQUESTS * 1e6


def _recorder_alone(data: Path) -> float:
    """µs for the metrics' part of one request: started + finished on a record."""
    from config import Settings
    from service import create_app
    from service.observability import metrics
    from service.observability.accesslog import Transfer

    recorder = metrics.install(create_app(Settings(data_root=data, metrics=False)), Settings())
    transfer = Transfer(dict(ENVIRON))
    transfer.kind, transfer.status, transfer.bytes = "range", 206, 65536
    count = 100_000
    began = time.perf_counter()
    for _ in range(count):
        recorder.started(transfer)
        recorder.finished(transfer)
    return (time.perf_counter() - began) / count * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as data, tempfile.TemporaryDirectory() as folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder  # before prometheus_client loads
        from config import Settings
        from service import create_app
        from service.observability.accesslog import LOGGER

        logging.getLogger(LOGGER).addHandler(logging.NullHandler())
        logging.getLogger(LOGGER).propagate = False
        Path(data, "data.bin").write_bytes(os.urandom(1024 * 1024))
        apps = {
            name: create_app(Settings(data_root=Path(data), **flags))
            for name, flags in SETUPS.items()
        }
        times: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(ROUNDS):
            for name, app in apps.items():
                times[name].append(_round(app))
        for name, rounds in times.items():
            print(
                f"{name:28} min {min(rounds):6.1f}  median {statistics.median(rounds):6.1f}"
                " µs/request"
            )
        print(f"{'metrics work alone':28} {_recorder_alone(Path(data)):6.2f} µs/request")


if __name__ == "__main__":
    main()
