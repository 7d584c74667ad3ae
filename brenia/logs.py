"""Structured logging: a request id on every line, JSON in production.

The request id comes from an incoming ``X-Request-ID`` header (when it looks sane)
or is generated, is echoed back on the response, and travels with the request's
context (contextvars follow ``sync_to_async`` and tasks), so every line logged while
serving it carries the id. Jobs copy it so their lines can be traced back too: the
runner and the webhook deliveries set it again from the job, in whichever process
they run.

Every request ends with one ``brenia.request`` line (method, path, status, time).
daphne's own access log is written outside the request's context, so it cannot carry
the id; this line can. The query string is left out: it may hold a token.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.utils.encoding import escape_uri_path

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

request_logger = logging.getLogger("brenia.request")
# Probes and static files come often and say little: their lines are DEBUG.
QUIET_PREFIXES = ("/healthz", "/readyz", "/metrics", "/static/")


def new_request_id(incoming: str | None = None) -> str:
    if incoming and _SAFE_ID.match(incoming):
        return incoming
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra= fields are kept as top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in payload:
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class RequestIdMiddleware:
    """Sets the request id for the request's context; works sync and async."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[..., Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        # Not reset on the way out: Django logs a failed request's line after the
        # middleware has returned; the next request on this thread sets its own.
        request_id_var.set(new_request_id(request.headers.get("X-Request-ID")))
        started = time.monotonic()
        response: HttpResponse = self.get_response(request)
        response["X-Request-ID"] = request_id_var.get()
        log_request(request, response, started)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        # Under ASGI each request runs in a context of its own.
        request_id_var.set(new_request_id(request.headers.get("X-Request-ID")))
        started = time.monotonic()
        get_response: Callable[[HttpRequest], Awaitable[HttpResponse]] = self.get_response
        response = await get_response(request)
        response["X-Request-ID"] = request_id_var.get()
        log_request(request, response, started)
        return response


def log_request(request: HttpRequest, response: HttpResponse, started: float) -> None:
    """The request's one line: method, path (never the query), status and duration."""
    duration_ms = round((time.monotonic() - started) * 1000)
    # Percent-encoded again, so a path cannot start a forged line in the text format.
    path = escape_uri_path(request.path)[:500]
    level = logging.DEBUG if path.startswith(QUIET_PREFIXES) else logging.INFO
    request_logger.log(level, "%s %s %d %d ms", request.method, path,
                       response.status_code, duration_ms,
                       extra={"method": request.method, "path": path,
                              "status": response.status_code, "duration_ms": duration_ms})
