"""fal requests followed by their SSE status stream, against the emulator over real HTTP.

The emulator counts, per request, the status polls (``log_polls``: those asking for
the logs, as following a request does) and the stream opens it answered. A job
followed by its stream is never polled for its logs: its one status poll is
fal-client's ``result()`` checking the request is COMPLETED before fetching it, as
ever. A stream that breaks off, or a front that does not serve it, falls back to
polling and the job completes all the same, every log line relayed once; with the
stream turned off the request is polled as before.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import fal_client
import httpx
import pytest
from channels.db import database_sync_to_async

from generation.emulators.fal import FalEmulatorConfig, create_app
from generation.emulators.server import EmulatorThread
from generation.jobs.runner import run_job
from generation.models import Job, JobEvent, JobStatus
from generation.providers.fal import _client
from generation.providers.fal_stream import follow, stream_statuses, stream_url
from tests.conftest import FAL_TEST_KEY, Persona
from tests.generation.factories import make_prepared_job

pytestmark = pytest.mark.django_db(transaction=True)
ENDPOINT = "fal-ai/flux/schnell"


@pytest.fixture
def fal(settings: Any) -> Iterator[EmulatorThread]:
    """An emulator of this test's own, slow enough that a request is queued, then runs
    with several progress lines, before it completes."""
    server = EmulatorThread(lambda: create_app(FalEmulatorConfig(latency="fast")))
    settings.FAL_KEY = FAL_TEST_KEY
    settings.FAL_QUEUE_URL = server.start()
    settings.BRENIA_POLL_INTERVAL = 0.05
    settings.BRENIA_FAL_STATUS_STREAM = True
    yield server
    server.stop()


async def run(persona: Persona, prompt: str) -> Job:
    job = await database_sync_to_async(make_prepared_job)(
        persona, inputs={"prompt": f"{prompt} {uuid.uuid4()}"})
    await run_job(job.pk)
    return await Job.objects.aget(pk=job.pk)


async def emulated(fal: EmulatorThread, request_id: str) -> dict[str, Any]:
    """The emulator's record of one request: counters and every log line."""
    async with httpx.AsyncClient(base_url=fal.base_url) as http:
        response = await http.get(f"/_emulator/requests/{request_id}")
    response.raise_for_status()
    record: dict[str, Any] = response.json()
    return record


async def relayed(job: Job) -> tuple[list[str], list[float]]:
    """The log lines and progress values the job's in_progress events carried, in order."""
    logs: list[str] = []
    progress: list[float] = []
    async for event in JobEvent.objects.filter(job=job, type="in_progress").order_by("seq"):
        logs.extend(event.payload.get("logs") or [])
        if event.payload.get("progress") is not None:
            progress.append(event.payload["progress"])
    return logs, progress


async def assert_completed_with_every_line_once(job: Job, record: dict[str, Any]) -> None:
    assert job.status == JobStatus.COMPLETED, (job.error_code, job.error_message)
    logs, progress = await relayed(job)
    assert logs == [entry["message"] for entry in record["logs"]]
    assert any(line.startswith("Generating: step") for line in logs)
    assert progress and progress == sorted(progress) and 0 < progress[-1] <= 1


async def test_a_job_is_followed_by_its_stream_and_never_polled(
        owner: Persona, fal: EmulatorThread) -> None:
    job = await run(owner, "pushed")
    record = await emulated(fal, job.provider_request_id)
    await assert_completed_with_every_line_once(job, record)
    assert record["stream_opens"] == 1
    assert record["log_polls"] == 0
    assert record["status_polls"] == 1  # result()'s own readiness check (logs=0)
    assert record["result_fetches"] == 1


async def test_a_stream_that_breaks_off_falls_back_to_a_poll_and_the_job_completes(
        owner: Persona, fal: EmulatorThread) -> None:
    # Every stream of this request ends after its first event, COMPLETED or not.
    job = await run(owner, "cut off [[fal:stream_drop]]")
    record = await emulated(fal, job.provider_request_id)
    await assert_completed_with_every_line_once(job, record)
    assert record["fault"] == "stream_drop"
    assert record["log_polls"] >= 1
    assert record["stream_opens"] >= 1


async def test_a_front_without_the_stream_is_polled_and_the_job_completes(
        owner: Persona, fal: EmulatorThread) -> None:
    job = await run(owner, "no stream [[fal:stream_unavailable]]")
    record = await emulated(fal, job.provider_request_id)
    await assert_completed_with_every_line_once(job, record)
    assert record["fault"] == "stream_unavailable"
    assert record["log_polls"] >= 1


async def test_with_the_stream_turned_off_the_request_is_polled_as_before(
        owner: Persona, fal: EmulatorThread, settings: Any) -> None:
    settings.BRENIA_FAL_STATUS_STREAM = False
    job = await run(owner, "polled")
    record = await emulated(fal, job.provider_request_id)
    await assert_completed_with_every_line_once(job, record)
    assert record["stream_opens"] == 0
    assert record["log_polls"] >= 1


async def test_a_failed_request_is_reported_by_the_stream_and_fails_as_before(
        owner: Persona, fal: EmulatorThread) -> None:
    job = await run(owner, "refused [[fal:content_policy]]")
    record = await emulated(fal, job.provider_request_id)
    assert job.status == JobStatus.FAILED, job.status
    assert job.error_code == "content_policy_violation"
    assert record["stream_opens"] == 1 and record["log_polls"] == 0


async def test_the_stream_url_is_the_status_url_of_the_app_not_of_the_endpoint_path(
        fal: EmulatorThread) -> None:
    # fal-client builds a re-attached handle's status URL from owner/alias only; a
    # submitted handle's from the queue's answer. The stream sits beside either.
    client = _client()
    submitted = await client.submit(ENDPOINT, {"prompt": "where"})
    attached = await client.get_handle(ENDPOINT, submitted.request_id)
    rid = submitted.request_id
    assert stream_url(attached) == f"https://queue.fal.run/fal-ai/flux/requests/{rid}/status/stream"
    assert stream_url(submitted) == f"{fal.base_url}/fal-ai/flux/requests/{rid}/status/stream"
    statuses = [status async for status in stream_statuses(await client.stream_http, attached)]
    assert isinstance(statuses[-1], fal_client.Completed)
    assert [type(s) for s in statuses[:-1]] == sorted(
        (type(s) for s in statuses[:-1]), key=[fal_client.Queued, fal_client.InProgress].index)
    # Logs accumulate over the stream's events, as a poll's do.
    final_logs = statuses[-1].logs or []
    assert [e["message"] for e in final_logs] == [
        e["message"] for e in (await emulated(fal, rid))["logs"]]


async def test_a_request_fal_does_not_know_fails_through_the_safety_poll_as_when_polled(
        fal: EmulatorThread) -> None:
    client = _client()
    handle = await client.get_handle(ENDPOINT, str(uuid.uuid4()))
    with pytest.raises(fal_client.client.FalClientHTTPError) as raised:
        async for _ in follow(handle, await client.stream_http, interval=0.05):
            pass
    assert raised.value.status_code == 404
