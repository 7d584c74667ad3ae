"""Outgoing webhook deliveries on the background runner's ``webhooks`` queue.

A task run makes one attempt (if due) and, when another is due later, submits
itself again for that time. Runs carry no key: duplicates (a redelivery, a recovery
pass) are harmless, because an attempt is claimed in the database and a run with
nothing to do ends (see ``generation.outbound.delivery``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from brenia import background
from brenia.logs import request_id_var
from generation.outbound.delivery import webhook_delivery_attempt
from generation.outbound.selectors import webhook_deliveries_pending, webhook_delivery_request_id

logger = logging.getLogger(__name__)


@background.task("outbound.deliver_webhook", queue=background.WEBHOOKS)
async def deliver_webhook_task(*, delivery_id: str) -> None:
    # An attempt runs later than the API call that made its job, maybe in a worker
    # process: it logs under that call's request id, so one id traces both.
    token = request_id_var.set("-")
    try:
        request_id_var.set(await webhook_delivery_request_id(delivery_id=delivery_id))
        wait = await webhook_delivery_attempt(delivery_id=delivery_id)
    except Exception:
        # Left pending: the recovery step submits it again once its claim expires.
        logger.exception("webhook delivery %s: attempt crashed", delivery_id)
        return
    finally:
        request_id_var.reset(token)
    if wait is not None:
        await background.asubmit(deliver_webhook_task,
                                 at=timezone.now() + timedelta(seconds=wait),
                                 delivery_id=delivery_id)


@background.recovery("outbound.resume_deliveries")
async def resume_deliveries() -> None:
    """Submit every pending delivery that no waiting or running task carries."""
    carried = await background.carried(deliver_webhook_task, arg="delivery_id")
    now = timezone.now()
    resumed = 0
    async for delivery_id, due in webhook_deliveries_pending().values_list(
            "pk", "next_attempt_at"):
        if str(delivery_id) in carried:
            continue
        await background.asubmit(deliver_webhook_task, at=max(due or now, now),
                                 delivery_id=str(delivery_id))
        resumed += 1
    if resumed:
        logger.info("resumed %d pending webhook delivery(ies)", resumed)
