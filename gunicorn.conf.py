"""gunicorn settings for the download service, all read from DL_* variables.

Start with ``gunicorn -c gunicorn.conf.py``. A bad DL_* value stops the master at
once with a message naming the variable.
"""

from __future__ import annotations

import os
from typing import Any

from config import Settings
from service.delivery import admission, eventloop
from service.observability import metricsdir, serverlog

_settings = Settings.from_env()
# Made here, in the master, so that every forked worker counts in the same table.
admission.share_across_workers()

wsgi_app = "service:create_app()"
bind = [_settings.bind]
workers = _settings.workers
# gevent: thousands of slow downloads per worker. Its heartbeat ticks every second, so
# `timeout` bounds a blocked event loop, not the length of a download.
worker_class = "gevent"
worker_connections = _settings.worker_connections
timeout = _settings.timeout
# Downloads in flight at a reload or stop get this long to finish; clients can resume.
graceful_timeout = _settings.graceful_timeout
keepalive = _settings.keepalive
# gevent patches the worker after the fork; preloading would import the app before.
preload_app = False
# Restarting workers cuts downloads in flight.
max_requests = 0
# The control socket defaults to one path shared by every instance on the host.
control_socket_disable = True
# Request head limits, set on purpose: the longest request line gunicorn allows (a
# percent-encoded path at the service's 4096-byte limit takes up to three times that),
# and gunicorn's own field limits. Over them: 414 or 431 and the connection closed.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# Trust no proxy to rewrite SCRIPT_NAME or PATH_INFO (gunicorn trusts loopback by
# default, and a bad SCRIPT_NAME then turns into a 500).
forwarder_headers = ""
# Worker heartbeats in memory: works with a read-only root filesystem, and never waits
# on a slow disk (gunicorn's own advice for containers).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# The service writes its own access log (JSON, with the bytes sendfile delivered past
# gunicorn, which gunicorn's own log cannot count); see DL_ACCESS_LOG.
accesslog = None
errorlog = "-"
loglevel = _settings.log_level


def post_worker_init(worker: Any) -> None:
    # A client dropped by DL_SEND_TIMEOUT is one INFO line, not an ERROR traceback.
    serverlog.install(worker.log.error_log)


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    # Each connection's next request waits its turn behind the others' (fairness).
    eventloop.let_other_connections_in()


# Metrics (DL_METRICS): one fresh folder per master, where every worker keeps its values.
def on_starting(server: Any) -> None:
    if _settings.metrics:
        metricsdir.prepare(_settings.metrics_dir)


def child_exit(server: Any, worker: Any) -> None:
    # A worker that died without its finally blocks (SIGKILL, OOM, timeout) would
    # otherwise hold its clients' download slots until the master restarts.
    dropped = admission.forget_worker(worker.pid)
    if dropped:
        server.log.warning("worker %s exited holding %d download slots: freed", worker.pid, dropped)
    if _settings.metrics:
        metricsdir.worker_exited(worker.pid)


def on_exit(server: Any) -> None:
    metricsdir.remove_created()
