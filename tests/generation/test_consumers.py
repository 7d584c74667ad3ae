"""The live-updates WebSocket: authorization, snapshot, ordering, catch-up."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from brenia.asgi import application
from generation.jobs.events import anotify_job_event
from generation.models import Job, JobStatus
from tests.conftest import Persona
from tests.generation.factories import make_job

pytestmark = pytest.mark.django_db(transaction=True)


def communicator(path: str, persona: Persona | None = None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if persona is not None:
        headers.append((b"authorization", f"Bearer {persona.key}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def connect(path: str, persona: Persona | None) -> WebsocketCommunicator:
    ws = communicator(path, persona)
    connected, _ = await ws.connect()
    assert connected
    return ws


async def test_anonymous_connection_is_closed_with_4401(owner: Persona) -> None:
    ws = await connect("/ws/jobs/", None)
    assert await ws.receive_output() == {"type": "websocket.close", "code": 4401}


async def test_following_another_users_job_is_refused_as_not_found(owner: Persona,
                                                                   outsider: Persona) -> None:
    job = await database_sync_to_async(make_job)(owner)
    ws = await connect(f"/ws/jobs/?job={job.pk}", outsider)
    assert (await ws.receive_json_from())["code"] == "job_not_found"
    assert await ws.receive_output() == {"type": "websocket.close", "code": 4404}
    missing = await connect("/ws/jobs/?job=00000000-0000-0000-0000-000000000000", outsider)
    assert (await missing.receive_json_from())["code"] == "job_not_found"
    assert await missing.receive_output() == {"type": "websocket.close", "code": 4404}


async def test_snapshot_then_events_in_order(owner: Persona) -> None:
    job = await database_sync_to_async(make_job)(owner, status=JobStatus.SUBMITTED)
    ws = await connect(f"/ws/jobs/?job={job.pk}", owner)
    snapshot = await ws.receive_json_from()
    assert snapshot["type"] == "snapshot"
    assert snapshot["job"]["status"] == "submitted"
    for position in (3, 2, 1):
        await anotify_job_event(job=job, type="queued", payload={"position": position})
    received = [await ws.receive_json_from() for _ in range(3)]
    assert [e["position"] for e in received] == [3, 2, 1]
    assert [e["seq"] for e in received] == [1, 2, 3]
    assert all(e["job_id"] == str(job.pk) for e in received)
    await ws.disconnect()


async def test_user_stream_carries_only_the_users_own_jobs(owner: Persona,
                                                          outsider: Persona) -> None:
    mine = await database_sync_to_async(make_job)(owner)
    theirs = await database_sync_to_async(make_job)(outsider)
    ws = await connect("/ws/jobs/", owner)
    snapshot = await ws.receive_json_from()
    assert [j["id"] for j in snapshot["jobs"]] == [str(mine.pk)]
    await anotify_job_event(job=theirs, type="queued", payload={"position": 9})
    await anotify_job_event(job=mine, type="queued", payload={"position": 1})
    event = await ws.receive_json_from()
    assert event["job_id"] == str(mine.pk)
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_reconnect_with_last_seq_catches_up_then_snapshots(owner: Persona) -> None:
    job = await database_sync_to_async(make_job)(owner, status=JobStatus.SUBMITTED)
    ws = await connect(f"/ws/jobs/?job={job.pk}", owner)
    await ws.receive_json_from()
    await anotify_job_event(job=job, type="queued", payload={"position": 2})
    first = await ws.receive_json_from()
    await ws.disconnect()
    # While disconnected, the job moves on and finishes.
    await anotify_job_event(job=job, type="in_progress", payload={"logs": ["step 1"]})
    await database_sync_to_async(_complete)(job)
    await anotify_job_event(job=job, type="completed", payload={"status": "completed"})
    ws = await connect(f"/ws/jobs/?job={job.pk}&after={first['seq']}", owner)
    missed = [await ws.receive_json_from() for _ in range(3)]
    assert [e["type"] for e in missed] == ["in_progress", "completed", "snapshot"]
    assert missed[2]["job"]["status"] == "completed"
    await ws.disconnect()


def _complete(job: Job) -> Any:
    Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED)


async def test_resubscribe_over_the_same_socket(owner: Persona) -> None:
    job = await database_sync_to_async(make_job)(owner)
    ws = await connect("/ws/jobs/", owner)
    await ws.receive_json_from()
    await ws.send_json_to({"action": "subscribe", "job": str(job.pk), "after": 0})
    snapshot = await ws.receive_json_from()
    assert snapshot["type"] == "snapshot" and snapshot["job"]["id"] == str(job.pk)
    await ws.send_json_to({"action": "ping"})
    assert (await ws.receive_json_from())["type"] == "pong"
    await ws.disconnect()


@pytest.mark.parametrize("after", ["Infinity", "-Infinity", "NaN", "1e400", '"x"', "null"])
async def test_a_subscribe_with_a_nonsense_after_is_read_as_zero(owner: Persona,
                                                                 after: str) -> None:
    job = await database_sync_to_async(make_job)(owner)
    ws = await connect("/ws/jobs/", owner)
    assert (await ws.receive_json_from())["type"] == "snapshot"
    # Python's json reads Infinity and NaN; int() of them raises OverflowError/ValueError.
    await ws.send_to(text_data=f'{{"action": "subscribe", "job": "{job.pk}", "after": {after}}}')
    snapshot = await ws.receive_json_from()
    assert snapshot["type"] == "snapshot" and snapshot["job_id"] == str(job.pk)
    await ws.send_json_to({"action": "ping"})
    assert await ws.receive_json_from() == {"type": "pong"}  # the socket lives on
    await ws.disconnect()
