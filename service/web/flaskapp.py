"""The service's Flask class: Flask with a request context that matches the URL once.

``stream_with_context`` pushes the request's context a second time when the body
starts, and Flask's ``RequestContext.push`` matches the URL on every push. The request
and its URL are the same, so the second match only costs time (about a tenth of the
app's work for a small range).
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.ctx import RequestContext


class _MatchOnce(RequestContext):
    def match_request(self) -> None:
        request = self.request
        if request.url_rule is None and request.routing_exception is None:
            super().match_request()


class DownloadFlask(Flask):
    def request_context(self, environ: dict[str, Any]) -> RequestContext:
        return _MatchOnce(self, environ)
