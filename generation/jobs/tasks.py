"""procrastinate tasks: how the scale-out profile runs jobs on worker processes.

A worker runs many jobs at once on one event loop (``--concurrency``). Each Brenia
job is deferred with a ``lock`` of its id, so two workers never run the same job
at once, and a ``queueing_lock``, so it waits in the queue at most once. Every
task is idempotent: a job retried after its worker died re-attaches to its
provider request instead of submitting again.
"""

from __future__ import annotations

import logging
from typing import Any

from procrastinate import exceptions as procrastinate_exceptions
from procrastinate.contrib.django import app

logger = logging.getLogger(__name__)

RUN_JOB = "generation.run_job"


@app.task(name=RUN_JOB, queue="jobs", pass_context=False)
async def run_job_task(job_id: str) -> None:
    from generation.runner import run_job

    await run_job(job_id)


@app.task(name="generation.cancel_remote", queue="jobs", pass_context=False)
async def cancel_remote_task(job_id: str) -> None:
    from generation.models import Job
    from generation.providers import get_provider

    job = await Job.objects.select_related("model").filter(pk=job_id).afirst()
    if job is not None:
        await get_provider(job.model).cancel(job=job)


def defer_run_job(job_id: Any) -> bool:
    """Queue a job's run; False when it is already waiting in the queue."""
    key = f"brenia-job-{job_id}"
    try:
        run_job_task.configure(lock=key, queueing_lock=key).defer(job_id=str(job_id))
    except procrastinate_exceptions.AlreadyEnqueued:
        return False
    return True


async def adefer_run_job(job_id: Any, worker_app: Any) -> bool:
    key = f"brenia-job-{job_id}"
    try:
        await worker_app.configure_task(RUN_JOB, lock=key, queueing_lock=key).defer_async(
            job_id=str(job_id))
    except procrastinate_exceptions.AlreadyEnqueued:
        return False
    return True


async def recover(worker_app: Any, *, stalled_after: float) -> tuple[int, int]:
    """Put work of dead workers back in the queue; re-queue jobs nothing carries.

    Returns (stalled tasks retried, jobs re-queued). Safe to run from every worker
    at once: a retry of an already-retried task fails harmlessly, and re-queueing
    is deduplicated by the queueing lock.
    """
    from procrastinate.contrib.django.models import ProcrastinateJob

    from generation.models import ACTIVE_STATUSES, Job

    retried = 0
    for stalled in await worker_app.job_manager.get_stalled_jobs(
            seconds_since_heartbeat=stalled_after):
        try:
            await worker_app.job_manager.retry_job(stalled)
            retried += 1
        except Exception:  # another worker got there first
            logger.debug("stalled task %s already handled", stalled.id, exc_info=True)
    waiting = ProcrastinateJob.objects.filter(  # type: ignore[misc]
        task_name=RUN_JOB, status__in=("todo", "doing"))
    carried = {str(args.get("job_id")) async for args in waiting.values_list("args", flat=True)}
    requeued = 0
    async for job_id in Job.objects.filter(status__in=ACTIVE_STATUSES, parent__isnull=True)\
            .values_list("pk", flat=True):
        if str(job_id) not in carried and await adefer_run_job(job_id, worker_app):
            requeued += 1
    if retried or requeued:
        logger.info("recovered %d stalled task(s), re-queued %d job(s)", retried, requeued)
    await recover_deliveries(worker_app)
    return retried, requeued


from generation.outbound.tasks import recover_deliveries  # noqa: E402  (registers its task)
