"""Every way a job ends goes through ``job_finish``, which runs the finished-hooks once.

The hook here records each call in memory. The paths are driven as production
drives them: the runner against the fal emulator over HTTP, a user's cancel
through the service, fal's signed webhook through the HTTP endpoint (twice, as
fal retries), and a runner killed mid-flight and resumed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.test import AsyncClient

from brenia import background
from generation.emulators.server import EmulatorThread
from generation.jobs.lifecycle import (
    JobFinished,
    job_finish,
    job_finished_hook,
    job_finished_hook_remove,
)
from generation.jobs.runner import run_job
from generation.jobs.services import job_cancel
from generation.models import IllegalTransition, Job, JobEvent, JobStatus
from generation.outbound.models import WebhookDelivery
from generation.outbound.tasks import deliver_webhook_task
from generation.providers.fal_transport import FalAsyncClient
from tests.conftest import FAL_TEST_KEY, Persona, run_background_work
from tests.emulators.fal_support import webhook_receiver_fixture
from tests.generation.factories import make_job, make_prepared_job

__all__ = ["webhook_receiver_fixture"]  # a fixture these tests use


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, finished: JobFinished) -> None:
        self.calls.append((str(finished.job.pk), finished.status, finished.event_type))

    def of(self, job: Job) -> list[tuple[str, str]]:
        return [(status, event) for job_id, status, event in self.calls if job_id == str(job.pk)]


@pytest.fixture
def finished() -> Iterator[Recorder]:
    recorder = Recorder()
    job_finished_hook(recorder)
    yield recorder
    job_finished_hook_remove(recorder)


async def prepared(persona: Persona, prompt: str) -> Job:
    return await database_sync_to_async(make_prepared_job)(
        persona, inputs={"prompt": prompt, "output_format": "png"})


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("marker", "status", "event"), [
    ("", JobStatus.COMPLETED, "completed"),
    (" [[fal:content_policy]]", JobStatus.FAILED, "failed"),
    (" [[fal:malformed]]", JobStatus.ERRORED, "failed"),
])
async def test_runner_ends_call_the_hooks_once(owner: Persona, fal_emulator: EmulatorThread,
                                               finished: Recorder, marker: str, status: str,
                                               event: str) -> None:
    job = await prepared(owner, f"lifecycle {uuid.uuid4()}{marker}")
    await run_job(job.pk)
    await run_job(job.pk)  # running a finished job again changes nothing
    assert (await Job.objects.aget(pk=job.pk)).status == status
    assert finished.of(job) == [(status, event)]


@pytest.mark.django_db(transaction=True)
async def test_cancel_calls_the_hooks_once_and_the_runner_adds_nothing(
        owner: Persona, fal_emulator: EmulatorThread, finished: Recorder) -> None:
    job = await prepared(owner, f"cancel {uuid.uuid4()}")
    await database_sync_to_async(job_cancel)(user=owner.user, job_id=job.pk)
    await run_job(job.pk)  # a runner that picks the job up afterwards
    with pytest.raises(Exception, match="cannot be cancelled"):
        await database_sync_to_async(job_cancel)(user=owner.user, job_id=job.pk)
    assert finished.of(job) == [(JobStatus.CANCELLED, "cancelled")]


@pytest.mark.django_db(transaction=True)
async def test_resumed_run_after_a_kill_calls_the_hooks_once(
        owner: Persona, fal_emulator: EmulatorThread, finished: Recorder) -> None:
    job = await prepared(owner, f"killed {uuid.uuid4()} [[fal:slow]]")
    first = asyncio.create_task(run_job(job.pk))
    while (await Job.objects.aget(pk=job.pk)).provider_request_id == "":
        assert not first.done()
        await asyncio.sleep(0.02)
    first.cancel()  # the process dies with the request in flight
    with pytest.raises(asyncio.CancelledError):
        await first
    assert finished.of(job) == []
    await run_job(job.pk)
    assert finished.of(job) == [(JobStatus.COMPLETED, "completed")]


@pytest.fixture
def jwks_at_emulator(fal_emulator: EmulatorThread, settings: Any) -> None:
    settings.FAL_WEBHOOK_JWKS_URL = f"{fal_emulator.base_url}/.well-known/jwks.json"


@pytest.mark.django_db(transaction=True)
async def test_fal_webhook_delivered_twice_calls_the_hooks_once(
        owner: Persona, fal_emulator: EmulatorThread, jwks_at_emulator: None,
        webhook_receiver: Any, finished: Recorder) -> None:
    receiver = webhook_receiver()
    job = await prepared(owner, f"hooked {uuid.uuid4()}")
    client = FalAsyncClient(key=FAL_TEST_KEY, queue_url=fal_emulator.base_url)
    handle = await client.submit(job.model.endpoint_id, job.provider_arguments,
                                 webhook_url=receiver.url)
    await client.aclose()
    await job.atransition(JobStatus.SUBMITTED, provider_request_id=handle.request_id)
    await asyncio.to_thread(receiver.wait_for, 1, 15)
    headers, body = receiver.calls[0]
    fal_headers = {k: v for k, v in headers.items() if k.lower().startswith("x-fal-webhook")}
    for _ in range(2):  # fal retries deliveries; both may arrive before either is applied
        response = await AsyncClient().post("/api/webhooks/fal", data=body,
                                            content_type="application/json",
                                            headers=fal_headers)
        assert response.status_code == 200
        assert json.loads(response.content)["status"] in ("accepted", "already_final")
    await run_background_work()
    assert (await Job.objects.aget(pk=job.pk)).status == JobStatus.COMPLETED
    assert finished.of(job) == [(JobStatus.COMPLETED, "completed")]


def test_a_failing_hook_rolls_the_end_back(owner: Persona) -> None:
    job = make_job(owner, status=JobStatus.IN_PROGRESS)

    def broken(finished: JobFinished) -> None:
        raise RuntimeError("billing is down")

    job_finished_hook(broken)
    try:
        with pytest.raises(RuntimeError):
            job_finish(job=job, status=JobStatus.FAILED, error_code="x", error_message="x")
    finally:
        job_finished_hook_remove(broken)
    job.refresh_from_db()
    assert job.status == JobStatus.IN_PROGRESS
    assert not JobEvent.objects.filter(job=job).exists()


def test_a_second_finish_is_refused_and_runs_no_hook(owner: Persona,
                                                     finished: Recorder) -> None:
    job = make_job(owner, status=JobStatus.IN_PROGRESS)
    job_finish(job=job, status=JobStatus.FAILED, error_code="x", error_message="x")
    with pytest.raises(IllegalTransition):
        job_finish(job=Job.objects.get(pk=job.pk), status=JobStatus.COMPLETED, cost=None)
    assert finished.of(job) == [(JobStatus.FAILED, "failed")]


def test_webhook_row_is_written_inside_the_end_and_sent_only_after_commit(
        owner: Persona, django_capture_on_commit_callbacks: Any) -> None:
    job = make_job(owner, status=JobStatus.IN_PROGRESS,
                   webhook_url="https://hooks.example.com/brenia")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job_finish(job=job, status=JobStatus.FAILED, error_code="x", error_message="x")
        # Recorded in the terminal transaction …
        delivery = WebhookDelivery.objects.get(job=job)
        # … but not handed to the background runner yet.
        assert str(delivery.pk) not in async_to_sync(background.carried)(
            deliver_webhook_task, arg="delivery_id")
    # The event's publication, the delivery's dispatch and the job's count for /metrics,
    # all after commit.
    assert len(callbacks) == 3
