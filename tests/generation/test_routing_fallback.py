"""Fallback chains by error class, through the fal emulator's fault injection.

flux-schnell falls back to flux-dev (another endpoint of the same emulator, whose faults
are scripted apart): quota, 5xx and timeouts move the job on; a content-policy refusal
never does. Each attempt records its model, error class and what happened next; the job
is charged for the model that completed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import fal_client
import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.test import Client

from generation.emulators.fal import FAL_STATE, FalEmulatorConfig, create_app
from generation.emulators.server import EmulatorThread
from generation.jobs.runner import run_job
from generation.models import AIModel, AttemptOutcome, Job, JobStatus, RoutedBy
from tests.conftest import FAL_TEST_KEY, Persona
from tests.generation.factories import make_prepared_job

pytestmark = pytest.mark.django_db(transaction=True)
SCHNELL, DEV = "fal-ai/flux/schnell", "fal-ai/flux/dev"


@pytest.fixture
def faulty_fal(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    server = EmulatorThread(lambda: create_app(FalEmulatorConfig(latency="instant")))
    settings.FAL_KEY = FAL_TEST_KEY
    settings.FAL_QUEUE_URL = server.start()
    settings.BRENIA_POLL_INTERVAL = 0.05
    monkeypatch.setattr("generation.jobs.runner.BACKOFF_BASE", 0.01)
    monkeypatch.setattr(fal_client.client, "MAX_ATTEMPTS", 2)
    assert server.app is not None
    yield server.app[FAL_STATE]
    server.stop()


def set_fallback(slug: str, fallback: str | None) -> None:
    AIModel.objects.filter(slug=slug).update(
        fallback=AIModel.objects.get(slug=fallback) if fallback else None)


async def run(persona: Persona, prompt: str, slug: str = "flux-schnell") -> Job:
    job = await database_sync_to_async(make_prepared_job)(persona, slug=slug,
                                                          inputs={"prompt": prompt})
    await run_job(job.pk)
    return await Job.objects.select_related("model").aget(pk=job.pk)


async def attempts(job: Job) -> list[tuple[str, str, str, str]]:
    return [(a.model_slug, a.outcome, a.error_kind, a.reason)
            async for a in job.attempts.order_by("number")]


def submits(fal: Any, endpoint: str) -> int:
    return int(fal.stats()["submit_attempts"]["by_endpoint"].get(endpoint, 0))


async def test_a_rate_limit_falls_back_and_the_job_pays_for_the_fallback(
        owner: Persona, faulty_fal: Any, admin_client: Client) -> None:
    await database_sync_to_async(set_fallback)("flux-schnell", "flux-dev")
    faulty_fal.set_faults(SCHNELL, {"sequence": ["429"] * 4})
    job = await run(owner, f"quota {uuid.uuid4()}")
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert (job.model_slug, job.routed_by) == ("flux-dev", RoutedBy.FALLBACK)
    assert await attempts(job) == [
        ("flux-schnell", AttemptOutcome.TRANSIENT_ERROR, "quota",
         "fell back to flux-dev (quota)"),
        ("flux-dev", AttemptOutcome.SUCCEEDED, "", ""),
    ]
    assert submits(faulty_fal, SCHNELL) == 2  # fal-client's own two tries, then no more
    assert submits(faulty_fal, DEV) == 1
    # Charged what ran: the same request made on flux-dev directly costs the same.
    direct = await run(owner, f"direct {uuid.uuid4()}", slug="flux-dev")
    assert direct.status == JobStatus.COMPLETED
    assert job.cost == direct.cost
    assert job.cost is not None and job.cost > 0
    # Operators read the route on the job's admin page.
    page = await sync_to_async(admin_client.get)(f"/admin/generation/job/{job.pk}/change/")
    assert "fell back to flux-dev (quota)" in page.content.decode()


async def test_a_content_policy_refusal_never_falls_back(
        owner: Persona, faulty_fal: Any) -> None:
    await database_sync_to_async(set_fallback)("flux-schnell", "flux-dev")
    faulty_fal.set_faults(SCHNELL, {"sequence": ["content_policy"]})
    job = await run(owner, f"refused {uuid.uuid4()}")
    assert job.status == JobStatus.FAILED
    assert job.error_code == "content_policy_violation"
    assert (job.model_slug, job.routed_by) == ("flux-schnell", RoutedBy.EXPLICIT)
    assert await attempts(job) == [
        ("flux-schnell", AttemptOutcome.PERMANENT_ERROR, "safety",
         "safety: never retried or routed around")]
    assert submits(faulty_fal, DEV) == 0


async def test_server_errors_are_retried_then_fall_back(
        owner: Persona, faulty_fal: Any) -> None:
    await database_sync_to_async(set_fallback)("flux-schnell", "flux-dev")
    faulty_fal.set_faults(SCHNELL, {"rate": {"runner_error": 1.0}})
    job = await run(owner, f"outage {uuid.uuid4()}")
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.model_slug == "flux-dev"
    assert await attempts(job) == [
        ("flux-schnell", AttemptOutcome.TRANSIENT_ERROR, "server", "retried on the same model"),
        ("flux-schnell", AttemptOutcome.TRANSIENT_ERROR, "server", "retried on the same model"),
        ("flux-schnell", AttemptOutcome.TRANSIENT_ERROR, "server",
         "fell back to flux-dev (server)"),
        ("flux-dev", AttemptOutcome.SUCCEEDED, "", ""),
    ]


async def test_a_timeout_falls_back_and_the_hung_request_is_cancelled(
        owner: Persona, faulty_fal: Any, settings: Any) -> None:
    settings.BRENIA_JOB_TIMEOUT = 1.5
    await database_sync_to_async(set_fallback)("flux-schnell", "flux-dev")
    faulty_fal.set_faults(SCHNELL, {"sequence": ["hang"]})
    prompt = f"slow {uuid.uuid4()}"
    job = await run(owner, prompt)
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert await attempts(job) == [
        ("flux-schnell", AttemptOutcome.TRANSIENT_ERROR, "timeout",
         "fell back to flux-dev (timeout)"),
        ("flux-dev", AttemptOutcome.SUCCEEDED, "", ""),
    ]
    hung = [r for r in faulty_fal.request_list()
            if prompt in (r.get("prompt") or "") and r.get("endpoint_id", SCHNELL) == SCHNELL]
    assert hung and all(r["status"] == "COMPLETED" for r in hung)  # cancelled, not running


async def test_without_a_fallback_the_error_stands_and_says_none_was_left(
        owner: Persona, faulty_fal: Any) -> None:
    faulty_fal.set_faults(SCHNELL, {"sequence": ["429"] * 4})
    job = await run(owner, f"alone {uuid.uuid4()}")
    assert job.status == JobStatus.ERRORED
    assert await attempts(job) == [
        ("flux-schnell", AttemptOutcome.TRANSIENT_ERROR, "quota", "no fallback left (quota)")]


async def test_a_fallback_the_inputs_do_not_fit_is_skipped(
        owner: Persona, faulty_fal: Any) -> None:
    # image-to-image needs an image_url the text-to-image request never had.
    await database_sync_to_async(set_fallback)("flux-schnell", "image-to-image")
    faulty_fal.set_faults(SCHNELL, {"sequence": ["429"] * 4})
    job = await run(owner, f"misfit {uuid.uuid4()}")
    assert job.status == JobStatus.ERRORED
    [(slug, _, kind, reason)] = await attempts(job)
    assert (slug, kind) == ("flux-schnell", "quota")
    assert reason.startswith("no fallback left (quota): image-to-image does not accept")
    assert submits(faulty_fal, "fal-ai/flux/dev/image-to-image") == 0


async def test_a_fallback_cycle_ends_instead_of_looping(
        owner: Persona, faulty_fal: Any) -> None:
    await database_sync_to_async(set_fallback)("flux-schnell", "flux-dev")
    await database_sync_to_async(set_fallback)("flux-dev", "flux-schnell")
    faulty_fal.set_faults("fal-ai/flux", {"rate": {"429": 1.0}})  # both endpoints
    job = await run(owner, f"cycle {uuid.uuid4()}")
    assert job.status == JobStatus.ERRORED
    assert [(slug, reason) for slug, _, _, reason in await attempts(job)] == [
        ("flux-schnell", "fell back to flux-dev (quota)"),
        ("flux-dev", "no fallback left (quota)"),
    ]
