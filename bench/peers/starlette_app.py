"""Starlette ``FileResponse`` (with its Range support) under uvicorn.

``uvicorn bench.peers.starlette_app:app`` with ``DL_DATA_ROOT`` set.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

ROOT = Path(os.environ["DL_DATA_ROOT"]).resolve()


async def files(request: Request) -> Response:
    path = (ROOT / request.path_params["name"]).resolve()
    if not path.is_relative_to(ROOT) or not path.is_file():
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(path)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/files/{name:path}", files), Route("/healthz", healthz)])
