"""Job events: numbered per job, stored, then sent through the channel layer.

An event is recorded (with the next sequence number of its job) in the same
transaction as the state change it describes, and sent to the groups
``job.<id>`` and ``user.<id>`` only after that transaction commits. Clients that
missed some catch up from the stored events; a snapshot always tells the truth.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.utils import timezone

from generation.models import Job, JobEvent

logger = logging.getLogger(__name__)


def job_group(job_id: Any) -> str:
    return f"job.{job_id}"


def user_group(user_id: Any) -> str:
    return f"user.{user_id}"


def record_event(*, job: Job, type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Store the event with the job's next sequence number; returns the wire form."""
    with transaction.atomic():
        seq = _next_seq(job)
        now = timezone.now()
        JobEvent.objects.create(job_id=job.pk, seq=seq, type=type, payload=payload,
                                created_at=now)
    job.last_event_seq = seq
    return {"type": type, "job_id": str(job.pk), "seq": seq, "time": now.isoformat(),
            "user_id": job.user_id, **payload}


def _next_seq(job: Job) -> int:
    """Take the job's next sequence number: one UPDATE … RETURNING, the row stays locked
    until the caller's transaction ends (PostgreSQL and SQLite ≥ 3.35 both have it)."""
    table = connection.ops.quote_name(Job._meta.db_table)
    column = connection.ops.quote_name("last_event_seq")
    pk = Job._meta.pk
    assert pk is not None
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {column} = {column} + 1 "  # noqa: S608  # names, not input
            f"WHERE {connection.ops.quote_name(pk.column)} = %s RETURNING {column}",
            [pk.get_db_prep_value(job.pk, connection)])
        row = cursor.fetchone()
    if row is None:
        raise Job.DoesNotExist(f"job {job.pk} is gone")
    return int(row[0])


def _message(event: dict[str, Any]) -> dict[str, Any]:
    return {"type": "job.event", "event": {k: v for k, v in event.items() if k != "user_id"}}


async def apublish(event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = _message(event)
    task = asyncio.current_task()
    cancels_before = task.cancelling() if task is not None else 0
    try:
        await layer.group_send(job_group(event["job_id"]), message)
        await layer.group_send(user_group(event["user_id"]), message)
    except Exception:  # a missed event is recovered by the snapshot; never fail the job
        logger.warning("could not publish event %s of job %s", event["type"], event["job_id"],
                       exc_info=True)
    if task is not None and task.cancelling() > cancels_before:
        # redis-py writes through asyncio.wait_for, which on Python 3.11 drops a
        # cancellation that lands just as the write finishes (fixed in 3.12). A job
        # runner being shut down must still stop, so raise it again here.
        raise asyncio.CancelledError


def publish(event: dict[str, Any]) -> None:
    """Send from sync code; inside a sync_to_async thread this runs on the outer loop."""
    async_to_sync(apublish)(event)


def notify_job_event(*, job: Job, type: str, payload: dict[str, Any]) -> None:
    """Record now (inside the caller's transaction), send after commit."""
    event = record_event(job=job, type=type, payload=payload)
    transaction.on_commit(lambda: publish(event))


async def anotify_job_event(*, job: Job, type: str, payload: dict[str, Any]) -> None:
    """For async code outside any transaction: record, then send."""
    event = await database_sync_to_async(record_event)(job=job, type=type, payload=payload)
    await apublish(event)


TERMINAL_EVENT_TYPES = ("completed", "failed", "cancelled")


async def await_job_end(*, job_id: Any, seconds: float, ended: Any) -> None:
    """Return once the job has ended, or after ``seconds``; nothing is polled.

    Joins the job's group first, then asks ``ended()`` (an awaitable check of the
    database): an end committed in between is seen by one or the other.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    channel = await layer.new_channel()
    group = job_group(job_id)
    await layer.group_add(group, channel)
    try:
        if await ended():
            return
        async with asyncio.timeout(seconds):
            while True:
                message = await layer.receive(channel)
                if message.get("event", {}).get("type") in TERMINAL_EVENT_TYPES:
                    return
    except TimeoutError:
        return
    finally:
        await layer.group_discard(group, channel)
