"""The queue and capacity model.

Per app (``[ns/]owner/alias``): two FIFO lanes (``normal`` served before ``low``) and
N runners, each holding an LRU cache of K keys (LoRA paths, else the endpoint id). A
runner's ``provide_hints()`` is its cached keys. Dispatch takes the head of the queue
(after at least ``dispatch_s`` in IN_QUEUE) and routes it to a free runner whose hints
contain the request's ``X-Fal-Runner-Hint`` exactly, else to the free runner that has
been idle longest; it never waits for a particular runner. A key missing from the
chosen runner costs ``cold_load_s`` and counts as one cold load.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .config import Timing
from .records import (
    COMPLETED,
    IN_PROGRESS,
    IN_QUEUE,
    Outcome,
    QueuedRequest,
    platform_error,
)

logger = logging.getLogger(__name__)

Check = Callable[[QueuedRequest], tuple[dict[str, Any] | None, Outcome | None]]
Produce = Callable[[QueuedRequest, dict[str, Any], float], Awaitable[Outcome]]
Finished = Callable[[QueuedRequest], None]


def cancelled_outcome() -> Outcome:
    return platform_error(499, "Request was cancelled by the client", "client_cancelled")


def start_timeout_outcome() -> Outcome:
    return platform_error(504, "Request timed out before a runner could start it",
                          "request_timeout", {"X-Fal-Request-Timeout-Type": "user"})


@dataclass(eq=False)
class Runner:
    name: str
    capacity: int
    cache: OrderedDict[str, None] = field(default_factory=OrderedDict)
    busy: bool = False
    idle_since: float = field(default_factory=time.monotonic)
    cold_loads: int = 0
    served: int = 0

    def hints(self) -> list[str]:
        """What this runner's ``provide_hints()`` returns: the keys it holds."""
        return list(self.cache)

    def load(self, key: str) -> None:
        self.cache[key] = None
        self.cache.move_to_end(key)
        while len(self.cache) > self.capacity:
            self.cache.popitem(last=False)

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.name, "hints": self.hints(), "busy": self.busy,
                "cold_loads": self.cold_loads, "served": self.served}


class AppQueue:
    """The lanes and runners of one app."""

    def __init__(self, app: str, *, runners: int, cache_size: int) -> None:
        self.app = app
        self.lanes: dict[str, deque[QueuedRequest]] = {"normal": deque(), "low": deque()}
        self.runners = [Runner(f"{app}#{i}", cache_size) for i in range(runners)]
        self.wake = asyncio.Event()

    def waiting(self) -> int:
        return sum(len(lane) for lane in self.lanes.values())

    def position(self, request: QueuedRequest) -> int:
        """Requests ahead of ``request``: its lane's, plus all normal ones for a low one."""
        lane = self.lanes[request.priority]
        ahead = lane.index(request) if request in lane else 0
        return ahead + (len(self.lanes["normal"]) if request.priority == "low" else 0)

    def queued(self) -> list[QueuedRequest]:
        return [*self.lanes["normal"], *self.lanes["low"]]

    def head(self) -> QueuedRequest | None:
        for lane in self.lanes.values():
            if lane:
                return lane[0]
        return None

    def add(self, request: QueuedRequest) -> None:
        self.lanes[request.priority].append(request)
        self.wake.set()

    def remove(self, request: QueuedRequest) -> None:
        self.lanes[request.priority].remove(request)
        for other in self.queued():  # everyone behind moved up
            other.notify()

    def pick_runner(self, request: QueuedRequest) -> tuple[Runner | None, bool]:
        """(runner, chosen by hint) for ``request``, or (None, False) when all are busy."""
        free = sorted((r for r in self.runners if not r.busy), key=lambda r: r.idle_since)
        if not free:
            return None, False
        if request.hint is not None:
            for runner in free:
                if request.hint in runner.cache:
                    return runner, True
        return free[0], False


class QueueEngine:
    """Owns the app queues, their dispatch loops and the running requests."""

    def __init__(self, *, timing: Timing, runners: int, cache_size: int, check: Check,
                 produce: Produce, finished: Finished) -> None:
        self.timing = timing
        self.runners = runners
        self.cache_size = cache_size
        self.check = check
        self.produce = produce
        self.finished = finished
        self.queues: dict[str, AppQueue] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    def queue_for(self, app: str) -> AppQueue:
        queue = self.queues.get(app)
        if queue is None:
            queue = self.queues[app] = AppQueue(app, runners=self.runners,
                                                cache_size=self.cache_size)
            self._spawn(self._dispatch(queue))
        return queue

    def enqueue(self, request: QueuedRequest) -> None:
        request.ready_at = request.submitted_at + self.timing.dispatch_s
        self.queue_for(request.app).add(request)

    def position(self, request: QueuedRequest) -> int:
        return self.queue_for(request.app).position(request)

    def cancel(self, request: QueuedRequest) -> bool:
        """False when already completed; a queued request ends now, a running one soon."""
        if request.status == COMPLETED:
            return False
        if request.status == IN_QUEUE:
            self.queue_for(request.app).remove(request)
            self._finish(request, cancelled_outcome())
        else:
            request.log("Cancellation requested by the client", "WARN")
            request.request_cancel()
        return True

    def cold_loads(self) -> int:
        return sum(r.cold_loads for q in self.queues.values() for r in q.runners)

    async def close(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()
        self.queues.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _dispatch(self, queue: AppQueue) -> None:
        while True:
            queue.wake.clear()
            now = time.monotonic()
            self._expire(queue, now)
            wait: float | None = None
            request = queue.head()
            if request is not None and request.ready_at > now:
                wait = request.ready_at - now
            elif request is not None:
                runner, by_hint = queue.pick_runner(request)
                if runner is not None:
                    queue.remove(request)
                    self._start(request, runner, by_hint)
                    self._spawn(self._run(queue, request, runner))
                    continue
            deadlines = [r.deadline for r in queue.queued() if r.deadline is not None]
            if deadlines:
                until = max(0.0, min(deadlines) - now)
                wait = until if wait is None else min(wait, until)
            try:
                async with asyncio.timeout(wait):
                    await queue.wake.wait()
            except TimeoutError:
                pass

    def _expire(self, queue: AppQueue, now: float) -> None:
        for request in queue.queued():
            if request.deadline is not None and request.deadline <= now:
                queue.remove(request)
                request.log("Start timeout reached while waiting in queue", "ERROR")
                self._finish(request, start_timeout_outcome())

    @staticmethod
    def _start(request: QueuedRequest, runner: Runner, by_hint: bool) -> None:
        """Hand ``request`` to ``runner``, synchronously with its leaving the queue."""
        runner.busy = True
        request.status = IN_PROGRESS
        request.started_at = time.monotonic()
        request.runner = runner.name
        request.routed_by_hint = by_hint
        request.log(f"Picked up by runner {runner.name}"
                    + (" (runner hint matched)" if by_hint else ""))

    async def _run(self, queue: AppQueue, request: QueuedRequest, runner: Runner) -> None:
        outcome: Outcome | None = None
        try:
            outcome = await self._work(request, runner)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an emulator bug must still end the request
            logger.exception("fal emulator runner crashed on %s", request.id)
            outcome = platform_error(500, f"Runner crashed: {exc}", "runner_server_error")
        finally:
            runner.busy = False
            runner.idle_since = time.monotonic()
            runner.served += 1
            queue.wake.set()
        self._finish(request, outcome)

    async def _work(self, request: QueuedRequest, runner: Runner) -> Outcome:
        timing = self.timing
        params, failure = self.check(request)
        if failure is not None or params is None:
            request.log("Input validation failed", "ERROR")
            return failure or platform_error(500, "no input", "internal_error")
        for key in request.cache_keys:
            if key in runner.cache:
                runner.cache.move_to_end(key)
                continue
            request.log(f"Loading {key} (cold start)")
            runner.cold_loads += 1
            request.cold_loads += 1
            if await request.pause(timing.cold_load_s):
                return cancelled_outcome()
            runner.load(key)
        began = time.monotonic()
        step = timing.inference_s / max(1, timing.log_ticks)
        for tick in range(1, timing.log_ticks + 1):
            if await request.pause(step):
                return cancelled_outcome()
            request.log(f"Generating: step {tick}/{timing.log_ticks}")
        fault = request.fault
        if fault.kind == "slow" and await request.pause(fault.slow_s):
            return cancelled_outcome()
        if fault.kind == "hang":
            if await request.pause(fault.hang_s):
                return cancelled_outcome()
            return platform_error(504, "Generation timed out", "generation_timeout")
        outcome = await self.produce(request, params, time.monotonic() - began)
        if request.cancel_requested:
            return cancelled_outcome()
        return outcome

    def _finish(self, request: QueuedRequest, outcome: Outcome) -> None:
        now = time.monotonic()
        request.log("Request completed" if outcome.ok else
                    f"Request failed: {outcome.error_type or outcome.status}",
                    "INFO" if outcome.ok else "ERROR")
        if request.started_at is not None:
            request.metrics = {"inference_time": round(now - request.started_at, 4)}
        request.outcome = outcome
        request.completed_at = now
        request.status = COMPLETED
        request.notify()
        self.finished(request)
