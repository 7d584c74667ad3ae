"""Writes for outgoing webhooks: secrets, deliveries, and the hook on finished jobs.

``on_job_finished`` is called by ``generation.events.apublish`` after the commit of
every terminal event. It records the delivery (once per job and event type) and
hands it to the execution profile's scheduler. Nothing here may break job
processing: the hook logs and swallows its own failures.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from brenia.urlguard import check_public_url
from generation.models import Job, JobStatus
from generation.outbound.models import DeliveryStatus, WebhookDelivery, WebhookSecret
from generation.outbound.selectors import jobs_missing_webhook_delivery
from generation.presenters import job_state

logger = logging.getLogger(__name__)

# Terminal job event (generation.events) → webhook event type.
EVENT_TYPES: dict[str, str] = {
    "completed": "job.completed",
    "failed": "job.failed",
    "cancelled": "job.cancelled",
}
# Job status → the terminal event that reports it (for rows the hook never made).
STATUS_EVENTS: dict[str, str] = {
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.ERRORED: "failed",
    JobStatus.CANCELLED: "cancelled",
}


def webhook_url_check(*, url: str) -> str:
    """The guard for webhook targets: public addresses only, unless allow-listed.

    Raises ``BlockedURL`` naming the field ``webhook_url``. Resolves the host, so
    async callers run it in a thread.
    """
    return check_public_url(url, field="webhook_url",
                            allowed_hosts=frozenset(settings.BRENIA_WEBHOOK_ALLOWED_HOSTS))


def _new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def webhook_secret_get_or_create(*, user_id: Any) -> WebhookSecret:
    """The user's signing secret, made on first need."""
    secret, _ = WebhookSecret.objects.get_or_create(user_id=user_id,
                                                    defaults={"secret": _new_secret()})
    return secret


def webhook_secret_rotate(*, user_id: Any) -> WebhookSecret:
    """Replace the user's secret; every later attempt, retries included, uses the new one."""
    now = timezone.now()
    secret, _ = WebhookSecret.objects.update_or_create(
        user_id=user_id, defaults={"secret": _new_secret(), "rotated_at": now})
    return secret


def webhook_delivery_create(*, job_id: Any, event_type: str) -> WebhookDelivery | None:
    """Record the delivery of a finished job's event; None if there is nothing to send.

    Nothing to send: the job names no webhook URL, or this event of it was recorded
    already (a repeated terminal event must not deliver twice). The payload is read
    from the database now, so it carries the job's final state.
    """
    job = Job.objects.filter(pk=job_id).exclude(webhook_url="").first()
    if job is None or event_type not in EVENT_TYPES:
        return None
    type_ = EVENT_TYPES[event_type]
    try:
        with transaction.atomic():
            return WebhookDelivery.objects.create(
                job=job, url=job.webhook_url, event_type=type_,
                payload={"type": type_, "job": job_state(job)})
    except IntegrityError:
        return None


def webhook_deliveries_create_missing() -> list[WebhookDelivery]:
    """Deliveries for recently finished jobs whose process died before recording them."""
    made = []
    for job in jobs_missing_webhook_delivery(finished_after=timezone.now() - timedelta(hours=1)):
        delivery = webhook_delivery_create(job_id=job.pk, event_type=STATUS_EVENTS[job.status])
        if delivery is not None:
            made.append(delivery)
    if made:
        logger.info("recorded %d webhook delivery(ies) a dead process left out", len(made))
    return made


def webhook_delivery_redeliver(*, delivery: WebhookDelivery) -> None:
    """Send a delivery again from a first attempt, whatever became of it before."""
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=timezone.now(),
            delivered_at=None, last_status_code=None, last_error="")
        transaction.on_commit(lambda: webhook_delivery_dispatch(delivery_id=delivery.pk))


def webhook_delivery_dispatch(*, delivery_id: Any) -> None:
    """Hand a pending delivery to whatever runs work in this profile (call after commit)."""
    if settings.BRENIA_JOBS == "procrastinate":
        from generation.outbound.tasks import deliver_webhook_task

        deliver_webhook_task.defer(delivery_id=str(delivery_id))
    else:
        _spawn_in_process(str(delivery_id))


async def awebhook_delivery_dispatch(*, delivery_id: Any) -> None:
    if settings.BRENIA_JOBS == "procrastinate":
        from generation.outbound.tasks import deliver_webhook_task

        await deliver_webhook_task.defer_async(delivery_id=str(delivery_id))
    else:
        _spawn_in_process(str(delivery_id))


def _spawn_in_process(delivery_id: str) -> None:
    from generation.execution import executor
    from generation.outbound.delivery import deliver_in_process

    executor.spawn(lambda: deliver_in_process(delivery_id), name=f"webhook-{delivery_id}")


async def on_job_finished(*, job_id: Any, event_type: str) -> None:
    """The hook for a committed terminal event: record and schedule its webhook. Never raises."""
    try:
        # Plain sync_to_async: via ``publish`` this runs in a request's own thread,
        # whose connection must not be closed under it (database_sync_to_async would).
        delivery = await sync_to_async(webhook_delivery_create)(
            job_id=job_id, event_type=event_type)
        if delivery is not None:
            await awebhook_delivery_dispatch(delivery_id=delivery.pk)
    except Exception:
        # The row, if made, is pending: recovery (worker pass, process start) sends it.
        logger.exception("could not schedule the webhook of job %s (%s)", job_id, event_type)
