"""What the job engine reports to ``brenia.metrics``: each job's end, through the one
job-finished hook, and provider errors by class, for the runner.

The series live in ``brenia.metrics``; this module knows jobs and provider errors, which
Brenia's core does not. Registered in ``GenerationConfig.ready()``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import partial
from typing import Any

from django.db import transaction

from brenia import metrics
from generation.jobs.lifecycle import JobFinished, job_finished_hook
from generation.providers.base import (
    MalformedResponse,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)

LOCAL = "local"  # the provider label of a job Brenia does itself (no model)


@job_finished_hook
def count_finished_job(finished: JobFinished) -> None:
    """Counted once the job's end commits: a rolled-back end never happened."""
    job = finished.job
    provider = job.model.provider if job.model is not None else LOCAL
    transaction.on_commit(partial(
        metrics.job_finished, model=job.model_slug or LOCAL, provider=provider,
        status=finished.status, created_at=job.created_at,
        # A job seen running only at its end (a fast provider) ran from its submission.
        started_at=job.started_at or job.submitted_at, finished_at=job.finished_at,
        cost=job.cost, currency=job.currency))


def error_class(error: BaseException | None) -> str:
    """The base class of a provider error, as a label; ``timeout`` when the job's own
    time ran out (no error object), ``internal`` for anything that is Brenia's fault."""
    if error is None or isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, MalformedResponse):
        return "malformed"
    if isinstance(error, TransientProviderError):
        return "transient"
    if isinstance(error, PermanentProviderError):
        return "permanent"
    if isinstance(error, ProviderError):
        return "permanent" if error.permanent else "transient"
    return "internal"


def provider_error(*, provider: str, error: BaseException | None) -> None:
    metrics.provider_error(provider=provider, error_class=error_class(error))


def in_flight() -> AbstractContextManager[Any]:
    """Counts the job in ``brenia_jobs_in_flight`` while the block runs."""
    return metrics.JOBS_IN_FLIGHT.track_inprogress()
