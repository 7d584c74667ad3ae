"""Queue API routes: submit, status (+ SSE stream), result, cancel (spec §1)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from . import models
from .config import FalEmulatorConfig
from .control import add_control_routes
from .faults import HARD_FAULTS, INGRESS_FAULTS, PROMPT_TOKEN, Fault
from .records import COMPLETED, IN_PROGRESS, IN_QUEUE, QueuedRequest, dumps
from .state import FAL_STATE, FalEmulatorState, fingerprint

NAMESPACES = ("workflows", "comfy")
REQUEST_ACTIONS = {"": "result", "response": "result", "status": "status",
                   "status/stream": "stream", "cancel": "cancel"}
NOT_FOUND = {"status": "NOT_FOUND"}
_HARD_ERRORS = {"500": ("Internal server error", "internal_error"),
                "502": ("Runner returned an incomplete response", "runner_incomplete_response"),
                "503": ("Runner connection error", "runner_connection_error"),
                "504": ("Runner startup timed out", "startup_timeout")}
_NGINX = ("<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>"
          "{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


def fal_json(body: Any, *, status: int = 200, request_id: str | None = None,
             headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON answer carrying ``x-fal-request-id`` (a fresh id when none applies)."""
    return web.Response(body=dumps(body), status=status, content_type="application/json",
                        headers={"x-fal-request-id": request_id or str(uuid.uuid4()),
                                 **(headers or {})})


def authenticate(request: web.Request, config: FalEmulatorConfig) -> str | None:
    """The caller's user id, or None for a missing, malformed or refused key."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    credential = credential.strip()
    if scheme.lower() == "key":
        key_id, sep, secret = credential.partition(":")
        if not (key_id and sep and secret):
            return None
        user = key_id
    elif scheme.lower() == "bearer" and credential:
        user = "bearer-" + hashlib.sha256(credential.encode()).hexdigest()[:12]
    else:
        return None
    if "invalid" in credential.lower():
        return None
    if config.api_keys is not None and credential not in config.api_keys:
        return None
    return user


def unauthorized() -> web.Response:
    return fal_json({"detail": "No user found for Key ID and Secret"}, status=401)


def bad_request(detail: str) -> web.Response:
    return fal_json({"detail": detail, "error_type": "bad_request"}, status=400,
                    headers={"X-Fal-Error-Type": "bad_request"})


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Every queue route: ``/{[ns/]owner/alias}[/{path}][/requests/{id}[/{action}]]``."""
    state = request.app[FAL_STATE]
    segments = [s for s in request.match_info["tail"].split("/") if s]
    app_len = 3 if segments and segments[0] in NAMESPACES else 2
    user = authenticate(request, state.config)
    if user is None:
        return unauthorized()
    if "requests" in segments[app_len:]:
        at = segments.index("requests", app_len)
        action = REQUEST_ACTIONS.get("/".join(segments[at + 2:]))
        if at + 1 >= len(segments) or action is None:
            return fal_json({"detail": "Not Found"}, status=404)
        return await request_route(request, state, user, "/".join(segments[:at]),
                                   segments[at + 1], action)
    if len(segments) < app_len:
        return fal_json({"detail": "Not Found"}, status=404)
    if request.method != "POST":
        return fal_json({"detail": "Method Not Allowed"}, status=405)
    return await submit(request, state, user, "/".join(segments), "/".join(segments[:app_len]))


async def submit(request: web.Request, state: FalEmulatorState, user: str, endpoint: str,
                 app: str) -> web.Response:
    if endpoint not in models.MODELS:
        what = "Application" if app not in models.APPS else "Endpoint"
        name = app if app not in models.APPS else endpoint
        return fal_json({"detail": f"{what} '{name}' not found"}, status=404)
    state.count_attempt(endpoint)
    raw = await request.read()
    body: Any = None
    body_error: str | None = None
    try:
        body = json.loads(raw) if raw else {}
    except ValueError as exc:
        body_error = str(exc)
    priority = request.headers.get("X-Fal-Queue-Priority", "normal").strip().lower()
    if priority not in ("normal", "low"):
        return bad_request("X-Fal-Queue-Priority must be 'normal' or 'low'")
    deadline: float | None = None
    if "X-Fal-Request-Timeout" in request.headers:
        try:
            seconds = float(request.headers["X-Fal-Request-Timeout"])
        except ValueError:
            seconds = 0.0
        if not seconds > 0.1:
            return bad_request("X-Fal-Request-Timeout must be a number of seconds above 0.1")
        deadline = time.monotonic() + seconds
    max_queue: int | None = None
    if "fal_max_queue_length" in request.query:
        try:
            max_queue = int(request.query["fal_max_queue_length"])
        except ValueError:
            return bad_request("fal_max_queue_length must be an integer")
    prompt = body.get("prompt") if isinstance(body, dict) else None
    fault = state.faults.draw(endpoint, prompt if isinstance(prompt, str) else None)
    early = await submit_fault(state, fault)
    if early is not None:
        return early
    request_id = str(uuid.uuid4())
    queue = state.engine.queue_for(app)
    if max_queue is not None and queue.waiting() >= max_queue:
        return fal_json({"detail": f"Queue is full: {queue.waiting()} requests already wait "
                                   f"(fal_max_queue_length={max_queue})"},
                        status=429, request_id=request_id)
    record = QueuedRequest(
        id=request_id, endpoint=endpoint, app=app, user_id=user, base_url=base_url(request),
        body=body, body_error=body_error, priority=priority,
        hint=request.headers.get("X-Fal-Runner-Hint"),
        webhook_url=request.query.get("fal_webhook") or None, deadline=deadline, fault=fault,
        cache_keys=models.cache_keys(endpoint, body),
        fingerprint=fingerprint(endpoint, body, raw))
    state.accept(record)
    return fal_json({"request_id": request_id, "gateway_request_id": request_id,
                     "response_url": record.url(), "status_url": record.url("/status"),
                     "cancel_url": record.url("/cancel"),
                     "queue_position": queue.position(record)}, request_id=request_id)


async def submit_fault(state: FalEmulatorState, fault: Fault) -> web.Response | None:
    """The answer to a submit that fails before queueing, or None to carry on."""
    kind = fault.kind
    if kind == "429":
        return fal_json({"detail": "Too many concurrent requests",
                         "error_type": "concurrent_requests_limit"}, status=429,
                        headers={"X-Fal-Needs-Retry": "1",
                                 "X-Fal-Error-Type": "concurrent_requests_limit"})
    if kind in INGRESS_FAULTS:
        code = int(kind[:3])
        reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable",
                  504: "Gateway Time-out"}[code]
        return web.Response(text=_NGINX.format(code=code, reason=reason), status=code,
                            content_type="text/html")
    if kind in HARD_FAULTS:
        detail, error_type = _HARD_ERRORS[kind]
        return fal_json({"detail": detail, "error_type": error_type}, status=int(kind),
                        headers={"X-Fal-Error-Type": error_type})
    if kind == "slow_submit":
        await state.sleep(fault.slow_s)
    elif kind == "hang_submit":
        await state.sleep(fault.hang_s)
    return None


def status_body(request: QueuedRequest, state: FalEmulatorState, *, with_logs: bool,
                logs_from: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"status": request.status, "request_id": request.id,
                            "response_url": request.url(), "status_url": request.url("/status"),
                            "cancel_url": request.url("/cancel")}
    if request.status == IN_QUEUE:
        body["queue_position"] = state.engine.position(request)
        return body
    body["logs"] = request.logs[logs_from:] if with_logs else None
    if request.status == COMPLETED:
        body["metrics"] = dict(request.metrics)
        outcome = request.outcome
        if outcome is not None and not outcome.ok:
            body["error"] = outcome.error
            body["error_type"] = outcome.error_type
    return body


async def request_route(request: web.Request, state: FalEmulatorState, user: str, prefix: str,
                        request_id: str, action: str) -> web.StreamResponse:
    record = state.requests.get(request_id)
    if (record is None or record.user_id != user
            or not (record.endpoint + "/").startswith(prefix + "/")
            or not (prefix + "/").startswith(record.app + "/")):
        return fal_json(NOT_FOUND, status=404, request_id=request_id)
    wanted = "PUT" if action == "cancel" else "GET"
    if request.method != wanted and not (wanted == "GET" and request.method == "HEAD"):
        return fal_json({"detail": "Method Not Allowed"}, status=405, request_id=request_id)
    with_logs = request.query.get("logs", "0").strip().lower() in ("1", "true")
    if action == "status":
        record.status_polls += 1
        record.log_polls += with_logs
        return fal_json(status_body(record, state, with_logs=with_logs),
                        status=200 if record.status == COMPLETED else 202, request_id=record.id)
    if action == "stream":
        record.stream_opens += 1
        if record.fault.kind == "stream_unavailable":
            return web.Response(text=_NGINX.format(code=503,
                                                   reason="Service Temporarily Unavailable"),
                                status=503, content_type="text/html")
        return await stream_status(request, state, record, with_logs=with_logs)
    if action == "cancel":
        if state.engine.cancel(record):
            return fal_json({"status": "CANCELLATION_REQUESTED"}, status=202,
                            request_id=record.id)
        return fal_json({"status": "ALREADY_COMPLETED"}, status=400, request_id=record.id)
    return await result(state, record)


async def result(state: FalEmulatorState, record: QueuedRequest) -> web.Response:
    outcome = record.outcome
    if record.status != COMPLETED or outcome is None:
        return fal_json({"detail": "Request is still in progress"}, status=400,
                        request_id=record.id)
    record.result_fetches += 1
    if record.fault.kind == "slow_result":
        await state.sleep(record.fault.slow_s)
    elif record.fault.kind == "hang_result":
        await state.sleep(record.fault.hang_s)
    headers = {"x-fal-request-id": record.id, **outcome.headers}
    hints = [h for h in state.runner_hints(record) if h.isascii()]
    if outcome.ok and hints:
        headers["X-Fal-Runner-Hints"] = ",".join(hints)
    return web.Response(body=outcome.body, status=outcome.status,
                        content_type=outcome.content_type, headers=headers)


async def stream_status(request: web.Request, state: FalEmulatorState, record: QueuedRequest,
                        *, with_logs: bool) -> web.StreamResponse:
    """SSE: one ``data:`` event per change (logs as deltas), ``: ping`` keep-alives.

    Fault ``stream_drop``: the stream ends after its first event, and never sends the
    COMPLETED one (it ends instead): only a poll sees the request complete.
    """
    drop = record.fault.kind == "stream_drop"
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache",
                                           "x-fal-request-id": record.id})
    await response.prepare(request)
    sent_logs = 0
    last: tuple[Any, ...] | None = None
    while not state.closing.is_set() and state.requests.get(record.id) is record:
        position = state.engine.position(record) if record.status == IN_QUEUE else None
        key = (record.status, position, len(record.logs))
        if drop and (last is not None or record.status == COMPLETED):
            break
        if key != last:
            body = status_body(record, state, with_logs=with_logs, logs_from=sent_logs)
            await response.write(b"data: " + dumps(body) + b"\n\n")
            last, sent_logs = key, len(record.logs)
        if record.status == COMPLETED:
            break
        if not await record.wait_changed(state.config.keepalive_s):
            await response.write(b": ping\n\n")
    await response.write_eof()
    return response


async def files(request: web.Request) -> web.Response:
    found = request.app[FAL_STATE].files.get(request.match_info["name"])
    if found is None:
        return web.json_response({"detail": "File not found"}, status=404)
    data, content_type = found
    return web.Response(body=data, content_type=content_type,
                        headers={"Cache-Control": "public, max-age=3600"})


async def jwks(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAL_STATE].signer.jwks())


async def index(request: web.Request) -> web.Response:
    return web.json_response({
        "service": "fal.ai queue API emulator", "models": sorted(models.MODELS),
        "control": ["/_emulator/stats", "/_emulator/requests", "/_emulator/faults",
                    "/_emulator/reset", "/_emulator/runners", "/_emulator/webhooks"],
        "jwks": "/.well-known/jwks.json", "prompt_token": PROMPT_TOKEN.pattern,
        "states": [IN_QUEUE, IN_PROGRESS, COMPLETED]})


def create_app(config: FalEmulatorConfig | None = None) -> web.Application:
    """The emulator as an aiohttp application; its state is ``app[FAL_STATE]``."""
    state = FalEmulatorState(config or FalEmulatorConfig())
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[FAL_STATE] = state

    async def on_startup(_: web.Application) -> None:
        await state.start()

    async def on_shutdown(_: web.Application) -> None:
        await state.shutdown()

    async def on_cleanup(_: web.Application) -> None:
        await state.cleanup()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/", index)
    app.router.add_get("/.well-known/jwks.json", jwks)
    app.router.add_get("/files/{name}", files)
    add_control_routes(app)
    app.router.add_route("*", "/{tail:.+}", dispatch)
    return app
