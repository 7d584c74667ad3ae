"""Where jobs run: inside the serving process, or on procrastinate workers.

``dispatch_job`` is called after the job's row is committed. In-process, jobs run
as tasks on the serving process's own event loop (adopted from the first ASGI
call), so their events reach WebSocket consumers through the in-memory channel
layer; when no server loop exists (a management command), a private loop thread
takes them. Restarted processes resume every unfinished job: a job that already
holds a provider request id re-attaches to it instead of submitting again.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)


class InProcessExecutor:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.background: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()

    def adopt_running_loop(self) -> None:
        """Run jobs on the caller's loop (the ASGI server's); resume unfinished ones."""
        if self.loop is not None:
            return
        with self._lock:
            if self.loop is not None:
                return
            self.loop = asyncio.get_running_loop()
        self.loop.create_task(self.resume(), context=contextvars.Context())

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self.loop is None or self.loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="brenia-jobs",
                                 daemon=True).start()
                self.loop = loop
            return self.loop

    def dispatch(self, job_id: Any) -> None:
        loop = self._ensure_loop()
        # A fresh context: the caller's (a request's) carries asgiref's per-request
        # executor, which is gone once that request ends.
        loop.call_soon_threadsafe(self._start, str(job_id), context=contextvars.Context())

    def _start(self, job_id: str) -> None:
        from generation.runner import run_job

        running = self.tasks.get(job_id)
        if running is not None and not running.done():
            return
        task = asyncio.get_running_loop().create_task(
            run_job(job_id), name=f"job-{job_id}", context=contextvars.Context())
        self.tasks[job_id] = task
        task.add_done_callback(lambda _t: self.tasks.pop(job_id, None))

    def spawn(self, factory: Callable[[], Coroutine[Any, Any, None]], *, name: str) -> None:
        """Run ``factory()`` as a task on the jobs loop (from any thread), held until done."""
        def _run() -> None:
            task = asyncio.get_running_loop().create_task(factory(), name=name,
                                                          context=contextvars.Context())
            self.background.add(task)
            task.add_done_callback(self.background.discard)

        self._ensure_loop().call_soon_threadsafe(_run, context=contextvars.Context())

    def cancel(self, job_id: Any) -> None:
        loop = self.loop
        if loop is None:
            return

        def _cancel() -> None:
            task = self.tasks.get(str(job_id))
            if task is not None:
                task.cancel()

        loop.call_soon_threadsafe(_cancel)

    async def resume(self) -> None:
        from asgiref.sync import sync_to_async

        from generation.services import jobs_active_ids

        try:
            ids = await sync_to_async(jobs_active_ids)()
        except Exception:
            logger.exception("could not list unfinished jobs to resume")
            return
        if ids:
            logger.info("resuming %d unfinished job(s)", len(ids))
        for job_id in ids:
            self._start(str(job_id))
        from generation.outbound.delivery import deliveries_resume

        await deliveries_resume()

    async def drain(self) -> None:
        """Wait for every running job (tests and graceful shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks.values()), return_exceptions=True)


executor = InProcessExecutor()


def dispatch_job(job_id: Any) -> None:
    if settings.BRENIA_JOBS == "procrastinate":
        from generation.tasks import defer_run_job

        defer_run_job(job_id)
    else:
        executor.dispatch(job_id)


def request_cancel(job_id: Any) -> None:
    """The job row already says cancelled; stop local work and tell the provider."""
    if settings.BRENIA_JOBS == "procrastinate":
        from generation.tasks import cancel_remote_task

        cancel_remote_task.defer(job_id=str(job_id))
    else:
        executor.cancel(job_id)
