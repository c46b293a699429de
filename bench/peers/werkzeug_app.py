"""Flask ``send_from_directory`` (Werkzeug ``send_file``): the stock way to serve files.

Run under the service's own gunicorn config (gevent worker):
``gunicorn -c gunicorn.conf.py bench.peers.werkzeug_app:app`` with ``DL_DATA_ROOT`` set.
"""

from __future__ import annotations

import os

from flask import Flask, Response, send_from_directory

ROOT = os.path.abspath(os.environ["DL_DATA_ROOT"])
app = Flask(__name__)


@app.get("/files/<path:name>")
def files(name: str) -> Response:
    return send_from_directory(ROOT, name)  # conditional=True: Range and validators


@app.get("/healthz")
def healthz() -> str:
    return "ok"
