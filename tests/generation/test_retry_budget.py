"""One failure, one retry layer: fal-client's own retries and the runner's never multiply."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import fal_client
import pytest
from channels.db import database_sync_to_async

from generation.emulators.fal import FAL_STATE, FalEmulatorConfig, create_app
from generation.emulators.server import EmulatorThread
from generation.jobs.runner import run_job
from generation.models import AttemptOutcome, Job, JobStatus
from generation.providers.fal import FAL_CLIENT_ATTEMPTS
from tests.conftest import FAL_TEST_KEY, Persona
from tests.generation.factories import make_prepared_job

pytestmark = pytest.mark.django_db(transaction=True)
ENDPOINT = "fal-ai/flux/schnell"


@pytest.fixture
def faulty_fal(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    server = EmulatorThread(lambda: create_app(FalEmulatorConfig(latency="instant")))
    settings.FAL_KEY = FAL_TEST_KEY
    settings.FAL_QUEUE_URL = server.start()
    settings.BRENIA_POLL_INTERVAL = 0.05
    monkeypatch.setattr("generation.jobs.runner.BACKOFF_BASE", 0.01)
    # fal-client reads its limit at every call: two tries keep its own backoff short.
    monkeypatch.setattr(fal_client.client, "MAX_ATTEMPTS", 2)
    assert server.app is not None
    yield server.app[FAL_STATE]
    server.stop()


async def run(persona: Persona, prompt: str) -> Job:
    job = await database_sync_to_async(make_prepared_job)(persona, inputs={"prompt": prompt})
    await run_job(job.pk)
    return await Job.objects.aget(pk=job.pk)


def test_the_documented_fal_client_budget_is_the_installed_one() -> None:
    # fal.py's comments and the runner's bound are written for this number.
    assert FAL_CLIENT_ATTEMPTS == fal_client.client.MAX_ATTEMPTS == 10


@pytest.mark.parametrize("fault", ["429", "503_ingress"])
async def test_a_failure_fal_client_gave_up_on_is_not_retried_again_by_the_runner(
        owner: Persona, faulty_fal: Any, fault: str) -> None:
    faulty_fal.set_faults(ENDPOINT, {"sequence": [fault] * 6})
    job = await run(owner, f"budget {uuid.uuid4()}")
    assert job.status == JobStatus.ERRORED
    # fal-client's two tries, not two per runner attempt (2 x 3 = 6).
    assert faulty_fal.stats()["submit_attempts"]["by_endpoint"][ENDPOINT] == 2
    assert [a.outcome async for a in job.attempts.order_by("number")] == [
        AttemptOutcome.TRANSIENT_ERROR]


async def test_a_failure_fal_client_does_not_retry_is_retried_by_the_runner(
        owner: Persona, faulty_fal: Any) -> None:
    faulty_fal.set_faults(ENDPOINT, {"sequence": ["500", "500", "ok"]})
    job = await run(owner, f"hard {uuid.uuid4()}")
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert faulty_fal.stats()["submit_attempts"]["by_endpoint"][ENDPOINT] == 3
    assert [a.outcome async for a in job.attempts.order_by("number")] == [
        AttemptOutcome.TRANSIENT_ERROR, AttemptOutcome.TRANSIENT_ERROR, AttemptOutcome.SUCCEEDED]
