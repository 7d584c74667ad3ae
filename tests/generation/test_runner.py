"""The job runner against the fal emulator over real HTTP, in this process."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.files.storage import default_storage

from generation.emulators.fal import FAL_STATE
from generation.emulators.server import EmulatorThread
from generation.jobs.lifecycle import job_finish
from generation.jobs.runner import run_job
from generation.models import IllegalTransition, Image, Job, JobEvent, JobStatus
from tests.conftest import Persona
from tests.generation.factories import make_prepared_job

pytestmark = pytest.mark.django_db(transaction=True)


def fal_state(emulator: EmulatorThread) -> Any:
    assert emulator.app is not None
    return emulator.app[FAL_STATE]


async def create(persona: Persona, prompt: str, **options: Any) -> Job:
    return await database_sync_to_async(make_prepared_job)(
        persona, inputs={"prompt": prompt, "output_format": "png"}, options=options or None)


async def reload(job: Job) -> Job:
    return await Job.objects.aget(pk=job.pk)


async def event_types(job: Job) -> list[str]:
    return [e.type async for e in JobEvent.objects.filter(job=job).order_by("seq")]


async def test_job_completes_with_stored_images_cost_and_ordered_events(
        owner: Persona, fal_emulator: EmulatorThread) -> None:
    job = await create(owner, f"run {uuid.uuid4()}", width=512, height=512, num_images=2)
    await run_job(job.pk)
    job = await reload(job)
    assert job.status == JobStatus.COMPLETED
    images = [i async for i in Image.objects.filter(job=job).order_by("index")]
    assert [(i.width, i.height, i.format) for i in images] == [(512, 512, "PNG")] * 2
    for image in images:
        assert default_storage.exists(image.file.name)
        assert image.file.name.startswith(f"images/{image.sha256[:2]}/")
    assert str(job.cost) == "0.006000"  # two images, each billed as 1 MP at $0.003
    types = await event_types(job)
    # Queued only if the provider's queue still held it when its status stream opened
    # (a matter of timing); never after it started.
    assert types[-1] == "completed" and "in_progress" in types
    assert "queued" not in types[types.index("in_progress"):]
    seqs = [e.seq async for e in JobEvent.objects.filter(job=job).order_by("seq")]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_restarted_job_reattaches_and_never_submits_twice(
        owner: Persona, fal_emulator: EmulatorThread) -> None:
    prompt = f"reattach {uuid.uuid4()} [[fal:slow]]"
    job = await create(owner, prompt)
    task = asyncio.create_task(run_job(job.pk))
    while not task.done() and (await reload(job)).status == JobStatus.QUEUED:
        await asyncio.sleep(0.05)
    seen = await reload(job)
    assert not task.done(), (seen.status, seen.error_code, seen.error_message)
    task.cancel()  # the process dies with the request in flight
    with pytest.raises(asyncio.CancelledError):
        await task
    interrupted = await reload(job)
    assert interrupted.provider_request_id
    assert interrupted.status in (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS)

    await run_job(job.pk)  # a new runner picks the job up
    finished = await reload(job)
    assert finished.status == JobStatus.COMPLETED
    assert finished.provider_request_id == interrupted.provider_request_id
    assert fal_state(fal_emulator).submit_count(prompt_contains=prompt) == 1
    assert await Image.objects.filter(job=job).acount() == 1


async def test_finalizing_twice_neither_duplicates_images_nor_settles_twice(
        owner: Persona, fal_emulator: EmulatorThread) -> None:
    job = await create(owner, f"twice {uuid.uuid4()}")
    await run_job(job.pk)
    job = await reload(job)
    with pytest.raises(IllegalTransition):
        await database_sync_to_async(job_finish)(job=job, status=JobStatus.COMPLETED, cost=99)
    job = await reload(job)
    assert str(job.cost) == "0.003000"
    assert await Image.objects.filter(job=job).acount() == 1
    await run_job(job.pk)  # running a finished job again is a no-op
    assert await JobEvent.objects.filter(job=job, type="completed").acount() == 1


async def test_content_policy_refusal_fails_with_its_reason_and_no_retry(
        owner: Persona, fal_emulator: EmulatorThread) -> None:
    prompt = f"refused {uuid.uuid4()} [[fal:content_policy]]"
    job = await create(owner, prompt)
    await run_job(job.pk)
    job = await reload(job)
    assert job.status == JobStatus.FAILED
    assert job.error_code == "content_policy_violation"
    assert fal_state(fal_emulator).submit_count(prompt_contains=prompt) == 1
    assert await job.attempts.acount() == 1


async def test_malformed_result_errors_the_job_instead_of_crashing(
        owner: Persona, fal_emulator: EmulatorThread) -> None:
    job = await create(owner, f"garbled {uuid.uuid4()} [[fal:malformed]]")
    await run_job(job.pk)
    job = await reload(job)
    assert job.status == JobStatus.ERRORED
    assert job.error_code == "malformed_response"
    assert job.error_traceback  # kept for admins


async def test_cancelled_job_is_left_alone_by_the_runner(
        owner: Persona, fal_emulator: EmulatorThread) -> None:
    job = await create(owner, f"cancelled {uuid.uuid4()}")
    await database_sync_to_async(job.transition)(JobStatus.CANCELLED)
    await run_job(job.pk)
    assert (await reload(job)).status == JobStatus.CANCELLED
    assert await Image.objects.filter(job=job).acount() == 0


def test_progress_is_read_from_step_counters_in_logs() -> None:
    from generation.providers.fal import progress_from_logs

    assert progress_from_logs(["Loading model", "Generating: step 3/12"]) == 0.25
    assert progress_from_logs([" 45%|████▌     | 9/20 [00:02<00:02]"]) == 0.45
    assert progress_from_logs(["no counter here"]) is None
    assert progress_from_logs(["12/4 is not progress"]) is None


async def test_eta_is_position_times_the_models_recent_median_run(owner: Persona) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from generation.jobs import runner

    runner._durations.clear()
    assert await runner.eta_seconds(999_999, 0) is None  # no history: no guess
    start = timezone.now()
    for seconds in (8, 10, 30):
        job = await database_sync_to_async(make_prepared_job)(owner, inputs={"prompt": "x"})
        await Job.objects.filter(pk=job.pk).aupdate(
            status=JobStatus.COMPLETED, started_at=start,
            finished_at=start + timedelta(seconds=seconds))
    runner._durations.clear()
    assert await runner.eta_seconds(job.model_id, 2) == 30  # 3 x median 10 s


async def test_progress_events_carry_new_log_lines_and_progress(
        owner: Persona, fal_emulator: EmulatorThread) -> None:
    job = await create(owner, f"progress {uuid.uuid4()}")
    await run_job(job.pk)
    running = [e.payload async for e in JobEvent.objects.filter(job=job, type="in_progress")]
    lines = [line for payload in running for line in payload["logs"]]
    assert any("step" in line for line in lines)
    assert len(lines) == len(set(lines))  # each line sent once, as it arrives
    assert any(payload["progress"] for payload in running), running


async def test_updates_that_pile_up_go_out_as_one_event_in_order(owner: Persona) -> None:
    from generation.jobs.runner import JobRun
    from generation.providers.base import Running

    job = await create(owner, f"pile {uuid.uuid4()}")
    await job.atransition(JobStatus.SUBMITTED, provider_request_id="req-1")
    run = JobRun(await Job.objects.select_related("model").aget(pk=job.pk))
    # Two polls' updates arrive before the first is written: the poll loop never waits.
    await run._on_update(Running(new_logs=["step 1/4"], progress=0.25))
    await run._on_update(Running(new_logs=["step 2/4", "step 3/4"], progress=0.75))
    await run._settle_updates()
    running = [e.payload async for e in JobEvent.objects.filter(job=job, type="in_progress")]
    assert [p["logs"] for p in running] == [["step 1/4", "step 2/4", "step 3/4"]]
    assert running[0]["progress"] == 0.75
    job = await reload(job)
    assert (job.status, job.progress) == (JobStatus.IN_PROGRESS, 0.75)


async def test_an_update_for_a_job_cancelled_meanwhile_stops_the_run(owner: Persona) -> None:
    from generation.jobs.runner import JobRun
    from generation.jobs.services import job_cancel
    from generation.providers.base import Running

    job = await create(owner, f"gone {uuid.uuid4()}")
    await job.atransition(JobStatus.SUBMITTED, provider_request_id="req-2")
    run = JobRun(await Job.objects.select_related("model").aget(pk=job.pk))
    await database_sync_to_async(job_cancel)(user=owner.user, job_id=job.pk)
    await run._on_update(Running(new_logs=["step 1/4"]))
    with pytest.raises(IllegalTransition):
        await run._settle_updates()
    assert (await reload(job)).status == JobStatus.CANCELLED
    assert not await JobEvent.objects.filter(job=job, type="in_progress").aexists()
