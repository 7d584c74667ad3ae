"""HTTP routes: the Gemini API surface and the ``/_emulator/`` control routes.

One catch-all route parses the path itself, so any path prefix in front of
``/{v1|v1beta|v1alpha}/models...`` works (spec §2: a base_url prefix is kept).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
import time
from typing import Any

from aiohttp import web

from .catalog import MODELS, find_model
from .errors import (
    RpcError,
    api_key_invalid,
    bad_request,
    internal,
    json_response,
    model_not_found,
    not_found,
    unregistered_caller,
)
from .faults import plan_from_rule_fault, plan_from_words
from .generate import Outcome, build_outcome
from .images import ReferenceImageError
from .request import parse_count_request, parse_generate_request
from .state import GeminiEmulatorConfig, GeminiEmulatorState
from .timing import chunk_gap, metadata_delay, response_delay

logger = logging.getLogger(__name__)
GEMINI_STATE = web.AppKey("gemini_state", GeminiEmulatorState)
MAX_BODY = 100 * 1024 * 1024
API_PATH = re.compile(
    r"^(?P<prefix>/.*?)??/(?:(?P<version>v1|v1beta|v1alpha|v1main)/)?"
    r"(?P<collection>models|tunedModels)(?:/(?P<model>[^/:]+)(?::(?P<method>[A-Za-z]+))?)?/?$"
)
CONTROL_PATH = re.compile(r"(?:^|/)_emulator/(?P<action>stats|faults|reset)/?$")
DEFAULT_PAGE_SIZE = 50
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
               "X-Content-Type-Options": "nosniff", "Vary": "Origin, X-Origin, Referer"}


def create_app(config: GeminiEmulatorConfig | None = None) -> web.Application:
    """A fresh emulator application; its state is ``app[GEMINI_STATE]``."""
    app = web.Application(client_max_size=MAX_BODY)
    app[GEMINI_STATE] = GeminiEmulatorState(config or GeminiEmulatorConfig())
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    return app


async def _dispatch(request: web.Request) -> web.StreamResponse:
    state = request.app[GEMINI_STATE]
    control = CONTROL_PATH.search(request.path)
    if control:
        return await _control(request, state, control.group("action"))
    match = API_PATH.match(request.path)
    if match is None:
        return not_found().response()
    version = match.group("version") or "v1beta"
    model_id = match.group("model")
    method = match.group("method")
    label = (model_id or "").removeprefix("models/") or "models.list"
    started = time.monotonic()
    try:
        _authenticate(request, state.config)
        if match.group("collection") == "tunedModels":
            if request.method == "GET" and model_id is None:
                return json_response({})
            raise not_found(f"tunedModels/{model_id} is not found.")
        if model_id is None:
            if request.method != "GET":
                raise not_found()
            return await _list_models(request, state)
        if method is None:
            if request.method != "GET":
                raise not_found()
            return await _get_model(state, model_id, version)
        if request.method != "POST":
            raise not_found()
        if method == "countTokens":
            return await _count_tokens(request, state, model_id, version)
        if method in ("generateContent", "streamGenerateContent"):
            return await _generate(request, state, model_id, version, method, started)
        raise model_not_found(model_id, version, method)
    except RpcError as error:
        state.record(model=label, method=method or ("get" if model_id else "list"),
                     status=error.code, note=error.message)
        return error.response()
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        # A bug in the emulator must still look like the API: a JSON 500, logged here.
        logger.exception("gemini emulator failed on %s %s", request.method, request.path)
        state.record(model=label, method=method or "?", status=500, note="emulator bug")
        return internal().response()


def _authenticate(request: web.Request, config: GeminiEmulatorConfig) -> None:
    key = request.headers.get("x-goog-api-key") or request.query.get("key") or ""
    if not key.strip():
        raise unregistered_caller()
    if not config.key_is_valid(key.strip()):
        raise api_key_invalid()


async def _read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        pos = getattr(exc, "pos", 0)
        snippet = raw[max(0, pos - 20): pos + 20].decode("utf-8", "replace")
        raise bad_request(f"Invalid JSON payload received. Unexpected token.\n{snippet}\n"
                          f"{' ' * min(pos, 20)}^") from None


# -- models --------------------------------------------------------------------------


async def _list_models(request: web.Request, state: GeminiEmulatorState) -> web.Response:
    try:
        page_size = int(request.query.get("pageSize") or DEFAULT_PAGE_SIZE)
    except ValueError:
        raise bad_request("Invalid value for pageSize.", field="page_size") from None
    if page_size <= 0:
        page_size = DEFAULT_PAGE_SIZE
    page_size = min(page_size, 1000)
    offset = _decode_page_token(request.query.get("pageToken", ""))
    await asyncio.sleep(metadata_delay(state.config.latency, rng=random.Random()))
    page = MODELS[offset: offset + page_size]
    body: dict[str, Any] = {"models": [spec.resource() for spec in page]}
    if offset + page_size < len(MODELS):
        token = f"offset:{offset + page_size}".encode()
        body["nextPageToken"] = base64.urlsafe_b64encode(token).decode().rstrip("=")
    state.record(model="models.list", method="list", status=200)
    return json_response(body)


def _decode_page_token(token: str) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not text.startswith("offset:"):
            raise ValueError(text)
        offset = int(text.removeprefix("offset:"))
        if offset < 0:
            raise ValueError(text)
        return offset
    except ValueError:
        raise bad_request("Invalid page token.", field="page_token") from None


async def _get_model(state: GeminiEmulatorState, model_id: str, version: str) -> web.Response:
    spec = find_model(model_id)
    if spec is None:
        raise model_not_found(model_id.removeprefix("models/"), version, "get")
    await asyncio.sleep(metadata_delay(state.config.latency, rng=random.Random()))
    state.record(model=spec.id, method="get", status=200)
    return json_response(spec.resource())


async def _count_tokens(request: web.Request, state: GeminiEmulatorState, model_id: str,
                        version: str) -> web.Response:
    spec = find_model(model_id)
    if spec is None:
        raise model_not_found(model_id, version, "countTokens")
    body = await _read_json(request)
    if not isinstance(body, dict):
        raise bad_request("Invalid JSON payload received. Expected an object.")
    conv = parse_count_request(body, spec)
    text = conv.text_tokens + conv.other_tokens
    details = [{"modality": m, "tokenCount": n}
               for m, n in (("TEXT", text), ("IMAGE", conv.image_tokens)) if n > 0]
    await asyncio.sleep(metadata_delay(state.config.latency, rng=random.Random()))
    state.record(model=spec.id, method="countTokens", status=200)
    return json_response({"totalTokens": text + conv.image_tokens,
                          "promptTokensDetails": details})


# -- generation ----------------------------------------------------------------------


async def _generate(request: web.Request, state: GeminiEmulatorState, model_id: str,
                    version: str, method: str, started: float) -> web.StreamResponse:
    spec = find_model(model_id)
    if spec is None:
        raise model_not_found(model_id, version, method)
    req = parse_generate_request(await _read_json(request), spec, version)
    plan = plan_from_rule_fault(state.next_rule_fault(model_id.removeprefix("models/"),
                                                      spec.id))
    header = request.headers.get("x-emulator-fault")
    try:
        if header:
            plan = plan.merged(plan_from_words([w for w in header.split(",") if w.strip()]))
        plan = plan.merged(plan_from_words(req.conversation.fault_words))
    except ValueError as exc:
        raise bad_request(f"Unknown emulator fault: {exc}") from None
    rng = random.Random()
    delay = plan.delay_s + response_delay(state.config.latency, req, rng=rng)
    try:
        outcome = await build_outcome(req, plan)
    except ReferenceImageError:
        raise bad_request("Unable to process input image. Please retry or report in "
                          "https://developers.generativeai.google/guide/troubleshooting"
                          ) from None
    except RpcError:
        # Injected errors come back quickly, after any slow= delay.
        await asyncio.sleep(max(0.0, plan.delay_s - (time.monotonic() - started)))
        raise
    await asyncio.sleep(max(0.0, delay - (time.monotonic() - started)))
    output = int(outcome.usage.get("candidatesTokenCount", 0))
    note = _note(outcome)
    if method == "streamGenerateContent":
        response = await _stream(request, state, outcome)
    else:
        response = json_response(outcome.response())
    state.record(model=spec.id, method=method, status=200, images=outcome.image_count,
                 prompt_tokens=req.prompt_tokens, output_tokens=output, note=note)
    return response


def _note(outcome: Outcome) -> str:
    if outcome.prompt_feedback:
        return f"blocked {outcome.prompt_feedback.get('blockReason')}"
    reasons = ",".join(c.finish_reason for c in outcome.candidates)
    return f"finish {reasons}" + (" +stream_error" if outcome.stream_error else "")


async def _stream(request: web.Request, state: GeminiEmulatorState,
                  outcome: Outcome) -> web.StreamResponse:
    chunks = outcome.chunks()
    sse = request.query.get("alt", "").lower() == "sse"
    if not sse:
        # Without alt=sse the API streams one JSON array; the SDK always asks for SSE.
        return json_response(chunks)
    response = web.StreamResponse(status=200, headers=SSE_HEADERS)
    await response.prepare(request)
    rng = random.Random()
    if outcome.stream_error is not None:
        first = chunks[0]
        for cand in first.get("candidates", []):
            cand.pop("finishReason", None)
        await response.write(_event(first))
        await asyncio.sleep(chunk_gap(state.config.latency, rng=rng))
        await response.write(_event(outcome.stream_error.body()))
    else:
        for i, chunk in enumerate(chunks):
            if i:
                await asyncio.sleep(chunk_gap(state.config.latency, rng=rng))
            await response.write(_event(chunk))
    await response.write_eof()
    return response


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\r\n\r\n"


# -- control -------------------------------------------------------------------------


async def _control(request: web.Request, state: GeminiEmulatorState,
                   action: str) -> web.Response:
    if action == "stats" and request.method == "GET":
        return json_response(state.stats())
    if action == "faults" and request.method == "GET":
        return json_response({"faults": state.faults()})
    if action == "faults" and request.method in ("POST", "PUT"):
        try:
            body = await _read_json(request)
            faults = body.get("faults", body) if isinstance(body, dict) else body
            state.set_faults(faults or None)
        except (RpcError, ValueError, AttributeError) as exc:
            return json_response({"error": str(exc)}, status=400)
        return json_response({"faults": state.faults()})
    if action == "reset" and request.method == "POST":
        state.reset()
        return json_response({"reset": True})
    return json_response({"error": f"{request.method} not allowed here"}, status=405)


__all__ = ["GEMINI_STATE", "create_app"]
