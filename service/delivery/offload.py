"""nginx offload (``DL_OFFLOAD=x-accel``): the app decides, nginx sends the bytes.

For a plan nginx can deliver unchanged (:mod:`service.sansio.offload`) the answer is an
empty 200 carrying ``X-Accel-Redirect`` to an ``internal`` location, the header fields
nginx keeps (Content-Type, Content-Disposition, Cache-Control, Accept-Ranges), those the
location copies from ``$upstream_http_*`` (ETag, Last-Modified, X-Content-Type-Options,
X-Request-Id) and the rate limit. nginx computes Content-Length and Content-Range itself.

The download's slot (``DL_MAX_DOWNLOADS_PER_CLIENT``) stays taken after the app has
answered; nginx's ``post_action`` reports the end of the delivery to ``/_offload/done``,
which frees it. The report also says what nginx delivered (the kind the app planned,
which it sends along in ``X-Offload-Kind``, the body bytes, whether the body went out
whole, and the duration), which the access log and the metrics record. Plans nginx would
answer differently are streamed by the app, with ``X-Accel-Buffering: no`` so nginx
passes them on as they come.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from config import Settings
from service.delivery import admission
from service.observability.accesslog import KIND_KEY, TRANSFER_KEY, Transfer
from service.sansio import Plan
from service.sansio.media_types import guess_type
from service.sansio.offload import (
    INTERNAL_PREFIX,
    REPORT_KIND,
    RequestFields,
    accel_target,
    carried_links,
    choose_location,
    parse_report,
)
from service.sansio.plan import CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED
from service.storage.catalog import Catalog, OpenFile
from service.web.errors import status_line, text_response
from service.web.forwarded import PEER_KEY, TrustedProxy

#: nginx has no X-Accel header for limit_rate_after: the location reads this one.
RATE_AFTER_HEADER = "X-Download-Limit-Rate-After"
#: Set by nginx's post_action only; the public location clears it on client requests.
DONE_HEADER = "X-Offload-Done"
#: The planned kind and the admitting worker's pid, for nginx's report: they never reach
#: the client (not headers nginx passes on after X-Accel-Redirect), the report location
#: reads them back, so the report frees the very slot the download took.
KIND_HEADER = "X-Offload-Kind"
WORKER_HEADER = "X-Offload-Worker"
DONE_PATH = INTERNAL_PREFIX + "/done"
_NGINX_COMPUTES = {CONTENT_LENGTH.lower(), CONTENT_RANGE.lower(), CONTENT_TYPE.lower()}

bp = Blueprint("offload", __name__)


def install(app: Flask, settings: Settings) -> None:
    """Accept nginx's end-of-delivery reports (the client address: forwarded.install)."""
    app.register_blueprint(bp)


def accel_response(
    opened: OpenFile, plan: Plan, settings: Settings, transfer: Transfer | None
) -> Response | None:
    """The X-Accel-Redirect answer for ``plan``, or None when the app must stream it;
    ``transfer`` (the access log's record) is marked as offloaded."""
    catalog: Catalog = current_app.extensions["catalog"]
    relative = catalog.relative_path(opened.path) if opened.path else None
    if relative is None:
        return None  # an allowed symlink out of the root: nginx's alias cannot reach it
    headers = dict(plan.headers)
    location = choose_location(
        plan,
        _request_fields(request.environ),
        opened.representation.size,
        headers.get(ETAG, ""),
        headers.get(LAST_MODIFIED, ""),
    )
    if location is None:
        return None
    kept = [(k, v) for k, v in carried_links(plan.headers) if k.lower() not in _NGINX_COMPUTES]
    kept += [
        # The representation's own type: nginx builds multipart/byteranges around it.
        (CONTENT_TYPE, guess_type(opened.representation.name)),
        ("X-Accel-Redirect", accel_target(location, relative)),
        ("X-Accel-Limit-Rate", str(settings.rate_limit)),
        (RATE_AFTER_HEADER, str(settings.rate_limit_after)),
        (KIND_HEADER, plan.kind),
        (WORKER_HEADER, str(os.getpid())),
    ]
    if transfer is not None:
        transfer.offloaded(plan.status)
    return Response(b"", status_line(200), kept)


def streamed(plan: Plan) -> Plan:
    """``plan`` for the app's own stream behind nginx: unbuffered, so the rate limit, the
    send timeout and the download slot see the client, not nginx's buffers."""
    return Plan(plan.status, (*plan.headers, ("X-Accel-Buffering", "no")), plan.body)


def _request_fields(environ: Mapping[str, Any]) -> RequestFields:
    return RequestFields(
        range=environ.get("HTTP_RANGE"),
        if_range=environ.get("HTTP_IF_RANGE"),
        if_match=environ.get("HTTP_IF_MATCH"),
        if_unmodified_since=environ.get("HTTP_IF_UNMODIFIED_SINCE"),
    )


@bp.get(DONE_PATH)
def done() -> Response:
    """nginx's post_action after an offloaded delivery ended (complete or not): free the
    client's download slot and record the delivery. Only from a trusted proxy, and only
    with nginx's marker."""
    proxy: TrustedProxy = current_app.extensions["trusted_proxy"]
    from_nginx = request.headers.get(DONE_HEADER) == "1"
    if not (from_nginx and proxy.trusts(request.environ.get(PEER_KEY, ""))):
        return text_response(404, "Not Found")
    request.environ[KIND_KEY] = REPORT_KIND
    settings: Settings = current_app.extensions["settings"]
    fields = request.headers
    if settings.max_downloads_per_client:
        worker = fields.get(WORKER_HEADER, "")
        admitted_by = int(worker) if worker.isascii() and worker.isdigit() else None
        if admitted_by is not None and admitted_by > 2**32 - 1:
            admitted_by = None  # not a pid
        admission.table().release(str(request.remote_addr or ""), admitted_by)
    report = parse_report(
        fields.get(KIND_HEADER),
        fields.get("X-Offload-Bytes"),
        fields.get("X-Offload-Completion"),
        fields.get("X-Offload-Seconds"),
    )
    transfer: Transfer | None = request.environ.get(TRANSFER_KEY)
    if report is not None and transfer is not None:
        transfer.reports(report)
    return Response(b"", status_line(204))
