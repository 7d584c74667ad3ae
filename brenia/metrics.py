"""Brenia's Prometheus series, the helpers that record them, and ``/metrics``.

Every series is defined here, so a dashboard or an alert has one place to look. Call
sites elsewhere are one line: a middleware times HTTP requests, a job-finished hook
counts job ends (``generation.jobs.metrics``), the runner counts provider errors and
jobs in flight, consumers count open WebSockets, the webhook sender counts attempts.

Scale-out runs daphne and procrastinate workers as separate processes, and a scrape
reaches one of them. So every process writes its values to files of its own in
``BRENIA_METRICS_DIR`` (prometheus_client's multiprocess mode, switched on by
``PROMETHEUS_MULTIPROC_DIR``, which settings sets) and ``/metrics`` adds up the files of
all of them. Counters of a dead process keep counting until the next ``serve`` or
worker start removes them; gauges ("livesum") of a dead process stop counting at once:
a worker removes its own when it exits, and each scrape drops those of pids that are
gone (a process killed with SIGKILL says nothing).

Labels stay few: a route is the URL pattern (``/api/jobs/<job_id>``), never the path.
"""

from __future__ import annotations

import hmac
import os
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

if not getattr(values.ValueClass, "_multiprocess", False):
    # Then this process's values would live in its memory only, and no scrape of
    # another process would ever show them.
    raise ImproperlyConfigured(
        "prometheus_client was imported before brenia.settings set PROMETHEUS_MULTIPROC_DIR")

# The arm a job ran on. One for now; canaries (a later routing change) add others.
MAIN_ARM = "main"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "brenia_http_requests", "HTTP requests answered, by URL pattern, method and status.",
    ["route", "method", "status"])
HTTP_DURATION = Histogram(
    "brenia_http_request_duration_seconds",
    "Seconds from a request reaching Django to its response, by URL pattern and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
JOBS_FINISHED = Counter(
    "brenia_jobs_finished",
    "Jobs that reached a terminal status (completed, failed, errored, cancelled).",
    ["model", "provider", "arm", "status"])
JOB_QUEUE_WAIT = Histogram(
    "brenia_job_queue_wait_seconds",
    "Seconds from a job's creation to its start at the provider, by model.", ["model"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))
JOB_RUN_TIME = Histogram(
    "brenia_job_run_seconds",
    "Seconds from a job's start at the provider to its end, by model.", ["model"],
    buckets=(0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 900))
JOB_COST = Counter(
    "brenia_job_cost_usd", "US dollars charged for finished jobs, by model.", ["model"])
JOBS_IN_FLIGHT = Gauge(
    "brenia_jobs_in_flight", "Jobs a runner is driving right now, over all processes.",
    multiprocess_mode="livesum")
BACKGROUND_WAITING = Gauge(
    "brenia_background_tasks_waiting",
    "Background tasks waiting for a free in-process slot (embedded profile), over all "
    "processes.", multiprocess_mode="livesum")
PROVIDER_ERRORS = Counter(
    "brenia_provider_errors",
    "Failed provider attempts by error class: transient, permanent, malformed, timeout, "
    "internal.", ["provider", "error_class"])
BREAKER_STATE = Gauge(
    "brenia_provider_breaker_state",
    "Each provider endpoint's circuit breaker as last seen by any process: 0 closed, "
    "1 half-open (one probe let through), 2 open.", ["endpoint"],
    multiprocess_mode="mostrecent")
CACHE_REQUESTS = Counter(
    "brenia_cache_requests", "Result cache look-ups, by result: hit or miss.", ["result"])
REFERENCE_CACHE = Counter(
    "brenia_reference_cache_requests", "Reference-image cache look-ups (per process), by "
    "kind (normalised upload, fetched URL) and result.", ["kind", "result"])
WEBSOCKETS = Gauge(
    "brenia_websocket_connections", "Open WebSocket connections, over all processes.",
    multiprocess_mode="livesum")
WEBHOOK_ATTEMPTS = Counter(
    "brenia_webhook_attempts",
    "Outgoing webhook attempts by outcome: delivered, retry (failed; another is due), "
    "failed (given up).", ["outcome"])

# Series that exist before their first event, so ratios and alerts see a 0, not nothing.
for _result in ("hit", "miss"):
    CACHE_REQUESTS.labels(result=_result)
for _outcome in ("delivered", "retry", "failed"):
    WEBHOOK_ATTEMPTS.labels(outcome=_outcome)


# --- helpers the call sites use ----------------------------------------------------------

def job_finished(*, model: str, provider: str, status: str, created_at: datetime,
                 started_at: datetime | None, finished_at: datetime | None,
                 cost: Decimal | None, currency: str, arm: str = MAIN_ARM) -> None:
    """Count one job's end; its waits and run time when it ever started."""
    JOBS_FINISHED.labels(model=model, provider=provider, arm=arm, status=status).inc()
    if started_at is not None:
        JOB_QUEUE_WAIT.labels(model=model).observe(
            max(0.0, (started_at - created_at).total_seconds()))
        if finished_at is not None:
            JOB_RUN_TIME.labels(model=model).observe(
                max(0.0, (finished_at - started_at).total_seconds()))
    if cost and currency == "USD":
        JOB_COST.labels(model=model).inc(float(cost))


def provider_error(*, provider: str, error_class: str) -> None:
    PROVIDER_ERRORS.labels(provider=provider, error_class=error_class).inc()


BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


def breaker_state(*, endpoint: str, state: str) -> None:
    """Record a breaker's state; its state is shared, so the newest report wins."""
    BREAKER_STATE.labels(endpoint=endpoint).set(BREAKER_STATES[state])


def cache_lookup(*, hit: bool) -> None:
    """Count one result-cache look-up (the cache itself comes with routing)."""
    CACHE_REQUESTS.labels(result="hit" if hit else "miss").inc()


def reference_cache_lookup(*, kind: str, hit: bool) -> None:
    REFERENCE_CACHE.labels(kind=kind, result="hit" if hit else "miss").inc()


def webhook_attempt(*, outcome: str) -> None:
    WEBHOOK_ATTEMPTS.labels(outcome=outcome).inc()


class CountedConnection(AsyncWebsocketConsumer):
    """A consumer base that counts its socket in ``brenia_websocket_connections`` from
    accept to disconnect (put it first among a consumer's bases)."""

    counted = False

    async def accept(self, subprotocol: str | None = None,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
        await super().accept(subprotocol, headers)
        if not self.counted:
            self.counted = True
            WEBSOCKETS.inc()

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self.counted:
            self.counted = False
            WEBSOCKETS.dec()
        await super().websocket_disconnect(message)


# --- HTTP ----------------------------------------------------------------------------------

def route_of(request: HttpRequest) -> str:
    """The URL pattern that answered, ``static`` or ``unmatched``: never the raw path,
    which would make a series per job id (or per scanner's guess)."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return "/" + match.route
    if request.path.startswith(settings.STATIC_URL):
        return "static"
    return "unmatched"


def observe_request(request: HttpRequest, response: HttpResponse, started: float) -> None:
    route = route_of(request)
    method = request.method if request.method in METHODS else "other"
    HTTP_REQUESTS.labels(route=route, method=method, status=str(response.status_code)).inc()
    HTTP_DURATION.labels(route=route, method=method).observe(time.perf_counter() - started)


class MetricsMiddleware:
    """Counts and times every request Django answers; works sync and async."""

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
        started = time.perf_counter()
        response: HttpResponse = self.get_response(request)
        observe_request(request, response, started)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        get_response: Callable[[HttpRequest], Awaitable[HttpResponse]] = self.get_response
        response = await get_response(request)
        observe_request(request, response, started)
        return response


# --- processes -----------------------------------------------------------------------------

_PROCESS_FILE = re.compile(r"^(?P<kind>[a-z_]+)_(?P<pid>\d+)\.db$")
_LIVE_GAUGES = ("gauge_livesum", "gauge_liveall", "gauge_livemax", "gauge_livemin",
                "gauge_livemostrecent")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _process_files() -> list[tuple[Path, str, int]]:
    found = []
    for path in Path(settings.BRENIA_METRICS_DIR).glob("*.db"):
        match = _PROCESS_FILE.match(path.name)
        if match:
            found.append((path, match["kind"], int(match["pid"])))
    return found


def process_exited(pid: int) -> None:
    """Drop the gauges of a process that ended; its counters keep counting."""
    multiprocess.mark_process_dead(pid, str(settings.BRENIA_METRICS_DIR))


def forget_dead_processes() -> None:
    """Remove every file of processes that are gone (at ``serve`` and worker start).

    Their counters drop out of the sums: Prometheus reads that as a counter reset,
    as it would after a restart. Files of running processes are left alone, so a
    worker started before ``serve`` keeps its series."""
    for path, _kind, pid in _process_files():
        if not _alive(pid):
            path.unlink(missing_ok=True)


RENDER_ATTEMPTS = 5


def render() -> bytes:
    """Every process's series, added up, in the Prometheus text format."""
    for _path, kind, pid in _process_files():
        if kind in _LIVE_GAUGES and not _alive(pid):
            process_exited(pid)  # killed without a word (SIGKILL, OOM)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(settings.BRENIA_METRICS_DIR))
    for _attempt in range(RENDER_ATTEMPTS - 1):
        try:
            return generate_latest(registry)
        except FileNotFoundError:
            # A starting worker forgot a dead process between the collector listing the
            # files and reading them: list again.
            continue
    return generate_latest(registry)


def _token_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


@require_GET
@sensitive_variables("token")
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``/metrics`` for a scraper holding ``BRENIA_METRICS_TOKEN``; off without one."""
    token = settings.BRENIA_METRICS_TOKEN
    if not token:
        return HttpResponse("Not found.\n", status=404, content_type="text/plain")
    if not _token_matches(request, token):
        response = HttpResponse("A bearer token is required.\n", status=401,
                                content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
