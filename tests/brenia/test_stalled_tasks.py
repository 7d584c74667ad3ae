"""A task left running by a dead worker while a run of the same key already waits.

The queueing lock allows one waiting row per key, so the stalled row cannot be put
back; it must end, or its lock would hold the waiting run back for ever (found by
bench/drills.py kill: jobs that never finished)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.db import OperationalError, connection
from django.test import override_settings

from brenia import background
from brenia.background import JOBS, _put_back_stalled, retry_stalled_tasks
from brenia.worker import SteadyWorker, is_outage
from generation.jobs.tasks import job_key, run_job_task
from tests.conftest import SCALEOUT
from tests.test_durability import wait_until

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(not SCALEOUT, reason="queue rows exist in the scale-out "
                                 "profile only (procrastinate)")]


@pytest.fixture(autouse=True)
def no_waiting_work() -> None:
    """Work earlier tests left queued (procrastinate's tables are not flushed between
    tests) would be fetched before this test's own."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs WHERE status = 'todo'")


def _statuses(key: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT status FROM procrastinate_jobs WHERE lock = %s ORDER BY id",
                       [key])
        return [row[0] for row in cursor.fetchall()]


async def _stalled_run(key: str, job_id: str) -> int:
    """A run of ``key`` taken by a worker that then died (its heartbeat an hour old);
    the dead worker's id."""
    manager = background._procrastinate_app().job_manager
    assert await background.asubmit(run_job_task, key=key, job_id=job_id)
    worker = await manager.register_worker()
    fetched = await manager.fetch_job([JOBS], worker)
    assert fetched is not None and fetched.lock == key

    def age() -> None:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE procrastinate_workers SET last_heartbeat = now() - "
                           "interval '1 hour' WHERE id = %s", [worker])

    await database_sync_to_async(age)()
    return worker


@async_to_sync
async def _stall_then_queue_again(key: str, job_id: str) -> None:
    await _stalled_run(key, job_id)
    # Meanwhile recovery queues the work again.
    assert await background.asubmit(run_job_task, key=key, job_id=job_id)


def test_a_stalled_run_with_a_waiting_twin_ends_and_lets_the_twin_run() -> None:
    job_id = str(uuid.uuid4())
    key = job_key(job_id)
    _stall_then_queue_again(key, job_id)
    assert _statuses(key) == ["doing", "todo"]
    async_to_sync(retry_stalled_tasks)()
    assert _statuses(key) == ["failed", "todo"]

    async def fetch_twin() -> str | None:
        manager = background._procrastinate_app().job_manager
        fetched = await manager.fetch_job([JOBS], await manager.register_worker())
        return fetched.lock if fetched else None

    assert async_to_sync(fetch_twin)() == key  # no longer held back by the dead run


def test_a_stalled_run_alone_is_put_back() -> None:
    job_id = str(uuid.uuid4())
    key = job_key(job_id)
    async_to_sync(_stalled_run)(key, job_id)
    async_to_sync(retry_stalled_tasks)()
    assert _statuses(key) == ["todo"]


def test_a_run_a_live_worker_took_back_is_not_put_back_again() -> None:
    """Recovery passes overlap (one every second in bench/drills.py, each taking up to
    3 s there), so one may act on a stalled list another already handled. procrastinate's
    retry accepts any running row: the live worker's run went back in the queue and
    ran a second time beside the first, and the job was submitted to fal twice."""
    job_id = str(uuid.uuid4())
    key = job_key(job_id)

    async def stall_then_take_back() -> tuple[list[Any], int]:
        manager = background._procrastinate_app().job_manager
        await _stalled_run(key, job_id)
        # One pass reads the list; another pass puts the run back, and a live worker
        # takes it; then the first pass acts on what it read.
        stale = list(await manager.get_stalled_jobs(seconds_since_heartbeat=30))
        await retry_stalled_tasks()
        live = await manager.register_worker()
        fetched = await manager.fetch_job([JOBS], live)
        assert fetched is not None and fetched.lock == key
        return stale, live

    stale, live = async_to_sync(stall_then_take_back)()
    mine = [job for job in stale if job.lock == key]
    assert len(mine) == 1
    assert _put_back_stalled(mine[0].id, mine[0].worker_id) == ""
    with connection.cursor() as cursor:
        cursor.execute("SELECT status, worker_id FROM procrastinate_jobs WHERE lock = %s",
                       [key])
        assert cursor.fetchall() == [("doing", live)]


def test_a_task_end_the_database_refuses_is_given_up_not_waited_for() -> None:
    """A task's end that the database refuses (the row is no longer the worker's) is
    an answer, not an outage: waiting for it held the worker's slot for ever."""
    from procrastinate import exceptions, jobs

    job_id = str(uuid.uuid4())
    key = job_key(job_id)

    async def end_a_row_that_moved_on() -> BaseException:
        app = background._procrastinate_app()
        assert await background.asubmit(run_job_task, key=key, job_id=job_id)
        worker = await app.job_manager.register_worker()
        job = await app.job_manager.fetch_job([JOBS], worker)
        assert job is not None
        await app.job_manager.finish_job(job, status=jobs.Status.FAILED, delete_job=False)
        try:
            await app.job_manager.finish_job(job, status=jobs.Status.SUCCEEDED,
                                             delete_job=False)
        except exceptions.ConnectorException as error:
            refused = error
        else:
            raise AssertionError("finishing a finished row was accepted")
        steady = SteadyWorker(app=app, queues=[JOBS], wait=False)
        await asyncio.wait_for(steady._persist_job_status(
            job=job, status=jobs.Status.SUCCEEDED, retry_decision=None,
            context=None, job_result=None), timeout=30)
        return refused

    refused = async_to_sync(end_a_row_that_moved_on)()
    assert not is_outage(refused)
    assert _statuses(key) == ["failed"]



def test_no_run_is_put_back_until_heartbeats_could_beat_again_after_an_outage() -> None:
    """After the database was away, every live worker's heartbeat is as late as a dead
    one's: their runs (which resume on their own) must not be put back beside them."""
    job_id = str(uuid.uuid4())
    key = job_key(job_id)
    async_to_sync(_stalled_run)(key, job_id)
    health = background.database_health
    was = health.lost_at
    try:
        SteadyWorker(app=background._procrastinate_app(), queues=[JOBS], wait=False)._outage(
            "heartbeat", OperationalError("the database went away"))
        async_to_sync(retry_stalled_tasks)()
        assert _statuses(key) == ["doing"]
        with override_settings(BRENIA_STALLED_WORKER_TIMEOUT=0.2):
            wait_until(lambda: (health.steady_for() or 0) > 0.2, timeout=10,
                       what="the outage to be 0.2 s old")
            async_to_sync(retry_stalled_tasks)()
        assert _statuses(key) == ["todo"]
    finally:
        health.lost_at = was
