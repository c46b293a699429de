"""The application factory: settings, catalog, blueprints and error handlers."""

from __future__ import annotations

from flask import Flask

from config import Settings
from service import digests
from service.observability import accesslog
from service.storage import faults
from service.storage.access import RootProbe, Storage
from service.storage.catalog import Catalog
from service.storage.diskio import DiskIO
from service.storage.iopool import IOPool
from service.storage.mounts import Mounts
from service.web import links
from service.web.errors import register_error_handlers
from service.web.flaskapp import DownloadFlask


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app; without ``settings`` they are read from ``DL_*`` variables."""
    from service.delivery import offload
    from service.web import health, views

    settings = Settings.from_env() if settings is None else settings.validated()
    app = DownloadFlask(__name__, static_folder=None)  # no static files: no /static route
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.merge_slashes = False
    app.extensions["settings"] = settings
    app.extensions["catalog"] = Catalog(
        settings.data_root,
        serve_hidden=settings.serve_hidden,
        allow_outside_symlinks=settings.allow_outside_symlinks,
    )
    app.extensions["signer"] = links.make_signer(settings.signing_key)
    _install_storage(app, settings)
    # Opened in each worker (gunicorn does not preload the app), never in the master.
    app.extensions["digests"] = digests.open_store(settings, app.extensions["catalog"])
    app.register_blueprint(views.bp)
    links.install(app)
    app.register_blueprint(health.bp)
    register_error_handlers(app)
    faults.register(app)
    if settings.offload != "off":
        offload.install(app, settings)
    _install_middleware(app, settings)
    return app


def _install_storage(app: Flask, settings: Settings) -> None:
    """The worker's I/O threads and what reads through them (README "Storage")."""
    threads, per_file = settings.io_thread_limits()
    pool = IOPool(threads, per_file, settings.read_timeout)
    mounts = Mounts()
    catalog = app.extensions["catalog"]
    app.extensions["storage"] = Storage(catalog, pool, mounts)
    app.extensions["disk"] = DiskIO(pool, mounts)
    app.extensions["root_probe"] = RootProbe(catalog.root, pool)


def _install_middleware(app: Flask, settings: Settings) -> None:
    """OPTIONS and CORS, repeated slashes merged, the access log (the target as sent)
    with the metrics as its observer, and outermost the client address from a trusted
    proxy, so both see the real client."""
    from service.web import cors, forwarded, slashes

    cors.install(app, settings.cors_policy())  # innermost: the access log sees its answers
    slashes.install(app)
    observers: list[accesslog.Observer] = []
    if settings.metrics:
        # prometheus_client is loaded only when metrics are on
        from service.observability import metrics

        store = app.extensions["digests"]
        queue_length = store.queue_length if store is not None else None
        io_busy = app.extensions["storage"].pool.in_flight
        observers.append(metrics.install(app, settings, queue_length, io_busy))
    if settings.access_log or observers:
        accesslog.install(app, log=settings.access_log, observers=observers)
    if settings.offload != "off" or settings.behind_proxy:
        forwarded.install(app, settings)
