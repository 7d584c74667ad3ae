"""Losing Redis under the pub/sub layer: sockets catch up once it is back.

A private redis-server (its own port) is stopped and started again under an open
socket; what was sent meanwhile is lost by pub/sub, and the socket must get it from
the database instead (found by bench/drills.py redis: sockets left stale for good)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from brenia.accounts.models import ApiKey
from brenia.accounts.services import api_key_revoke
from generation.jobs.events import anotify_job_event
from generation.models import JobStatus
from tests.conftest import Persona, free_port
from tests.generation.factories import make_job
from tests.generation.test_consumers import connect

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="needs redis-server (make test installs it)")]


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    layer = {"default": {"BACKEND": "brenia.channel_layer.ResyncingPubSubChannelLayer",
                         "CONFIG": {"hosts": [f"redis://127.0.0.1:{server.port}/0"],
                                    "prefix": "brenia-resync-test"}}}
    with override_settings(CHANNEL_LAYERS=layer):
        yield server
    server.stop()


async def _until(ws: Any, wanted: Any) -> dict[str, Any]:
    """The first message ``wanted`` accepts, skipping others (bounded by the timeout)."""
    while True:
        message = await ws.receive_json_from(timeout=20)
        if wanted(message):
            return message


async def test_a_job_socket_gets_what_was_sent_while_redis_was_down(
        owner: Persona, redis: PrivateRedis) -> None:
    # A finished job: nothing resumes it, so every event is the test's own.
    job = await database_sync_to_async(make_job)(owner, status=JobStatus.COMPLETED)
    ws = await connect(f"/ws/jobs/?job={job.pk}", owner)
    # Generous timeouts: the suite shares two cores with the other profile's suite.
    assert (await ws.receive_json_from(timeout=20))["type"] == "snapshot"
    await anotify_job_event(job=job, type="queued", payload={"position": 2})
    assert (await ws.receive_json_from(timeout=20))["seq"] == 1  # live, through Redis
    redis.stop()
    await anotify_job_event(job=job, type="queued", payload={"position": 1})  # lost
    redis.start()
    missed = await _until(ws, lambda m: m.get("type") == "queued")
    assert (missed["seq"], missed["position"]) == (2, 1)
    snapshot = await _until(ws, lambda m: m.get("type") == "snapshot")
    assert snapshot["seq"] == 2
    await ws.disconnect()


async def test_the_account_stream_gets_a_fresh_snapshot(owner: Persona,
                                                        redis: PrivateRedis) -> None:
    ws = await connect("/ws/jobs/", owner)
    assert (await ws.receive_json_from(timeout=20))["jobs"] == []
    redis.stop()
    job = await database_sync_to_async(make_job)(owner)  # made while the socket was deaf
    redis.start()
    snapshot = await _until(ws, lambda m: m.get("type") == "snapshot")
    assert [state["id"] for state in snapshot["jobs"]] == [str(job.pk)]
    await ws.disconnect()


async def test_a_key_revoked_while_redis_was_down_closes_its_socket(
        owner: Persona, redis: PrivateRedis) -> None:
    ws = await connect("/ws/jobs/", owner)
    await ws.receive_json_from(timeout=20)
    redis.stop()
    key = await ApiKey.objects.aget(user=owner.user)
    await database_sync_to_async(api_key_revoke)(key=key)
    redis.start()
    while (output := await ws.receive_output(timeout=20))["type"] != "websocket.close":
        pass
    assert output["code"] == 4401
