"""The application factory: settings, catalog, blueprints and error handlers."""

from __future__ import annotations

from flask import Flask

from config import Settings
from service import accesslog
from service.catalog import Catalog
from service.errors import register_error_handlers
from service.flaskapp import DownloadFlask
from service.links import make_signer


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app; without ``settings`` they are read from ``DL_*`` variables."""
    from service import health, views

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
    app.register_blueprint(views.bp)
    app.register_blueprint(health.bp)
    register_error_handlers(app)
    if settings.access_log:
        accesslog.install(app)
    return app
