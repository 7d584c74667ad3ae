"""One signed attempt of a webhook delivery, and the in-process loop around it.

Both execution profiles drive a delivery with :func:`webhook_delivery_attempt`,
which makes the next attempt if one is due and says when to look again. It is
safe to call from several places at once: an attempt is claimed with one
conditional UPDATE (status, attempt count, due time), so at most one caller sends
it, and the claim pushes the due time past the attempt's own timeout, so an
attempt whose process died is made again later. Delivery is at least once;
receivers dedupe on ``delivery_id``.

Every attempt goes through Brenia's pinned client (``brenia.safe_http``): the
receiver's addresses are checked as it is connected to (its DNS may have changed
since the job was created), only the start of its answer is read, and redirects
are not followed.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from brenia import metrics
from brenia.retries import Backoff
from brenia.safe_http import ResponseTooSlow, SafeClient
from brenia.urlguard import UNRESOLVED, BlockedURL, webhook_allowed_hosts
from generation.outbound.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
)
from generation.outbound.signing import signature_header, webhook_secret_get_or_create

logger = logging.getLogger(__name__)

BACKOFF_CAP = 3600.0
ERROR_EXCERPT = 300
USER_AGENT = "Brenia-Webhooks/1"


def lease_seconds() -> float:
    """How long a claimed attempt may take before another caller may make it again."""
    return float(settings.BRENIA_WEBHOOK_TIMEOUT) + 30.0


def webhook_backoff() -> Backoff:
    """Brenia's one retry policy with the webhook settings; a delivery does not sleep
    between attempts but stores the next one's due time, so it uses only ``delay``."""
    return Backoff(attempts=settings.BRENIA_WEBHOOK_MAX_ATTEMPTS,
                   base=float(settings.BRENIA_WEBHOOK_BACKOFF), cap=BACKOFF_CAP)


@dataclass(frozen=True)
class Outcome:
    status_code: int | None = None
    error: str = ""
    permanent: bool = False  # no later attempt can succeed (a blocked address)
    duration_ms: int = 0

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def webhook_delivery_attempt(*, delivery_id: Any) -> float | None:
    """Make the delivery's next attempt if it is due.

    Returns the seconds after which the caller should call again (a retry is
    scheduled, or the next attempt is not due yet), or None when this caller has
    nothing more to do: the delivery is settled, gone, or another caller took it.
    """
    delivery = await WebhookDelivery.objects.select_related("job").filter(
        pk=delivery_id).afirst()
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return None
    now = timezone.now()
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
        return (delivery.next_attempt_at - now).total_seconds()
    number = delivery.attempts + 1
    claimed = await WebhookDelivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.PENDING, attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
    ).aupdate(attempts=number, next_attempt_at=now + timedelta(seconds=lease_seconds()))
    if not claimed:
        return None
    outcome = await _send(delivery, number)
    return await database_sync_to_async(_record)(delivery=delivery, number=number,
                                                 outcome=outcome)


async def _send(delivery: WebhookDelivery, number: int) -> Outcome:
    secret = await database_sync_to_async(webhook_secret_get_or_create)(
        user_id=delivery.job.user_id)
    body = json.dumps({**delivery.payload, "delivery_id": str(delivery.pk), "attempt": number},
                      separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Brenia-Event": delivery.event_type,
        "Brenia-Delivery": str(delivery.pk),
        "Brenia-Attempt": str(number),
        "Brenia-Signature": signature_header(secret=secret.secret, timestamp=int(time.time()),
                                             body=body),
    }
    timeout = float(settings.BRENIA_WEBHOOK_TIMEOUT)
    started = time.monotonic()
    try:
        # The deadline bounds the whole exchange, so a receiver that trickles bytes
        # cannot outlast the attempt's claim. The address is checked as it is connected
        # to (its DNS may have changed since the job was created).
        async with SafeClient(trusted_hosts=webhook_allowed_hosts(), timeout=timeout) as client:
            response = await client.fetch("POST", delivery.url, field="webhook_url",
                                          content=body, headers=headers,
                                          max_bytes=ERROR_EXCERPT, deadline=timeout, cut=True)
    except BlockedURL as exc:
        problem = exc.errors[0].problem if exc.errors else "is not allowed"
        # A name that does not resolve now may later (a DNS outage): retried.
        return Outcome(error=f"Not sent: the webhook URL {problem}.",
                       permanent=problem != UNRESOLVED)
    except (httpx.TimeoutException, ResponseTooSlow):
        return Outcome(error=f"No answer within {timeout:g} s.", duration_ms=_ms(started))
    except httpx.HTTPError as exc:
        return Outcome(error=f"Could not connect: {exc.__class__.__name__}: {exc}"[:2000],
                       duration_ms=_ms(started))
    excerpt = response.body[:ERROR_EXCERPT].decode("utf-8", "replace").strip()
    code = response.status_code
    error = ""
    if not 200 <= code < 300:
        note = " (redirects are not followed)" if 300 <= code < 400 else ""
        error = f"HTTP {code}{note}" + (f": {excerpt}" if excerpt else "")
    return Outcome(status_code=code, error=error, duration_ms=_ms(started))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _record(*, delivery: WebhookDelivery, number: int, outcome: Outcome) -> float | None:
    """Log the attempt and settle or reschedule; returns the delay to the next attempt."""
    now = timezone.now()
    delay: float | None = None
    fields: dict[str, Any] = {"last_status_code": outcome.status_code,
                              "last_error": outcome.error}
    if outcome.delivered:
        fields.update(status=DeliveryStatus.DELIVERED, delivered_at=now, next_attempt_at=None)
    elif outcome.permanent or number >= settings.BRENIA_WEBHOOK_MAX_ATTEMPTS:
        fields.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    else:
        delay = webhook_backoff().delay(failures=number)
        fields["next_attempt_at"] = now + timedelta(seconds=delay)
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery, number=number, status_code=outcome.status_code,
            error=outcome.error, duration_ms=outcome.duration_ms, created_at=now)
        # Conditional: a redelivery started meanwhile owns the row now.
        settled = WebhookDelivery.objects.filter(
            pk=delivery.pk, status=DeliveryStatus.PENDING, attempts=number).update(**fields)
    if not settled:
        return None
    metrics.webhook_attempt(outcome=str(fields.get("status", "retry")))
    if delay is None:
        logger.info("webhook %s of job %s %s after %d attempt(s)%s", delivery.event_type,
                    delivery.job_id, fields["status"], number,
                    f": {outcome.error}" if outcome.error else "")
    else:
        logger.warning("webhook %s of job %s: attempt %d failed (%s); retrying in %.1f s",
                       delivery.event_type, delivery.job_id, number, outcome.error, delay)
    return delay
