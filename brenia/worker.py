"""procrastinate's worker, kept running while its database goes away and comes back.

procrastinate 3.10's ``Worker`` stops at the first database error outside a task:
its fetch loop raises, and a failed heartbeat or listener ends it through its side
task monitor. A restart of PostgreSQL, a failover or a dropped connection would then
take every job the worker follows down with it, to be found again by another worker's
stalled-task recovery minutes later. Here each of those parts waits and tries again
instead, while the running jobs (which resume on their own: see
``generation.jobs.runner.run_job``) carry on.

What it overrides are the pinned version's private methods (requirements.txt pins
procrastinate); ``tests/brenia/test_worker_outage.py`` cuts a live worker's database
connections and checks that it keeps working.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from channels.db import database_sync_to_async
from django.db import InterfaceError, OperationalError
from procrastinate import exceptions
from procrastinate.worker import Worker

from brenia.background import database_health
from brenia.retries import Backoff

logger = logging.getLogger(__name__)

# Between tries while the database does not answer: 0.5 s at first, then up to 5 s.
RECONNECT = Backoff(attempts=1_000_000, base=0.5, cap=5.0)


# What a lost connection raises, wrapped in procrastinate's ConnectorException:
# psycopg's own (through procrastinate's psycopg connector, or the pool's PoolTimeout)
# or Django's (through its Django connector).
CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, OperationalError,
                     InterfaceError)


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` (a ConnectorException) is the database going away, not an
    answer from it (a row that moved on, a failed constraint): only an outage is
    worth waiting out."""
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in chain:  # a chain may loop back on itself
        if isinstance(link, CONNECTION_ERRORS):
            return True
        chain.append(link)
        link = link.__cause__ or link.__context__
    return False


class SteadyWorker(Worker):
    """A worker that outlives database outages (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._outage_failures = 0

    def _outage(self, part: str, error: BaseException) -> float:
        """Log the first failure of an outage (not every retry); the wait before the next try."""
        self._outage_failures += 1
        database_health.lost()
        if self._outage_failures == 1:
            logger.warning("worker on %s: the database is unreachable (%s: %r); retrying "
                           "until it answers", ",".join(self.queues or ()), part,
                           error.__cause__ or error)
        return RECONNECT.delay(failures=min(self._outage_failures, 30))

    def _recovered(self) -> None:
        if self._outage_failures:
            logger.warning("worker on %s: the database answers again",
                           ",".join(self.queues or ()))
            self._outage_failures = 0

    async def _fetch_and_process_jobs(self) -> None:
        try:
            await super()._fetch_and_process_jobs()
        except exceptions.ConnectorException as error:
            if not is_outage(error):
                raise
            # The run loop comes back after its polling interval (or a notification).
            await asyncio.sleep(self._outage("fetching work", error))
        else:
            self._recovered()

    async def _update_heartbeat(self) -> None:
        while True:
            try:
                await super()._update_heartbeat()  # loops until it fails
            except exceptions.ConnectorException as error:
                if not is_outage(error):
                    raise
                self._outage("heartbeat", error)

    async def _periodic_deferrer(self) -> None:
        while True:
            try:
                return await super()._periodic_deferrer()
            except exceptions.ConnectorException as error:
                if not is_outage(error):
                    raise
                await asyncio.sleep(self._outage("periodic tasks", error))

    def _start_side_tasks(self) -> list[asyncio.Task[Any]]:
        listen, self.listen_notify = self.listen_notify, False
        try:
            side_tasks = super()._start_side_tasks()
        finally:
            self.listen_notify = listen
        if listen:
            side_tasks.append(asyncio.create_task(self._listen(), name="listener"))
        return side_tasks

    async def _listen(self) -> None:
        while True:
            try:
                await self.app.job_manager.listen_for_jobs(
                    on_notification=self._handle_notification, queues=self.queues)
            except exceptions.ConnectorException as error:
                if not is_outage(error):
                    raise
                await asyncio.sleep(self._outage("listening for work", error))
            else:
                await asyncio.sleep(RECONNECT.base)
            # Work deferred while it was deaf announced itself to no one: look now.
            self._new_job_event.set()

    async def _persist_job_status(self, *args: Any, **kwargs: Any) -> None:
        # A task's end, recorded once the database answers: left "doing", its row
        # would hold the task's lock (one run per job) until the worker died.
        # An answer that is no outage (the row is no longer this worker's: stalled-task
        # recovery took it) is final: waiting would hold this worker's slot for ever.
        while True:
            try:
                await super()._persist_job_status(*args, **kwargs)
                return
            except exceptions.ConnectorException as error:
                if not is_outage(error):
                    logger.error("worker on %s: could not record a task's end (%r)",
                                 ",".join(self.queues or ()), error.__cause__ or error)
                    job = kwargs.get("job")
                    if job is not None and job.id is not None:
                        self._job_ids_to_abort.pop(job.id, None)
                    return
                await asyncio.sleep(self._outage("recording a task's end", error))


def _noop() -> None:
    pass


async def drop_broken_connection() -> None:
    """Replace the shared database thread's connection if a failure broke it: the ORM's
    async methods run on that thread and never close it themselves, while one trip
    through ``database_sync_to_async`` closes an unusable connection, as Django does
    between requests."""
    await database_sync_to_async(_noop)()


async def heal_shared_connection(call_next: Any, context: Any, worker: Any) -> Any:
    """A worker middleware: a task that failed on a broken database connection leaves
    the shared database thread's connection broken, and every later task would fail
    on it, unless it is dropped (``drop_broken_connection``)."""
    try:
        return await call_next()
    except (OperationalError, InterfaceError):
        await drop_broken_connection()
        raise
