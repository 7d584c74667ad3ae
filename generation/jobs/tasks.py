"""The job engine's background tasks, registered with ``brenia.background``.

A job run is submitted with its id as the key: one run per job at a time, waiting
in the queue at most once. Every task is idempotent: a run retried after its worker
died re-attaches to its provider request instead of submitting again.
"""

from __future__ import annotations

import logging
from typing import Any

from brenia import background
from generation.jobs.fal_webhooks import fal_webhook_apply
from generation.jobs.runner import run_job
from generation.models import ACTIVE_STATUSES, Job
from generation.providers import get_provider

logger = logging.getLogger(__name__)


def job_key(job_id: Any) -> str:
    return f"brenia-job-{job_id}"


@background.task("generation.run_job", queue=background.JOBS)
async def run_job_task(*, job_id: str) -> None:
    await run_job(job_id)


@background.task("generation.cancel_remote", queue=background.JOBS)
async def cancel_remote_task(*, job_id: str) -> None:
    """Tell the provider a cancelled job's request is no longer wanted."""
    job = await Job.objects.select_related("model").filter(pk=job_id).afirst()
    if job is not None and job.model is not None and job.provider_request_id:
        await get_provider(job.model).cancel(job=job)


@background.task("generation.apply_fal_webhook", queue=background.JOBS)
async def apply_fal_webhook_task(*, event: dict[str, Any]) -> None:
    """Finish a job from a verified fal completion (downloads its images)."""
    await fal_webhook_apply(event=event)


def job_run_submit(job_id: Any) -> bool:
    """Run the job in the background (call after the commit that queued it)."""
    return background.submit(run_job_task, key=job_key(job_id), job_id=str(job_id))


def job_cancel_dispatch(job_id: Any) -> None:
    """After a cancel commits: stop a local run and tell the provider."""
    background.abort(job_key(job_id))
    background.submit(cancel_remote_task, job_id=str(job_id))


@background.recovery("generation.resume_jobs")
async def resume_jobs() -> None:
    """Put back every unfinished job that no queued or running task carries."""
    carried = await background.carried(run_job_task, arg="job_id")
    resumed = 0
    async for job_id in Job.objects.filter(status__in=ACTIVE_STATUSES, model__isnull=False)\
            .values_list("pk", flat=True):
        if str(job_id) not in carried and await background.asubmit(
                run_job_task, key=job_key(job_id), job_id=str(job_id)):
            resumed += 1
    if resumed:
        logger.info("resumed %d unfinished job(s)", resumed)
