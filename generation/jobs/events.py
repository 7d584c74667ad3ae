"""Job events: numbered per job, stored, then sent through the channel layer.

An event is recorded (with the next sequence number of its job) in the same
transaction as the state change it describes, and sent to the groups
``job.<id>`` and ``user.<id>`` only after that transaction commits. Clients that
missed some catch up from the stored events; a snapshot always tells the truth.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connections, transaction
from django.db.models import F, QuerySet
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from generation.models import IllegalTransition, Job, JobEvent

logger = logging.getLogger(__name__)


def job_group(job_id: Any) -> str:
    return f"job.{job_id}"


def user_group(user_id: Any) -> str:
    return f"user.{user_id}"


def record_event(*, job: Job, type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Store the event with the job's next sequence number; returns the wire form."""
    # No savepoint of its own: if the insert fails, the caller's transaction (which
    # took the number) cannot commit either, so a number is never skipped.
    with transaction.atomic(savepoint=False):
        return insert_event(job=job, seq=_next_seq(job), type=type, payload=payload)


def insert_event(*, job: Job, seq: int, type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Store the event numbered ``seq``, a number taken (in the caller's still open
    transaction) by ``update_taking_seq`` or ``_next_seq``; returns the wire form."""
    now = timezone.now()
    JobEvent.objects.create(job_id=job.pk, seq=seq, type=type, payload=payload,
                            created_at=now)
    job.last_event_seq = seq
    return {"type": type, "job_id": str(job.pk), "seq": seq, "time": now.isoformat(),
            "user_id": job.user_id, **payload}


def update_taking_seq(query: QuerySet[Job], values: dict[str, Any]) -> int | None:
    """Apply ``values`` to the one job row ``query`` selects and take that job's next
    event number in the same statement (UPDATE … SET last_event_seq = last_event_seq + 1
    … RETURNING); None if ``query`` matched no row (nothing was written).

    The row stays locked until the caller's transaction ends, so the caller inserts its
    event (``insert_event``) in that transaction: numbers stay gap-free and ordered.
    """
    update = cast(UpdateQuery, query.query.chain(UpdateQuery))
    update.add_update_values({**values, "last_event_seq": F("last_event_seq") + 1})
    update.annotations = {}
    db = query.db
    sql, params = update.get_compiler(db).as_sql()
    conn = connections[db]
    with conn.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {conn.ops.quote_name('last_event_seq')}", params)
        rows = cursor.fetchall()
    if not rows:
        return None
    if len(rows) != 1:  # pragma: no cover  # callers select by primary key
        raise ValueError("update_taking_seq must select exactly one job")
    return int(rows[0][0])


def record_update_event(*, job: Job, query: QuerySet[Job], values: dict[str, Any], type: str,
                        payload: dict[str, Any]) -> dict[str, Any]:
    """Write ``values`` to the job's row and record the event that reports it, in one
    transaction of two statements (the UPDATE takes the event's number). ``query``
    names the states the job may be in (e.g. ``Job._transition_update``); if it matches
    nothing, ``IllegalTransition`` is raised and nothing is written."""
    with transaction.atomic():
        seq = update_taking_seq(query, values)
        if seq is None:
            raise IllegalTransition(f"job {job.pk} was not in a state for {type}")
        for key, value in values.items():
            setattr(job, key, value)
        return insert_event(job=job, seq=seq, type=type, payload=payload)


def _next_seq(job: Job) -> int:
    """Take the job's next sequence number: one UPDATE … RETURNING, the row stays locked
    until the caller's transaction ends (PostgreSQL and SQLite ≥ 3.35 both have it)."""
    seq = update_taking_seq(Job.objects.filter(pk=job.pk), {})
    if seq is None:
        raise Job.DoesNotExist(f"job {job.pk} is gone")
    return seq


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


async def anotify_job_update(*, job: Job, query: QuerySet[Job], values: dict[str, Any],
                             type: str, payload: dict[str, Any]) -> None:
    """For async code outside any transaction: ``record_update_event`` (one trip to the
    database thread), then send. Raises ``IllegalTransition`` as it does."""
    event = await database_sync_to_async(record_update_event)(
        job=job, query=query, values=values, type=type, payload=payload)
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
