"""Reads for outgoing webhooks. A user only ever sees deliveries of their own jobs."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from generation.jobs.selectors import job_get_for_user
from generation.outbound.models import DeliveryStatus, WebhookDelivery


def webhook_deliveries_for_user(*, user: Any, job_id: Any = None) -> QuerySet[WebhookDelivery]:
    """The user's deliveries, newest first; a job that is not theirs is not found."""
    deliveries = WebhookDelivery.objects.filter(job__user=user)
    if job_id is not None:
        deliveries = deliveries.filter(job=job_get_for_user(user=user, job_id=job_id))
    return deliveries.order_by("-created_at")


def webhook_deliveries_pending() -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING)


async def webhook_delivery_request_id(*, delivery_id: Any) -> str:
    """The request id of the API call that created the delivery's job ("-" if none)."""
    request_id = await WebhookDelivery.objects.filter(pk=delivery_id).values_list(
        "job__request_id", flat=True).afirst()
    return request_id or "-"
