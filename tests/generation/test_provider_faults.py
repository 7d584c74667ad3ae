"""Provider faults through the emulators' fault injection: what is retried, what is not."""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async

from generation.emulators.fal import FAL_STATE, FalEmulatorConfig, create_app
from generation.emulators.gemini import GEMINI_STATE
from generation.emulators.server import EmulatorThread
from generation.jobs.results import check_image
from generation.jobs.runner import run_job
from generation.models import AttemptOutcome, Job, JobStatus
from generation.providers.base import MalformedResponse
from tests.conftest import FAL_TEST_KEY, Persona
from tests.generation.factories import make_prepared_job

pytestmark = pytest.mark.django_db(transaction=True)
ENDPOINT = "fal-ai/flux/schnell"


@pytest.fixture
def faulty_fal(settings: Any) -> Iterator[Any]:
    """A fal emulator of this test's own, whose fault plan the test scripts."""
    server = EmulatorThread(lambda: create_app(FalEmulatorConfig(latency="instant")))
    settings.FAL_KEY = FAL_TEST_KEY
    settings.FAL_QUEUE_URL = server.start()
    settings.BRENIA_POLL_INTERVAL = 0.05
    assert server.app is not None
    yield server.app[FAL_STATE]
    server.stop()


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("generation.jobs.runner.BACKOFF_BASE", 0.01)


async def run(persona: Persona, prompt: str, slug: str = "flux-schnell") -> Job:
    job = await database_sync_to_async(make_prepared_job)(persona, slug=slug,
                                                          inputs={"prompt": prompt})
    await run_job(job.pk)
    return await Job.objects.aget(pk=job.pk)


async def outcomes(job: Job) -> list[str]:
    return [a.outcome async for a in job.attempts.order_by("number")]


@pytest.mark.parametrize("fault", ["429", "503_ingress"])
async def test_rate_limits_and_ingress_errors_are_recovered_by_retry(
        owner: Persona, faulty_fal: Any, fault: str) -> None:
    faulty_fal.set_faults(ENDPOINT, {"sequence": [fault, fault, "ok"]})
    prompt = f"retry {uuid.uuid4()}"
    job = await run(owner, prompt)
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert faulty_fal.submit_count(prompt_contains=prompt) == 1  # one accepted request
    assert faulty_fal.stats()["submit_attempts"]["by_endpoint"][ENDPOINT] == 3  # SDK retries


async def test_hard_server_error_is_retried_by_the_runner_with_backoff(
        owner: Persona, faulty_fal: Any, quick_backoff: None) -> None:
    faulty_fal.set_faults(ENDPOINT, {"sequence": ["500", "ok"]})
    job = await run(owner, f"hard {uuid.uuid4()}")
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert await outcomes(job) == [AttemptOutcome.TRANSIENT_ERROR, AttemptOutcome.SUCCEEDED]


async def test_transient_errors_are_bounded_then_the_job_errors(
        owner: Persona, faulty_fal: Any, quick_backoff: None) -> None:
    faulty_fal.set_faults(ENDPOINT, {"rate": {"runner_error": 1.0}})
    job = await run(owner, f"broken {uuid.uuid4()}")
    assert job.status == JobStatus.ERRORED
    assert job.error_code == "runner_server_error"
    assert await outcomes(job) == [AttemptOutcome.TRANSIENT_ERROR] * 3


async def test_hung_provider_is_cut_off_with_a_clear_outcome(
        owner: Persona, faulty_fal: Any, settings: Any) -> None:
    settings.BRENIA_JOB_TIMEOUT = 1.5
    prompt = f"hang {uuid.uuid4()} [[fal:hang]]"
    job = await run(owner, prompt)
    assert job.status == JobStatus.FAILED
    assert job.error_code == "timeout"
    assert job.error_message == "The provider did not finish in time."
    [request] = [r for r in faulty_fal.request_list() if prompt in (r.get("prompt") or "")]
    assert request["status"] == "COMPLETED"  # the remote request was cancelled too


async def test_gemini_rate_limit_is_retried(owner: Persona, gemini_emulator: EmulatorThread,
                                            quick_backoff: None) -> None:
    assert gemini_emulator.app is not None
    state = gemini_emulator.app[GEMINI_STATE]
    state.set_faults({"gemini-2.5-flash-image": ["429", "ok"]})
    try:
        job = await run(owner, f"banana {uuid.uuid4()}", slug="nano-banana")
    finally:
        state.set_faults({})
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert await outcomes(job) == [AttemptOutcome.TRANSIENT_ERROR, AttemptOutcome.SUCCEEDED]


def test_a_decompression_bomb_is_an_error_not_a_crash() -> None:
    # A valid PNG header claiming 100,000 x 100,000 pixels, with almost no data.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000,
                                                                8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    with pytest.raises(MalformedResponse) as caught:
        check_image(bomb)
    assert caught.value.code == "result_too_large"


@pytest.mark.parametrize("data", [b"", b"<html>not an image</html>", b"\x89PNG\r\n\x1a\n"])
def test_something_that_is_not_an_image_is_an_error(data: bytes) -> None:
    with pytest.raises(MalformedResponse) as caught:
        check_image(data)
    assert caught.value.code == "not_an_image"


def test_a_real_image_is_accepted() -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 16), "red").save(buffer, format="PNG")
    checked = check_image(buffer.getvalue())
    assert (checked.width, checked.height, checked.format) == (32, 16, "PNG")
