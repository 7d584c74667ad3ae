"""Scale-out profile: webhook deliveries as procrastinate tasks on the workers.

A task run makes one attempt (if due) and defers the next one with
``schedule_at``. Tasks carry no locks: duplicates (a redelivery, two workers
recovering at once) are harmless, because an attempt is claimed in the database
and a task with nothing to do ends (see ``generation.outbound.delivery``).
``generation.tasks`` imports this module so workers know the task.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.utils import timezone
from procrastinate.contrib.django import app

logger = logging.getLogger(__name__)

DELIVER_WEBHOOK = "generation.deliver_webhook"


# pass_context=True would hand us the worker's app, but its typing crashes mypy's
# incremental cache (1.18); deferring through the Django connector works as well.
@app.task(name=DELIVER_WEBHOOK, queue="jobs", pass_context=False)
async def deliver_webhook_task(delivery_id: str) -> None:
    from generation.outbound.delivery import webhook_delivery_attempt

    try:
        wait = await webhook_delivery_attempt(delivery_id=delivery_id)
    except Exception:
        # Left pending: the recovery pass defers it again once its claim expires.
        logger.exception("webhook delivery %s: attempt crashed", delivery_id)
        return
    if wait is not None:
        due = timezone.now() + timedelta(seconds=wait)
        await deliver_webhook_task.configure(schedule_at=due).defer_async(
            delivery_id=delivery_id)


async def recover_deliveries(worker_app: Any) -> int:
    """Defer every pending delivery no queued or running task carries; returns how many.

    Also records deliveries a dead process finished a job without recording.
    """
    from channels.db import database_sync_to_async
    from procrastinate.contrib.django.models import ProcrastinateJob

    from generation.outbound.selectors import webhook_deliveries_pending
    from generation.outbound.services import webhook_deliveries_create_missing

    await database_sync_to_async(webhook_deliveries_create_missing)()
    waiting = ProcrastinateJob.objects.filter(  # type: ignore[misc]
        task_name=DELIVER_WEBHOOK, status__in=("todo", "doing"))
    carried = {str(args.get("delivery_id")) async for args in
               waiting.values_list("args", flat=True)}
    deferred = 0
    now = timezone.now()
    async for delivery_id, due in webhook_deliveries_pending().values_list(
            "pk", "next_attempt_at"):
        if str(delivery_id) in carried:
            continue
        await worker_app.configure_task(
            DELIVER_WEBHOOK, schedule_at=max(due or now, now)).defer_async(
            delivery_id=str(delivery_id))
        deferred += 1
    if deferred:
        logger.info("re-queued %d pending webhook delivery(ies)", deferred)
    return deferred
