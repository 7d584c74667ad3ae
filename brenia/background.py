"""The background runner: one way to run work outside a request, in either profile.

Apps declare their work in ``AppConfig.ready()`` and know nothing of where it runs:

- ``@task(name, queue=…)`` registers a coroutine function; ``submit(task, **kwargs)``
  runs it (call it after commit: ``transaction.on_commit``). In the embedded profile
  (``BRENIA_JOBS=inprocess``) it runs as a task on the serving process's own event
  loop; in scale-out (``procrastinate``) it is deferred to PostgreSQL and run by
  ``manage.py worker`` processes.
- ``key=`` makes a submission exclusive: at most one run per key at a time, and at
  most one waiting (procrastinate's ``lock`` and ``queueing_lock``; in-process, a
  key already running or waiting is not queued again). ``abort(key)`` stops a local run.
- In-process, at most ``BRENIA_INPROCESS_CONCURRENCY`` tasks run at once (as
  ``BRENIA_WORKER_CONCURRENCY`` bounds a worker): a burst of submissions waits, in
  order, for a free slot instead of opening a database connection per job at once.
  Waiting work lives in memory only, like running work: a process that stops drops
  both, and the recovery steps of the next start put back what they stood for.
- ``@recovery(name)`` registers a step that puts back what a dead process left
  behind. In-process it runs once when the serving loop starts; in scale-out it is a
  procrastinate periodic task, every ``BRENIA_RECOVERY_INTERVAL`` seconds.

Queues (scale-out): ``jobs`` for job runs, ``webhooks`` for outgoing deliveries
(served by their own pool of the worker, so a burst of deliveries never holds up a
job), ``maintenance`` for recovery.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from brenia import metrics

logger = logging.getLogger(__name__)

JOBS, WEBHOOKS, MAINTENANCE = "jobs", "webhooks", "maintenance"
QUEUES = (JOBS, WEBHOOKS, MAINTENANCE)

TaskFunction = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class Task:
    name: str
    fn: TaskFunction
    queue: str

    async def __call__(self, **kwargs: Any) -> None:
        """Run the task here and now (tests, and a task calling another)."""
        await self.fn(**kwargs)


_tasks: dict[str, Task] = {}
_recoveries: dict[str, Task] = {}


def _uses_procrastinate() -> bool:
    return bool(settings.BRENIA_JOBS == "procrastinate")


def task(name: str, *, queue: str = JOBS) -> Callable[[TaskFunction], Task]:
    """Register ``fn`` under ``name`` (a stable name: queued rows refer to it)."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")

    def register(fn: TaskFunction) -> Task:
        registered = Task(name=name, fn=fn, queue=queue)
        if name in _tasks and _tasks[name].fn is not fn:
            raise ValueError(f"a background task named {name!r} is registered already")
        _tasks[name] = registered
        if _uses_procrastinate():
            _procrastinate_app().task(name=name, queue=queue, pass_context=False)(fn)
        return registered

    return register


def recovery(name: str) -> Callable[[Callable[[], Awaitable[None]]], Task]:
    """Register a recovery step: at start in-process, periodically in scale-out."""

    def register(fn: Callable[[], Awaitable[None]]) -> Task:
        registered = Task(name=name, fn=fn, queue=MAINTENANCE)
        _recoveries[name] = registered
        if _uses_procrastinate():
            app = _procrastinate_app()

            async def periodic(timestamp: int) -> None:
                await fn()

            every = max(1, round(settings.BRENIA_RECOVERY_INTERVAL))
            app.periodic(cron=f"* * * * * */{every}", periodic_id=name)(
                app.task(name=name, queue=MAINTENANCE, queueing_lock=name,
                         pass_context=False)(periodic))
        return registered

    return register


def registered_tasks() -> dict[str, Task]:
    return dict(_tasks)


def _procrastinate_app() -> Any:
    from procrastinate.contrib.django import app

    return app


def _configure_kwargs(key: str | None, at: datetime | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if key is not None:
        kwargs.update(lock=key, queueing_lock=key)
    if at is not None:
        kwargs["schedule_at"] = at
    return kwargs


def submit(task: Task, *, key: str | None = None, at: datetime | None = None,
           **kwargs: Any) -> bool:
    """Run ``task(**kwargs)`` in the background; False if ``key`` is already waiting.

    ``kwargs`` must be plain JSON. Call it after the commit that made the work due.
    """
    if _uses_procrastinate():
        from procrastinate import exceptions

        app = _procrastinate_app()
        try:
            app.configure_task(task.name, **_configure_kwargs(key, at)).defer(**kwargs)
        except exceptions.AlreadyEnqueued:
            return False
        return True
    return runner.submit(task, key=key, at=at, kwargs=kwargs)


async def asubmit(task: Task, *, key: str | None = None, at: datetime | None = None,
                  **kwargs: Any) -> bool:
    if _uses_procrastinate():
        from procrastinate import exceptions

        app = _procrastinate_app()
        try:
            await app.configure_task(task.name, **_configure_kwargs(key, at)).defer_async(
                **kwargs)
        except exceptions.AlreadyEnqueued:
            return False
        return True
    return runner.submit(task, key=key, at=at, kwargs=kwargs)


async def carried(task: Task, *, arg: str) -> set[str]:
    """The values of ``arg`` over ``task``'s runs that are waiting or running now.

    Recovery steps use it to put back only what nothing carries any more.
    """
    if _uses_procrastinate():
        from procrastinate.contrib.django.models import ProcrastinateJob

        rows = ProcrastinateJob.objects.filter(  # type: ignore[misc,unused-ignore]
            task_name=task.name, status__in=("todo", "doing"))
        return {str(args.get(arg)) async for args in rows.values_list("args", flat=True)}
    return runner.carried(task, arg=arg)


def abort(key: str) -> None:
    """Stop this process's run of ``key``, if it has one (in-process profile only).

    In scale-out the run lives on some worker; the work itself must notice that it
    is no longer wanted (a job does, at its next state change).
    """
    if not _uses_procrastinate():
        runner.abort(key)


class InProcessRunner:
    """Runs tasks on the serving process's event loop (the embedded profile).

    The loop is adopted from the first ASGI call, so work and WebSocket consumers
    share the in-memory channel layer; without a server (a management command), a
    private loop thread takes the work.

    At most ``BRENIA_INPROCESS_CONCURRENCY`` runs at once; the rest wait in
    ``waiting``, first in first out, and each run that ends starts the next. Only the
    loop's thread touches ``running``, ``keyed`` and ``waiting``.
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.keyed: dict[str, asyncio.Task[None]] = {}
        self.running: set[asyncio.Task[None]] = set()
        # Submissions due but without a free slot yet, in the order they came.
        self.waiting: deque[_Waiting] = deque()
        self._waiting_keys: set[str] = set()
        # Every submission from submit() until its run ends: (task name, kwargs).
        self.pending: dict[int, tuple[str, dict[str, Any]]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def adopt_running_loop(self) -> None:
        """Run work on the caller's loop (the ASGI server's) and run the recoveries."""
        if self.loop is not None:
            return
        with self._lock:
            if self.loop is not None:
                return
            self.loop = asyncio.get_running_loop()
        self.loop.create_task(self.recover(), context=contextvars.Context())

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self.loop is None or self.loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="brenia-background",
                                 daemon=True).start()
                self.loop = loop
            return self.loop

    def submit(self, task: Task, *, key: str | None, at: datetime | None,
               kwargs: dict[str, Any]) -> bool:
        loop = self._ensure_loop()
        ticket = next(self._ids)
        self.pending[ticket] = (task.name, kwargs)
        delay = max(0.0, (at - timezone.now()).total_seconds()) if at is not None else 0.0
        # A fresh context: the caller's (a request's) carries asgiref's per-request
        # executor, which is gone once that request ends.
        context = contextvars.Context()
        if delay:
            loop.call_soon_threadsafe(
                lambda: loop.call_later(delay, self._start, ticket, task, key, kwargs,
                                        context=context),
                context=context)
        else:
            loop.call_soon_threadsafe(self._start, ticket, task, key, kwargs, context=context)
        return True

    def _start(self, ticket: int, task: Task, key: str | None, kwargs: dict[str, Any]) -> None:
        """Run the submission now if a slot is free, else queue it (on the loop)."""
        if key is not None and self._holds(key):
            self.pending.pop(ticket, None)
            return
        if len(self.running) >= _concurrency():
            self.waiting.append(_Waiting(ticket, task, key, kwargs))
            if key is not None:
                self._waiting_keys.add(key)
            metrics.BACKGROUND_WAITING.inc()
            return
        self._launch(ticket, task, key, kwargs)

    def _holds(self, key: str) -> bool:
        """Whether a run of ``key`` is running or waiting already."""
        running = self.keyed.get(key)
        return (running is not None and not running.done()) or key in self._waiting_keys

    def _launch(self, ticket: int, task: Task, key: str | None,
                kwargs: dict[str, Any]) -> None:
        run = asyncio.get_running_loop().create_task(
            self._guarded(task, kwargs), name=key or task.name, context=contextvars.Context())
        self.running.add(run)
        if key is not None:
            self.keyed[key] = run
        run.add_done_callback(lambda done: self._ended(done, ticket, key))

    def _ended(self, run: asyncio.Task[None], ticket: int, key: str | None) -> None:
        self.running.discard(run)
        self.pending.pop(ticket, None)
        if key is not None and self.keyed.get(key) is run:
            del self.keyed[key]
        self._start_waiting()

    def _start_waiting(self) -> None:
        while self.waiting and len(self.running) < _concurrency():
            queued = self.waiting.popleft()
            if queued.key is not None:
                self._waiting_keys.discard(queued.key)
            metrics.BACKGROUND_WAITING.dec()
            self._launch(queued.ticket, queued.task, queued.key, queued.kwargs)

    @staticmethod
    async def _guarded(task: Task, kwargs: dict[str, Any]) -> None:
        try:
            await task.fn(**kwargs)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("background task %s failed", task.name)

    def carried(self, task: Task, *, arg: str) -> set[str]:
        return {str(kwargs.get(arg)) for name, kwargs in list(self.pending.values())
                if name == task.name}

    def abort(self, key: str) -> None:
        loop = self.loop
        if loop is None:
            return

        def _cancel() -> None:
            run = self.keyed.get(key)
            if run is not None:
                run.cancel()
            if key in self._waiting_keys:  # never started: it will not be
                queued = next(queued for queued in self.waiting if queued.key == key)
                self.waiting.remove(queued)
                self._waiting_keys.discard(key)
                metrics.BACKGROUND_WAITING.dec()
                self.pending.pop(queued.ticket, None)

        loop.call_soon_threadsafe(_cancel)

    async def recover(self) -> None:
        for step in list(_recoveries.values()):
            try:
                await step.fn()
            except Exception:
                logger.exception("recovery step %s failed", step.name)

    async def drain(self) -> None:
        """Wait until no task runs or waits (tests and graceful shutdown)."""
        while self.running or self.waiting:
            self._start_waiting()
            await asyncio.gather(*list(self.running), return_exceptions=True)


@dataclass(frozen=True, eq=False)
class _Waiting:
    ticket: int
    task: Task
    key: str | None
    kwargs: dict[str, Any]


def _concurrency() -> int:
    # Read at each start, so a test can lower it with override_settings.
    return int(settings.BRENIA_INPROCESS_CONCURRENCY)


runner = InProcessRunner()


class DatabaseHealth:
    """When this process last found the database unreachable (its worker reports it:
    ``brenia.worker``), on the monotonic clock."""

    def __init__(self) -> None:
        self.lost_at: float | None = None

    def lost(self) -> None:
        self.lost_at = time.monotonic()

    def steady_for(self) -> float | None:
        """Seconds since the last outage this process saw; None if it saw none."""
        return None if self.lost_at is None else time.monotonic() - self.lost_at


database_health = DatabaseHealth()


async def retry_stalled_tasks() -> None:
    """Scale-out: tasks whose worker stopped beating its heart go back in the queue.

    Safe from every worker at once, and from runs of this step that overlap: each
    row is put back only if it is still running on the dead worker it was read with
    (``_put_back_stalled``).

    Not within BRENIA_STALLED_WORKER_TIMEOUT of an outage this process saw: the
    database was away for every worker alike, so a live worker's heartbeat is as late
    as a dead one's until it beats again, and its runs (which resume on their own)
    would be put back beside themselves.
    """
    steady = database_health.steady_for()
    if steady is not None and steady < settings.BRENIA_STALLED_WORKER_TIMEOUT:
        logger.info("stalled tasks not retried: the database was away %.0fs ago, and live "
                    "workers' heartbeats may still be late", steady)
        return
    app = _procrastinate_app()
    stalled = await app.job_manager.get_stalled_jobs(
        seconds_since_heartbeat=settings.BRENIA_STALLED_WORKER_TIMEOUT)
    outcomes = Counter([await _put_back(job.id, job.worker_id) for job in stalled])
    if outcomes["retried"] or outcomes["superseded"]:
        logger.info("retried %d task(s) of stalled workers; %d superseded by a waiting run",
                    outcomes["retried"], outcomes["superseded"])


def _put_back_stalled(job_id: int, worker_id: int | None) -> str:
    """Put one stalled task back: "retried", "superseded", or "" if it moved on.

    procrastinate's own retry accepts any running row. Between reading the stalled
    list and this call, another recovery may already have put the row back and a
    live worker fetched it; retried again, it would run twice at once, and a job run
    twice submits to fal twice (bench/drills.py kill found it). So the row is locked
    and retried only while it still runs under the dead worker it was read with
    (worker ids are never reused; procrastinate sets a pruned worker's to NULL).

    A run of the same key may already wait (a recovery step put the work back while
    this one ran): the queueing lock refuses a second waiting row, so this one could
    never be retried, and its lock would hold the waiting one back for good. The
    waiting run does the work; this one ends.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT queueing_lock FROM procrastinate_jobs WHERE id = %s "
                       "AND status = 'doing' AND worker_id IS NOT DISTINCT FROM %s "
                       "FOR UPDATE", [job_id, worker_id])
        row = cursor.fetchone()
        if row is None:
            return ""
        (queueing_lock,) = row
        waiting = False
        if queueing_lock:
            cursor.execute("SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE "
                           "queueing_lock = %s AND status = 'todo')", [queueing_lock])
            waiting = cursor.fetchone()[0]
        if waiting:
            # procrastinate's own SQL functions (the pinned version's), as its manager calls them.
            cursor.execute("SELECT procrastinate_finish_job_v1(%s, 'failed', false)", [job_id])
            return "superseded"
        cursor.execute("SELECT procrastinate_retry_job_v2(%s, now(), NULL, NULL, NULL)",
                       [job_id])
        return "retried"


_put_back = database_sync_to_async(_put_back_stalled)


def register_builtin_recoveries() -> None:
    if _uses_procrastinate():
        recovery("brenia.retry_stalled_tasks")(retry_stalled_tasks)
