"""The web process's access log: one structured line per request, with sign-in tokens taken out of the path."""
from __future__ import annotations

import re

import structlog
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

log = structlog.get_logger("opsos.access")

# A one-time sign-in link carries its secret in the path; a log line must never hold one (logs are shipped,
# kept and read by others), even a used one.
_SECRET_PATH = re.compile(r"^(/login/)[^/?#]+")


def redact(path: str) -> str:
    """The path as it may be logged (pure): `/login/<token>` becomes `/login/…`."""
    return _SECRET_PATH.sub(r"\1…", path)


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log through structlog, so it is filtered and rendered like every other line."""

    @property
    def enabled(self) -> bool:
        # aiohttp asks its stdlib `aiohttp.access` logger; these lines go through structlog's own level instead.
        return True

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        log.info("http.request", method=request.method, path=redact(request.path), status=response.status,
                 seconds=round(time, 4))
