"""A task left running by a dead worker while a run of the same key already waits.

The queueing lock allows one waiting row per key, so the stalled row cannot be put
back; it must end, or its lock would hold the waiting run back for ever (found by
bench/drills.py kill: jobs that never finished)."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from brenia import background
from brenia.background import JOBS, retry_stalled_tasks
from generation.jobs.tasks import job_key, run_job_task
from tests.conftest import SCALEOUT

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


@async_to_sync
async def _stall_then_queue_again(key: str, job_id: str) -> int:
    manager = background._procrastinate_app().job_manager
    assert await background.asubmit(run_job_task, key=key, job_id=job_id)
    worker = await manager.register_worker()
    fetched = await manager.fetch_job([JOBS], worker)
    assert fetched is not None and fetched.lock == key
    # The worker dies: its heartbeat stops. Meanwhile recovery queues the work again.
    assert await background.asubmit(run_job_task, key=key, job_id=job_id)
    return worker


def test_a_stalled_run_with_a_waiting_twin_ends_and_lets_the_twin_run() -> None:
    job_id = str(uuid.uuid4())
    key = job_key(job_id)
    worker = _stall_then_queue_again(key, job_id)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE procrastinate_workers SET last_heartbeat = now() - "
                       "interval '1 hour' WHERE id = %s", [worker])
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

    async def stall() -> int:
        manager = background._procrastinate_app().job_manager
        assert await background.asubmit(run_job_task, key=key, job_id=job_id)
        worker = await manager.register_worker()
        assert await manager.fetch_job([JOBS], worker) is not None
        return worker

    worker = async_to_sync(stall)()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE procrastinate_workers SET last_heartbeat = now() - "
                       "interval '1 hour' WHERE id = %s", [worker])
    async_to_sync(retry_stalled_tasks)()
    assert _statuses(key) == ["todo"]
