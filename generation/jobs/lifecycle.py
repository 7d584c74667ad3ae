"""A job's end: the one service that moves a job to a terminal state, and its hooks.

``job_finish`` is the only code that writes a terminal status. In one transaction it
makes the conditional transition (so it succeeds once per job, whoever calls it: the
runner, a user's cancel, a fal webhook, a resumed run), creates the result images,
records the terminal event and calls every hook registered for "job finished". Hooks
run inside that transaction: what they write commits or rolls back with the job's
end, and they must put anything that talks to the network in
``transaction.on_commit`` (the background runner's ``submit`` is the usual way). The
event is published after commit.

Hooks are registered in ``AppConfig.ready()`` with ``@job_finished_hook``: outgoing
webhooks (``generation.outbound``), and later billing settlement and template runs.
An explicit list rather than a Django signal: the order is the registration order,
and a failing hook fails the transaction loudly instead of being swallowed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from generation.jobs.events import insert_event, publish, record_event, update_taking_seq
from generation.jobs.presenters import image_state
from generation.models import (
    TERMINAL_STATUSES,
    IllegalTransition,
    Image,
    Job,
    JobAttempt,
    JobStatus,
)

logger = logging.getLogger(__name__)

SIX_PLACES = Decimal("0.000001")

# Terminal status → the event type that reports it.
EVENT_TYPES: dict[str, str] = {
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.ERRORED: "failed",
    JobStatus.CANCELLED: "cancelled",
}


@dataclass(frozen=True)
class StoredImage:
    """A result image already saved to storage, to become an Image row."""

    name: str
    sha256: str
    width: int
    height: int
    format: str
    bytes: int
    seed: int | None = None


@dataclass(frozen=True)
class JobFinished:
    """What a hook is told: the job (in its terminal state) and its terminal event."""

    job: Job
    status: str
    event_type: str
    images: list[Image] = field(default_factory=list)


JobFinishedHook = Callable[[JobFinished], None]
_hooks: list[JobFinishedHook] = []


def job_finished_hook(hook: JobFinishedHook) -> JobFinishedHook:
    """Register ``hook`` to run inside every job's terminal transaction."""
    if hook not in _hooks:
        _hooks.append(hook)
    return hook


def job_finished_hook_remove(hook: JobFinishedHook) -> None:
    if hook in _hooks:
        _hooks.remove(hook)


def job_finish(*, job: Job, status: str, error_code: str = "", error_message: str = "",
               error_traceback: str = "", cost: Decimal | None = None,
               output: dict[str, Any] | None = None,
               images: list[StoredImage] | None = None,
               publish_on_commit: bool = True,
               attempt: JobAttempt | None = None) -> dict[str, Any]:
    """Move ``job`` to the terminal ``status``; returns the event (published on commit).

    An async caller outside any transaction (the runner) passes
    ``publish_on_commit=False`` and awaits ``apublish(event)`` itself once this
    returns (committed): the same order, without a hop back from the database thread.
    The runner also passes its provider ``attempt``, already ended in memory: it is
    saved in the same transaction, so the job's end and its attempt's commit together.

    Raises ``IllegalTransition`` if the job had already left the states it may end
    from: then nothing was written and no hook ran.
    """
    if status not in TERMINAL_STATUSES:
        raise ValueError(f"{status!r} is not a terminal status")
    with transaction.atomic():
        fields: dict[str, Any] = {}
        if status == JobStatus.COMPLETED:
            fields.update(cost=cost, progress=1.0, result=output or {})
        else:
            fields.update(error_code=error_code, error_message=error_message,
                          error_traceback=error_traceback)
        # The conditional transition also takes the terminal event's number: one
        # statement, and the row stays locked until the event is in.
        query, values = job._transition_update(status, fields)
        seq = update_taking_seq(query, values)
        if seq is None:
            raise IllegalTransition(f"job {job.pk}: cannot move to {status}")
        job._apply(values)
        if attempt is not None:
            attempt.save()
        rows: list[Image] = []
        if images:
            prompt = str(job.inputs.get("prompt", ""))[:5000]
            share = None if cost is None else (Decimal(cost) / len(images)).quantize(SIX_PLACES)
            rows = Image.objects.bulk_create([
                Image(job=job, index=index, file=image.name, sha256=image.sha256,
                      width=image.width, height=image.height, format=image.format,
                      bytes=image.bytes, seed=image.seed, model_slug=job.model_slug,
                      model_version=job.model_version, prompt=prompt, cost=share)
                for index, image in enumerate(images)])
        event_type = EVENT_TYPES[status]
        if status == JobStatus.COMPLETED:
            payload: dict[str, Any] = {
                "status": status, "images": [image_state(row, new=True) for row in rows],
                "text": (output or {}).get("text", ""), "cost": str(cost),
                "currency": job.currency}
        elif status == JobStatus.CANCELLED:
            payload = {"status": status}
        else:
            payload = {"status": status, "code": error_code, "message": error_message}
        event = insert_event(job=job, seq=seq, type=event_type, payload=payload)
        finished = JobFinished(job=job, status=status, event_type=event_type, images=rows)
        for hook in list(_hooks):
            hook(finished)
        if publish_on_commit:
            transaction.on_commit(lambda: publish(event))
    logger.info("job %s %s", job.pk, status)
    return event


def job_reopen(*, job: Job, reason: str) -> dict[str, Any]:
    """Bring a failed local parent job (a template run's stream) back to in progress.

    The one move backwards the engine allows, and only for a job without a model:
    such a job never called a provider and is charged nothing itself. Its steps are
    jobs of their own that never move backwards; a retry makes new ones. Raises
    ``IllegalTransition`` unless the job is a failed local job.
    """
    with transaction.atomic():
        updated = Job.objects.filter(
            pk=job.pk, model__isnull=True,
            status__in=(JobStatus.FAILED, JobStatus.ERRORED),
        ).update(status=JobStatus.IN_PROGRESS, error_code="", error_message="",
                 error_traceback="", finished_at=None, updated_at=timezone.now())
        if updated != 1:
            raise IllegalTransition(f"job {job.pk}: only a failed local job can be reopened")
        job.refresh_from_db()
        event = record_event(job=job, type="in_progress", payload={
            "status": job.status, "progress": job.progress, "logs": [reason]})
        transaction.on_commit(lambda: publish(event))
    return event
