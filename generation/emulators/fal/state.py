"""The emulator's state object: requests, counters, faults, runners, files, webhooks.

Lives on the emulator's event loop. The public methods (``stats``, ``set_faults``,
``reset`` …) may be called from any thread — a test process inspecting an
``EmulatorThread`` — and hop onto the loop when needed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from . import models
from .config import FalEmulatorConfig
from .faults import FaultPlan
from .media import FileStore, data_uri, fetch_image, image_file
from .queue import QueueEngine, Runner
from .records import COMPLETED, Outcome, QueuedRequest, model_error, platform_error
from .render import EXTENSIONS
from .validation import Invalid, Loc
from .webhooks import Delivery, WebhookSigner, deliver, webhook_body

T = TypeVar("T")


def fingerprint(endpoint: str, body: Any, raw: bytes) -> str:
    """Identity of a submit's input: the endpoint plus canonical JSON of the body."""
    text = json.dumps(body, sort_keys=True) if body is not None else raw.decode(errors="replace")
    return hashlib.sha256(f"{endpoint}\n{text}".encode()).hexdigest()[:16]


class FalEmulatorState:
    def __init__(self, config: FalEmulatorConfig) -> None:
        self.config = config
        self.timing = config.timing()
        self.faults = FaultPlan(seed=config.seed)
        self.faults.replace(config.faults)
        self.files = FileStore(config.max_files)
        self.signer = WebhookSigner()
        self.rng = random.Random(config.seed)
        self.requests: dict[str, QueuedRequest] = {}
        self.submit_attempts: Counter[str] = Counter()
        self.submits: Counter[str] = Counter()
        self.submits_by_input: Counter[str] = Counter()
        self.deliveries: list[Delivery] = []
        self.engine = self._new_engine()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.session: aiohttp.ClientSession | None = None
        self.closing = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = threading.Lock()

    def _new_engine(self) -> QueueEngine:
        return QueueEngine(timing=self.timing, runners=self.config.runners,
                           cache_size=self.config.cache_size, check=self._check,
                           produce=self._produce, finished=self._finished)

    # -- lifecycle (called by the aiohttp app) ------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.session = aiohttp.ClientSession()

    async def shutdown(self) -> None:
        """Wake hung handlers and SSE streams, stop every background task."""
        self.closing.set()
        for request in list(self.requests.values()):
            request.notify()
        await self.engine.close()
        await _cancel_all(self._tasks)

    async def cleanup(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def sleep(self, seconds: float) -> None:
        """Sleep, but return at once when the emulator shuts down."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closing.wait(), seconds)

    # -- the submit path (called on the loop by the routes) -------------------------------

    def count_attempt(self, endpoint: str) -> None:
        with self._lock:
            self.submit_attempts[endpoint] += 1

    def accept(self, request: QueuedRequest) -> None:
        with self._lock:
            self.requests[request.id] = request
            self.submits[request.endpoint] += 1
            self.submits_by_input[request.fingerprint] += 1
        self.engine.enqueue(request)

    def runner_hints(self, request: QueuedRequest) -> list[str]:
        queue = self.engine.queues.get(request.app)
        for runner in queue.runners if queue else []:
            if runner.name == request.runner:
                return runner.hints()
        return []

    def _check(self, request: QueuedRequest) -> tuple[dict[str, Any] | None, Outcome | None]:
        try:
            return models.check_input(request.endpoint, request.body, request.body_error), None
        except Invalid as exc:
            return None, model_error(422, exc.errors)

    async def _produce(self, request: QueuedRequest, params: dict[str, Any],
                       inference_s: float) -> Outcome:
        if request.fault.kind == "runner_error":
            return platform_error(500, "Runner returned an internal server error",
                                  "runner_server_error")
        sync = bool(params.get("sync_mode"))

        def publish(data: bytes, fmt: str, width: int, height: int) -> dict[str, Any]:
            if sync:
                name = f"{uuid.uuid4().hex}.{EXTENSIONS[fmt]}"
                url = data_uri(data, fmt)
            else:
                name = self.files.put(data, fmt)
                url = f"{request.base_url}/files/{name}"
            return image_file(url=url, data=data, fmt=fmt, width=width, height=height,
                              file_name=name)

        async def fetch(url: str, loc: Loc) -> Any:
            assert self.session is not None
            return await fetch_image(self.session, url, loc)

        job = models.Job(endpoint=request.endpoint, params=params, fault=request.fault,
                         seed=self.rng.randrange(2**31), inference_s=inference_s,
                         fetch=fetch, publish=publish)
        return await models.produce(job)

    def _finished(self, request: QueuedRequest) -> None:
        if not request.webhook_url or self.session is None or self.closing.is_set():
            return
        delivery = Delivery(request.id, request.webhook_url, webhook_body(request))
        self.deliveries.append(delivery)
        task = asyncio.get_running_loop().create_task(deliver(
            self.session, self.signer, delivery, user_id=request.user_id,
            attempts=self.timing.webhook_attempts, backoff_s=self.timing.webhook_backoff_s,
            timeout_s=self.timing.webhook_timeout_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- control API (any thread) ---------------------------------------------------------

    def set_faults(self, target: str, spec: Mapping[str, Any] | None) -> None:
        """Install the fault spec for an endpoint id, app id or ``"*"`` (None removes it)."""
        self.faults.set(target, spec)

    def replace_faults(self, plan: Mapping[str, Mapping[str, Any] | None] | None) -> None:
        self.faults.replace(plan)

    def stats(self) -> dict[str, Any]:
        return self._on_loop(self._stats)

    def request_list(self) -> list[dict[str, Any]]:
        return self._on_loop(lambda: [r.snapshot() for r in self.requests.values()])

    def request_info(self, request_id: str) -> dict[str, Any] | None:
        def find() -> dict[str, Any] | None:
            request = self.requests.get(request_id)
            return None if request is None else request.snapshot()
        return self._on_loop(find)

    def submit_count(self, *, endpoint: str | None = None, prompt_contains: str | None = None,
                     where: Callable[[dict[str, Any]], bool] | None = None) -> int:
        """Accepted submits: all, or those to ``endpoint`` / whose prompt contains a text /
        whose snapshot (``request_list()`` item, ``input`` included) satisfies ``where``."""
        def count() -> int:
            return sum(1 for r in self.requests.values()
                       if (endpoint is None or r.endpoint == endpoint)
                       and (prompt_contains is None or prompt_contains in (r.prompt or ""))
                       and (where is None or where(r.snapshot())))
        return self._on_loop(count)

    def cold_loads(self, app: str | None = None) -> int:
        def count() -> int:
            return sum(r.cold_loads for r in self._runners(app))
        return self._on_loop(count)

    def runner_stats(self) -> dict[str, list[dict[str, Any]]]:
        return self._on_loop(lambda: {app: [r.snapshot() for r in queue.runners]
                                      for app, queue in self.engine.queues.items()})

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        return self._on_loop(lambda: [d.snapshot() for d in self.deliveries])

    def reset(self) -> None:
        """Forget requests, counters, files, runner caches; faults back to the config's."""
        loop = self.loop
        if loop is None or not loop.is_running():
            raise RuntimeError("the emulator is not running")
        if _running_loop() is loop:
            raise RuntimeError("on the emulator's loop, await areset() instead")
        asyncio.run_coroutine_threadsafe(self.areset(), loop).result(timeout=10)

    async def areset(self) -> None:
        await self.engine.close()
        await _cancel_all(self._tasks)
        with self._lock:
            forgotten = list(self.requests.values())
            self.requests.clear()
            self.submit_attempts.clear()
            self.submits.clear()
            self.submits_by_input.clear()
            self.deliveries.clear()
        for request in forgotten:  # ends their SSE streams
            request.notify()
        self.files.clear()
        self.faults.replace(self.config.faults)
        self.engine = self._new_engine()

    # -- helpers --------------------------------------------------------------------------

    def _runners(self, app: str | None) -> list[Runner]:
        return [runner for name, queue in self.engine.queues.items()
                if app is None or name == app for runner in queue.runners]

    def _stats(self) -> dict[str, Any]:
        statuses = Counter(r.status for r in self.requests.values())
        failed = Counter(r.outcome.error_type or str(r.outcome.status)
                         for r in self.requests.values()
                         if r.status == COMPLETED and r.outcome and not r.outcome.ok)
        with self._lock:
            submits = {"total": sum(self.submits.values()), "by_endpoint": dict(self.submits),
                       "by_input": dict(self.submits_by_input),
                       "duplicate_inputs": sorted(k for k, n in self.submits_by_input.items()
                                                  if n > 1)}
            attempts = {"total": sum(self.submit_attempts.values()),
                        "by_endpoint": dict(self.submit_attempts)}
        runners = {app: [r.snapshot() for r in queue.runners]
                   for app, queue in self.engine.queues.items()}
        return {
            "latency": self.config.latency,
            "submits": submits,
            "submit_attempts": attempts,
            "requests": {"total": len(self.requests), "by_status": dict(statuses),
                         "failed_by_type": dict(failed),
                         "routed_by_hint": sum(r.routed_by_hint for r in self.requests.values()),
                         "status_polls": sum(r.status_polls for r in self.requests.values()),
                         "log_polls": sum(r.log_polls for r in self.requests.values()),
                         "stream_opens": sum(r.stream_opens for r in self.requests.values())},
            "queues": {app: {"normal": len(q.lanes["normal"]), "low": len(q.lanes["low"])}
                       for app, q in self.engine.queues.items()},
            "cold_loads": {"total": self.engine.cold_loads(),
                           "by_runner": {r["name"]: r["cold_loads"]
                                         for rs in runners.values() for r in rs}},
            "runners": runners,
            "webhooks": {"deliveries": len(self.deliveries),
                         "delivered": sum(d.delivered for d in self.deliveries),
                         "attempts": sum(len(d.attempts) for d in self.deliveries)},
            "files": len(self.files),
            "faults": self.faults.snapshot(),
        }

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the emulator's loop (directly when already there or not running)."""
        loop = self.loop
        if loop is None or not loop.is_running() or _running_loop() is loop:
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)
        loop.call_soon_threadsafe(call)
        return future.result(timeout=10)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _cancel_all(tasks: set[asyncio.Task[Any]]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    tasks.clear()


FAL_STATE = web.AppKey("fal_state", FalEmulatorState)
