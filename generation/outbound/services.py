"""Writes for outgoing webhooks: secrets, deliveries, and the hook on finished jobs.

``webhook_on_job_finished`` runs inside every job's terminal transaction
(``generation.jobs.lifecycle``): it records the delivery there, so a job never ends
without its delivery row, and hands it to the background runner after commit.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from brenia import background
from generation.jobs.lifecycle import JobFinished, job_finished_hook
from generation.jobs.presenters import job_state
from generation.models import Image, Job
from generation.outbound.models import DeliveryStatus, WebhookDelivery
from generation.outbound.tasks import deliver_webhook_task

logger = logging.getLogger(__name__)

# Terminal job event (generation.jobs.events) → webhook event type.
EVENT_TYPES: dict[str, str] = {
    "completed": "job.completed",
    "failed": "job.failed",
    "cancelled": "job.cancelled",
}


def webhook_delivery_create(*, job: Job, event_type: str,
                            images: list[Image] | None = None) -> WebhookDelivery | None:
    """Record the delivery of a finished job's event; None if there is nothing to send.

    Nothing to send: the job names no webhook URL, or this event of it was recorded
    already. The payload is the job's final state, fixed now.
    """
    if not job.webhook_url or event_type not in EVENT_TYPES:
        return None
    type_ = EVENT_TYPES[event_type]
    try:
        with transaction.atomic():
            return WebhookDelivery.objects.create(
                job=job, url=job.webhook_url, event_type=type_,
                payload={"type": type_, "job": job_state(job, images)})
    except IntegrityError:
        return None


@job_finished_hook
def webhook_on_job_finished(finished: JobFinished) -> None:
    """Inside the terminal transaction: record the delivery, send it after commit."""
    delivery = webhook_delivery_create(job=finished.job, event_type=finished.event_type,
                                       images=finished.images)
    if delivery is not None:
        transaction.on_commit(lambda: webhook_delivery_dispatch(delivery_id=delivery.pk))


def webhook_delivery_redeliver(*, delivery: WebhookDelivery) -> None:
    """Send a delivery again from a first attempt, whatever became of it before."""
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=timezone.now(),
            delivered_at=None, last_status_code=None, last_error="")
        transaction.on_commit(lambda: webhook_delivery_dispatch(delivery_id=delivery.pk))


def webhook_delivery_dispatch(*, delivery_id: Any) -> None:
    """Hand a pending delivery to the background runner (call after commit)."""
    background.submit(deliver_webhook_task, delivery_id=str(delivery_id))
