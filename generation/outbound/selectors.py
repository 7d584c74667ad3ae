"""Reads for outgoing webhooks. A user only ever sees deliveries of their own jobs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet

from generation.models import TERMINAL_STATUSES, Job
from generation.outbound.models import DeliveryStatus, WebhookDelivery
from generation.selectors import job_get_for_user


def webhook_deliveries_for_user(*, user: Any, job_id: Any = None) -> QuerySet[WebhookDelivery]:
    """The user's deliveries, newest first; a job that is not theirs is not found."""
    deliveries = WebhookDelivery.objects.filter(job__user=user)
    if job_id is not None:
        deliveries = deliveries.filter(job=job_get_for_user(user=user, job_id=job_id))
    return deliveries.order_by("-created_at")


def webhook_deliveries_pending() -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING)


def jobs_missing_webhook_delivery(*, finished_after: datetime) -> QuerySet[Job]:
    """Finished jobs that name a webhook URL but have no delivery recorded."""
    return (
        Job.objects.filter(status__in=TERMINAL_STATUSES, finished_at__gte=finished_after,
                           # created_at is indexed; no job lives a day.
                           created_at__gte=finished_after - timedelta(days=1))
        .exclude(webhook_url="")
        .filter(~Exists(WebhookDelivery.objects.filter(job=OuterRef("pk"))))
    )
