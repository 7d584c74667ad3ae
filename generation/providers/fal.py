"""fal.ai through the stock fal-client AsyncClient (queue API).

The same code talks to the real queue and to the built-in emulator: only
``FAL_QUEUE_URL`` differs.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import weakref
from contextlib import aclosing
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import fal_client
import httpx
from django.conf import settings

from generation.providers.base import (
    MalformedResponse,
    OnSubmitted,
    OnUpdate,
    OutputImage,
    PermanentProviderError,
    Provider,
    ProviderError,
    ProviderResult,
    Queued,
    Running,
    TransientProviderError,
    log_provider_call,
)
from generation.providers.fal_stream import follow
from generation.providers.fal_transport import FalAsyncClient

if TYPE_CHECKING:
    from generation.models import AIModel, Job

# fal's image_size presets, in pixels (used for pricing and for the emulator).
IMAGE_SIZE_PRESETS: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}

# error_type values of a failed request that another attempt may cure.
TRANSIENT_ERROR_TYPES = frozenset({
    "request_timeout", "startup_timeout", "runner_scheduling_failure",
    "runner_connection_timeout", "runner_disconnected", "runner_connection_refused",
    "runner_connection_error", "runner_incomplete_response", "runner_server_error",
    "internal_error", "internal_server_error", "generation_timeout",
    "downstream_service_unavailable", "downstream_service_error",
    "concurrent_requests_limit",
})

# fal-client retries every queue call itself (submit, status poll, result, cancel) on
# connection errors and timeouts, 408, 409, 429 and 502-504 from its ingress: up to
# MAX_ATTEMPTS (10) tries, 0.1 s doubling to 10 s apart, times 0.5-1.5: 16-39 s of
# waiting between tries (each try is bounded by its HTTP timeouts, the whole attempt
# by BRENIA_JOB_TIMEOUT). It has no per-client switch (a module constant read by
# private helpers; changing it would change every fal client in the process, the
# emulator tests' stock clients included), so Brenia counts those tries as the whole
# budget of such a failure: see RetriedByFalClient.
FAL_CLIENT_ATTEMPTS: int = fal_client.client.MAX_ATTEMPTS


class RetriedByFalClient(TransientProviderError):
    """A transient failure that fal-client already tried FAL_CLIENT_ATTEMPTS times.

    Transient in kind, but the job runner does not try it again: a failure is retried
    by one layer only, so the SDK's tries and the runner's never multiply.
    """

    retried_by_client = True


def _spent_by_fal_client(exc: Exception) -> bool:
    """Whether fal-client retried ``exc`` until it gave up.

    Every HTTP call in ``execute`` goes through fal-client's retry loop, which only
    lets an error it would retry out after its last try. Its own predicate (private,
    fal-client pinned; tests/generation/test_retry_budget.py covers it) says which.
    """
    return bool(fal_client.client._should_retry(exc))


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FalAsyncClient] = (
    weakref.WeakKeyDictionary()
)


def _client() -> FalAsyncClient:
    """One client per event loop (its httpx pool is bound to the loop that made it)."""
    if not settings.FAL_KEY:
        raise PermanentProviderError("FAL_KEY is not set: Brenia cannot call fal.ai.",
                                     code="provider_not_configured")
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = FalAsyncClient(key=settings.FAL_KEY, queue_url=settings.FAL_QUEUE_URL)
        _clients[loop] = client
    return client


_STEP = re.compile(r"(\d+)\s*/\s*(\d+)")


def progress_from_logs(lines: list[str]) -> float | None:
    """Progress from the newest "n/total" in the logs (step counters, tqdm bars)."""
    for line in reversed(lines):
        for done, total in reversed(_STEP.findall(line)):
            if int(total) > 0 and int(done) <= int(total):
                return round(int(done) / int(total), 3)
    return None


def classify_http_error(exc: fal_client.client.FalClientHTTPError) -> ProviderError:
    status = exc.status_code
    error_type = exc.error_type or ""
    detail = exc.message if hasattr(exc, "message") else str(exc)
    message = detail_message(detail)
    if error_type == "content_policy_violation" or "content_policy_violation" in str(detail):
        return PermanentProviderError(message or "The request was refused by the safety filter.",
                                      code="content_policy_violation", detail=detail)
    if status in (408, 409, 429) or status >= 500 or error_type in TRANSIENT_ERROR_TYPES:
        return TransientProviderError(message or f"fal answered {status}",
                                      code=error_type or f"http_{status}", detail=detail)
    if status == 422:
        return PermanentProviderError(message or "The provider rejected the input.",
                                      code="invalid_input", detail=detail)
    return PermanentProviderError(message or f"fal answered {status}",
                                  code=error_type or f"http_{status}", detail=detail)


def detail_message(detail: Any) -> str:
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
        return "; ".join(parts)
    return str(detail) if detail else ""


# The registry's ``runner_hint_field`` value that hints with the model's own id.
MODEL_HINT = "@model"


class FalProvider(Provider):
    name = "fal"

    def build_arguments(self, *, model: AIModel, inputs: dict[str, Any],
                        options: dict[str, Any]) -> dict[str, Any]:
        accepted = set((model.input_schema or {}).get("properties", {}))
        arguments = dict(inputs)
        if model.supports_lora and "lora_url" in arguments:
            arguments["loras"] = [{"path": arguments.pop("lora_url"),
                                   "scale": arguments.pop("lora_scale", 1.0)}]
        if "width" in options and "height" in options and "image_size" in accepted:
            arguments["image_size"] = {"width": options["width"], "height": options["height"]}
        for name in ("num_images", "seed", "output_format"):
            if name in options and name in accepted:
                arguments[name] = options[name]
        return arguments

    def _submit_options(self, job: Job) -> dict[str, Any]:
        """Queue settings that travel as headers or query, not in the model input."""
        submit: dict[str, Any] = {"hint": self._hint(job)}
        if job.options.get("priority"):
            submit["priority"] = job.options["priority"]
        if settings.BRENIA_FAL_START_TIMEOUT:
            submit["start_timeout"] = settings.BRENIA_FAL_START_TIMEOUT
        if settings.BRENIA_PUBLIC_URL:
            submit["webhook_url"] = f"{settings.BRENIA_PUBLIC_URL}/api/webhooks/fal"
        return submit

    def estimate_images(self, arguments: dict[str, Any],
                        model: AIModel | None = None) -> list[tuple[int, int]]:
        size = arguments.get("image_size", "landscape_4_3")
        if isinstance(size, dict):
            dims = (int(size.get("width", 512)), int(size.get("height", 512)))
        else:
            dims = IMAGE_SIZE_PRESETS.get(str(size), (1024, 768))
        return [dims] * int(arguments.get("num_images", 1))

    def estimate(self, model: AIModel, arguments: dict[str, Any]) -> Decimal:
        return self.price(model, self.estimate_images(arguments))

    def _hint(self, job: Job) -> str | None:
        """``X-Fal-Runner-Hint``, from where the registry row says: ``@model`` hints the
        endpoint itself (replicas that already hold the model), any other name an input
        field (``loras``: the LoRA paths, a template's LoRA included); empty, no hint."""
        field = job.called_model.runner_hint_field
        if field == MODEL_HINT:
            return job.called_model.endpoint_id
        value = job.provider_arguments.get(field) if field else None
        if not value:
            return None
        if isinstance(value, list):
            return ",".join(str(v.get("path", v)) if isinstance(v, dict) else str(v)
                            for v in value)
        return str(value)

    async def execute(self, *, job: Job, on_submitted: OnSubmitted,
                      on_update: OnUpdate) -> ProviderResult:
        client = _client()
        app = job.called_model.endpoint_id
        # Which call to fal is under way, for its log line (log_provider_call).
        call, request_id, started = "submit", job.provider_request_id, time.monotonic()
        try:
            if request_id:
                call = "re-attach"
                handle = await client.get_handle(app, request_id)
            else:
                handle = await client.submit(app, job.provider_arguments,
                                             **self._submit_options(job))
                request_id = handle.request_id
                log_provider_call(provider=self.name, call=call, endpoint=app,
                                  request_id=request_id, started=started)
                await on_submitted(handle.request_id)
            call, started = "status", time.monotonic()
            seen_logs = 0
            # Pushed by fal's status stream, polled only when that fails (fal_stream.follow);
            # with BRENIA_FAL_STATUS_STREAM off, polled every BRENIA_POLL_INTERVAL.
            stream_http = await client.stream_http if settings.BRENIA_FAL_STATUS_STREAM else None
            async with aclosing(follow(handle, stream_http,
                                       interval=settings.BRENIA_POLL_INTERVAL)) as statuses:
                async for status in statuses:
                    if isinstance(status, fal_client.Queued):
                        await on_update(Queued(position=status.position))
                    elif isinstance(status, (fal_client.InProgress, fal_client.Completed)):
                        # A short request may finish between two updates: its last log
                        # lines arrive with the COMPLETED status and are relayed all the same.
                        logs = status.logs or []
                        if isinstance(status, fal_client.Completed) and len(logs) <= seen_logs:
                            continue
                        new = [str(entry.get("message", "")) for entry in logs[seen_logs:]]
                        seen_logs = len(logs)
                        await on_update(Running(new_logs=new, progress=progress_from_logs(new)))
            # A failed request is COMPLETED too; its result replays the model's error
            # status and body, which classify_http_error sorts out.
            call, started = "result", time.monotonic()
            output = await client.result(app, handle.request_id)
        except fal_client.client.FalClientHTTPError as exc:
            error = classify_http_error(exc)
            log_provider_call(provider=self.name, call=call, endpoint=app,
                              request_id=request_id, started=started, outcome=error.code)
            if isinstance(error, TransientProviderError) and _spent_by_fal_client(exc):
                raise RetriedByFalClient(error.message, code=error.code,
                                         detail=error.detail) from exc
            raise error from exc
        except json.JSONDecodeError as exc:
            log_provider_call(provider=self.name, call=call, endpoint=app,
                              request_id=request_id, started=started,
                              outcome="malformed_response")
            raise MalformedResponse("fal returned a result that is not JSON.",
                                    code="malformed_response") from exc
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            log_provider_call(provider=self.name, call=call, endpoint=app,
                              request_id=request_id, started=started,
                              outcome=f"unreachable: {exc.__class__.__name__}")
            # fal-client retries these, except a submit's timeout once start_timeout is set.
            unreachable = (RetriedByFalClient if _spent_by_fal_client(exc)
                           else TransientProviderError)
            raise unreachable(f"fal could not be reached: {exc.__class__.__name__}",
                              code="provider_unreachable") from exc
        log_provider_call(provider=self.name, call=call, endpoint=app, request_id=request_id,
                          started=started)
        return self.parse_output(output)

    def parse_output(self, output: Any) -> ProviderResult:
        if not isinstance(output, dict):
            raise MalformedResponse("fal returned a result that is not an object.",
                                    code="malformed_response")
        raw_images: list[Any]
        if isinstance(output.get("images"), list):
            raw_images = output["images"]
        elif isinstance(output.get("image"), dict):
            raw_images = [output["image"]]
        else:
            raise PermanentProviderError("The model produced no image.", code="no_image")
        seed = output.get("seed") if isinstance(output.get("seed"), int) else None
        nsfw = output.get("has_nsfw_concepts") or []
        images = []
        for index, item in enumerate(raw_images):
            if not isinstance(item, dict) or not isinstance(item.get("url"), str):
                raise MalformedResponse("fal returned an image without a URL.",
                                        code="malformed_response")
            if index < len(nsfw) and nsfw[index] is True:
                raise PermanentProviderError(
                    "The safety checker flagged the generated image.", code="nsfw_content")
            images.append(OutputImage(url=item["url"],
                                      content_type=str(item.get("content_type", "")), seed=seed))
        if not images:
            raise PermanentProviderError("The model produced no image.", code="no_image")
        return ProviderResult(images=images, raw=output)

    async def cancel(self, *, job: Job) -> None:
        if not job.provider_request_id:
            return
        started, outcome = time.monotonic(), "ok"
        try:
            await _client().cancel(job.called_model.endpoint_id, job.provider_request_id)
        except (fal_client.client.FalClientHTTPError, httpx.HTTPError) as exc:
            # Already finished or gone: the job's own state decides, so errors are moot.
            outcome = exc.__class__.__name__
        log_provider_call(provider=self.name, call="cancel", endpoint=job.called_model.endpoint_id,
                          request_id=job.provider_request_id, started=started, outcome=outcome)

    def price(self, model: AIModel, sizes: list[tuple[int, int]]) -> Decimal:
        """Per image, plus per output megapixel rounded up per image (fal's billing)."""
        total = Decimal(0)
        for width, height in sizes:
            total += model.price_per_image
            total += model.price_per_megapixel * math.ceil(width * height / 1_000_000)
        return total
