"""The account's webhook routes: the signing secret, its rotation, the delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema

from brenia.accounts.auth import admin_auth
from brenia.schemas import ErrorOut, auth_user
from generation.outbound import selectors, signing
from generation.outbound.models import WebhookDelivery

router = Router(tags=["webhooks"])
# Every operation may also answer 401 and 500, every POST 403 (a browser session
# without its CSRF token) and 413 (a body over DATA_UPLOAD_MAX_MEMORY_SIZE).


class WebhookSecretOut(Schema):
    secret: str
    created_at: datetime
    rotated_at: datetime | None


class WebhookDeliveryOut(Schema):
    id: str
    job_id: str
    event_type: str
    url: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


def _delivery_out(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": str(delivery.pk), "job_id": str(delivery.job_id),
        "event_type": delivery.event_type, "url": delivery.url, "status": delivery.status,
        "attempts": delivery.attempts, "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error, "next_attempt_at": delivery.next_attempt_at,
        "delivered_at": delivery.delivered_at, "created_at": delivery.created_at,
    }


# The secret and its rotation are account management ("admin"): whoever holds the
# secret can sign deliveries the user's receiver would trust.
@router.get("/account/webhook-secret", auth=admin_auth,
            response={200: WebhookSecretOut, 401: ErrorOut, 403: ErrorOut, 500: ErrorOut},
            summary="Your webhook signing secret (made on first request)")
def get_webhook_secret(request: HttpRequest) -> Any:
    return signing.webhook_secret_get_or_create(user_id=auth_user(request).pk)


@router.post("/account/webhook-secret/rotate", auth=admin_auth,
             response={200: WebhookSecretOut, 401: ErrorOut, 403: ErrorOut, 413: ErrorOut,
                       500: ErrorOut},
             summary="Replace your webhook secret; later deliveries use the new one")
def rotate_webhook_secret(request: HttpRequest) -> Any:
    return signing.webhook_secret_rotate(user_id=auth_user(request).pk)


@router.get("/account/webhook-deliveries",
            response={200: list[WebhookDeliveryOut], 401: ErrorOut, 404: ErrorOut,
                      422: ErrorOut, 500: ErrorOut},
            summary="Your latest webhook deliveries, optionally of one job")
def list_webhook_deliveries(request: HttpRequest, job: str | None = None,
                            limit: int = Query(50, ge=1, le=100)) -> Any:
    deliveries = selectors.webhook_deliveries_for_user(user=auth_user(request), job_id=job)
    return [_delivery_out(delivery) for delivery in deliveries[:limit]]
