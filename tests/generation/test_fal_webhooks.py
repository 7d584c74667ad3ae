"""Incoming fal webhooks: only fal's signature counts, and one finishes a job alone."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient

from generation.emulators.server import EmulatorThread
from generation.models import Image, Job, JobStatus
from generation.providers.fal_transport import FalAsyncClient
from tests.conftest import FAL_TEST_KEY, Persona, run_background_work
from tests.emulators.fal_support import WebhookReceiver, webhook_receiver_fixture
from tests.generation.factories import make_prepared_job

pytestmark = pytest.mark.django_db(transaction=True)

__all__ = ["webhook_receiver_fixture"]  # a fixture these tests use


@pytest.fixture
def jwks_at_emulator(fal_emulator: EmulatorThread, settings: Any) -> Iterator[None]:
    settings.FAL_WEBHOOK_JWKS_URL = f"{fal_emulator.base_url}/.well-known/jwks.json"
    # The emulator signs for the key's id: the account FAL_TEST_KEY belongs to.
    settings.FAL_USER_ID = FAL_TEST_KEY.partition(":")[0]
    yield


async def submitted_job(persona: Persona, emulator: EmulatorThread, hook_url: str,
                        prompt: str) -> Job:
    """A job submitted to fal with a webhook, that no runner is polling."""
    job = await database_sync_to_async(make_prepared_job)(
        persona, inputs={"prompt": prompt, "output_format": "png"})
    client = FalAsyncClient(key=FAL_TEST_KEY, queue_url=emulator.base_url)
    handle = await client.submit(job.model.endpoint_id, job.provider_arguments,
                                 webhook_url=hook_url)
    await client.aclose()
    await job.atransition(JobStatus.SUBMITTED, provider_request_id=handle.request_id)
    return job


async def deliver(headers: dict[str, str], body: bytes) -> Any:
    fal_headers = {k: v for k, v in headers.items() if k.lower().startswith("x-fal-webhook")}
    return await AsyncClient().post("/api/webhooks/fal", data=body,
                                    content_type="application/json", headers=fal_headers)


async def wait_for_call(receiver: WebhookReceiver) -> tuple[dict[str, str], bytes]:
    await asyncio.to_thread(receiver.wait_for, 1, 15)
    return receiver.calls[0]


async def test_signed_webhook_finishes_the_job_without_any_poller(
        owner: Persona, fal_emulator: EmulatorThread, jwks_at_emulator: None,
        webhook_receiver: Any) -> None:
    receiver = webhook_receiver()
    job = await submitted_job(owner, fal_emulator, receiver.url, f"hooked {uuid.uuid4()}")
    headers, body = await wait_for_call(receiver)

    response = await deliver(headers, body)
    assert response.status_code == 200
    # fal gets its answer before any image is fetched: the background runner does that.
    assert response.json() == {"status": "accepted"}
    await run_background_work()
    job = await Job.objects.aget(pk=job.pk)
    assert job.status == JobStatus.COMPLETED
    assert str(job.cost) == "0.003000"
    assert await Image.objects.filter(job=job).acount() == 1

    replay = await deliver(headers, body)  # fal retries deliveries: nothing happens twice
    assert replay.json() == {"status": "already_final"}
    assert await Image.objects.filter(job=job).acount() == 1


async def test_tampered_or_unsigned_webhooks_are_refused_and_change_nothing(
        owner: Persona, fal_emulator: EmulatorThread, jwks_at_emulator: None,
        webhook_receiver: Any) -> None:
    receiver = webhook_receiver()
    job = await submitted_job(owner, fal_emulator, receiver.url, f"tamper {uuid.uuid4()}")
    headers, body = await wait_for_call(receiver)
    event = json.loads(body)
    event["payload"]["images"][0]["url"] = "https://evil.example/x.png"
    tampered = json.dumps(event).encode()

    refused = await deliver(headers, tampered)
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_webhook_signature"
    unsigned = await AsyncClient().post("/api/webhooks/fal", data=body,
                                        content_type="application/json")
    assert unsigned.status_code == 401
    stale = {**headers, "X-Fal-Webhook-Timestamp": str(int(headers.get(
        "X-Fal-Webhook-Timestamp", "0")) - 3600)}
    assert (await deliver(stale, body)).status_code == 401
    assert (await Job.objects.aget(pk=job.pk)).status == JobStatus.SUBMITTED


async def test_failed_request_webhook_fails_the_job_with_the_reason(
        owner: Persona, fal_emulator: EmulatorThread, jwks_at_emulator: None,
        webhook_receiver: Any) -> None:
    receiver = webhook_receiver()
    job = await submitted_job(owner, fal_emulator, receiver.url,
                              f"refused {uuid.uuid4()} [[fal:content_policy]]")
    headers, body = await wait_for_call(receiver)
    assert json.loads(body)["status"] == "ERROR"
    response = await deliver(headers, body)
    assert response.json() == {"status": "accepted"}
    await run_background_work()
    job = await Job.objects.aget(pk=job.pk)
    assert job.status == JobStatus.FAILED
    assert job.error_code == "content_policy_violation"
