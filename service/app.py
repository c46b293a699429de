"""The application factory: settings, catalog, blueprints and error handlers."""

from __future__ import annotations

from flask import Flask

from config import Settings
from service import accesslog, digests
from service.catalog import Catalog
from service.errors import register_error_handlers
from service.flaskapp import DownloadFlask
from service.links import make_signer


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app; without ``settings`` they are read from ``DL_*`` variables."""
    from service import health, offload, views

    settings = Settings.from_env() if settings is None else settings.validated()
    app = DownloadFlask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.merge_slashes = False
    app.extensions["settings"] = settings
    app.extensions["catalog"] = Catalog(
        settings.data_root,
        serve_hidden=settings.serve_hidden,
        allow_outside_symlinks=settings.allow_outside_symlinks,
    )
    app.extensions["signer"] = make_signer(settings.signing_key)
    # Opened in each worker (gunicorn does not preload the app), never in the master.
    app.extensions["digests"] = digests.open_store(settings, app.extensions["catalog"])
    app.register_blueprint(views.bp)
    app.register_blueprint(health.bp)
    register_error_handlers(app)
    if settings.offload != "off":
        offload.install(app, settings)
    _install_middleware(app, settings)
    return app


def _install_middleware(app: Flask, settings: Settings) -> None:
    """The access log with the metrics as its observer, and outermost the client address
    from a trusted proxy, so both see the real client."""
    from service import forwarded

    observers: list[accesslog.Observer] = []
    if settings.metrics:
        from service import metrics  # loads prometheus_client: only when metrics are on

        store = app.extensions["digests"]
        queue_length = store.queue_length if store is not None else None
        observers.append(metrics.install(app, settings, queue_length))
    if settings.access_log or observers:
        accesslog.install(app, log=settings.access_log, observers=observers)
    if settings.offload != "off" or settings.behind_proxy:
        forwarded.install(app, settings)
