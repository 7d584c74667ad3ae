"""What a job costs the database on the runner's hot path, and that the savings keep
the guarantees: gap-free ordered events, every log line sent, an attempt per try, and
the job's end and its attempt's end together.

Statement counts are read from Django's own query capture on the connection that
does the work; the time that spaces progress events is a clock the test moves.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from generation.emulators.server import EmulatorThread
from generation.jobs.events import record_update_event
from generation.jobs.lifecycle import job_finish
from generation.jobs.runner import JobRun, attempt_start, run_job
from generation.models import (
    AttemptOutcome,
    IllegalTransition,
    Job,
    JobAttempt,
    JobEvent,
    JobStatus,
)
from generation.providers.base import Running
from tests.conftest import Persona
from tests.generation.factories import make_job, make_prepared_job

TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT", "ROLLBACK")


def work(captured: CaptureQueriesContext) -> list[str]:
    """The statements that read or write rows (transaction control left out)."""
    return [query["sql"] for query in captured.captured_queries
            if not query["sql"].lstrip().upper().startswith(TRANSACTION_CONTROL)]


# --- one statement pair per status update ------------------------------------------------

@pytest.mark.django_db
def test_a_progress_update_and_its_event_are_one_update_and_one_insert(
        owner: Persona, django_assert_max_num_queries: Any) -> None:
    job = make_job(owner, status=JobStatus.SUBMITTED)
    query, values = job._transition_update(JobStatus.IN_PROGRESS, {"progress": 0.5})
    with django_assert_max_num_queries(4) as captured:  # + a savepoint pair in the test's
        event = record_update_event(job=job, query=query, values=values, type="in_progress",
                                    payload={"status": JobStatus.IN_PROGRESS, "logs": ["a"]})
    statements = work(captured)
    assert len(statements) == 2, statements
    assert statements[0].startswith("UPDATE") and "RETURNING" in statements[0]
    assert statements[1].startswith("INSERT")
    stored = Job.objects.get(pk=job.pk)
    assert (stored.status, stored.progress, stored.last_event_seq) == (
        JobStatus.IN_PROGRESS, 0.5, 1)
    assert event["seq"] == job.last_event_seq == 1
    assert list(JobEvent.objects.filter(job=job).values_list("seq", "type")) == [
        (1, "in_progress")]


@pytest.mark.django_db
def test_an_update_for_a_job_in_another_state_writes_nothing(owner: Persona) -> None:
    job = make_job(owner, status=JobStatus.CANCELLED)
    query, values = job._transition_update(JobStatus.IN_PROGRESS, {"progress": 0.5})
    with pytest.raises(IllegalTransition):
        record_update_event(job=job, query=query, values=values, type="in_progress",
                            payload={})
    stored = Job.objects.get(pk=job.pk)
    assert (stored.status, stored.progress, stored.last_event_seq) == (
        JobStatus.CANCELLED, None, 0)
    assert not JobEvent.objects.filter(job=job).exists()


@pytest.mark.django_db
def test_events_from_updates_and_plain_records_share_one_gap_free_sequence(
        owner: Persona) -> None:
    from generation.jobs.events import record_event

    job = make_job(owner, status=JobStatus.SUBMITTED)
    record_event(job=job, type="queued", payload={})
    for progress in (0.1, 0.2):
        query, values = job._transition_update(JobStatus.IN_PROGRESS, {"progress": progress})
        record_update_event(job=job, query=query, values=values, type="in_progress",
                            payload={})
    job_finish(job=job, status=JobStatus.FAILED, error_code="x", error_message="y")
    assert list(JobEvent.objects.filter(job=job).order_by("seq").values_list(
        "seq", "type")) == [(1, "queued"), (2, "in_progress"), (3, "in_progress"),
                            (4, "failed")]
    assert Job.objects.get(pk=job.pk).last_event_seq == 4


# --- attempts ------------------------------------------------------------------------------

@pytest.mark.django_db
def test_an_attempt_starts_in_one_statement_numbered_after_the_last(
        owner: Persona, django_assert_num_queries: Any) -> None:
    job = make_job(owner, status=JobStatus.SUBMITTED, provider_request_id="req-9")
    model = job.called_model
    numbers = []
    for _ in range(3):
        with django_assert_num_queries(1):
            attempt = attempt_start(job=job, provider="fal", model=model)
        numbers.append(attempt.number)
    assert numbers == [1, 2, 3]
    stored = JobAttempt.objects.get(pk=attempt.pk)
    assert (stored.number, stored.provider, stored.endpoint_id, stored.model_slug,
            stored.provider_request_id, stored.outcome) == (
        3, "fal", model.endpoint_id, model.slug, "req-9", AttemptOutcome.RUNNING)
    attempt.outcome = AttemptOutcome.SUCCEEDED
    attempt.save()  # an existing row: updated, not inserted again
    assert JobAttempt.objects.filter(job=job).count() == 3


@pytest.mark.django_db
def test_an_attempt_ended_with_the_job_commits_or_rolls_back_with_it(owner: Persona) -> None:
    job = make_job(owner, status=JobStatus.IN_PROGRESS)
    attempt = attempt_start(job=job, provider="fal", model=job.called_model)
    attempt.outcome = AttemptOutcome.SUCCEEDED
    job_finish(job=job, status=JobStatus.COMPLETED, cost=0, attempt=attempt)
    assert JobAttempt.objects.get(pk=attempt.pk).outcome == AttemptOutcome.SUCCEEDED

    other = make_job(owner, status=JobStatus.CANCELLED)
    late = attempt_start(job=other, provider="fal", model=other.called_model)
    late.outcome = AttemptOutcome.SUCCEEDED
    with pytest.raises(IllegalTransition):
        job_finish(job=other, status=JobStatus.COMPLETED, cost=0, attempt=late)
    assert JobAttempt.objects.get(pk=late.pk).outcome == AttemptOutcome.RUNNING


@pytest.mark.django_db
def test_a_job_without_a_webhook_ends_without_touching_outbound_rows(owner: Persona) -> None:
    job = make_job(owner, status=JobStatus.IN_PROGRESS)
    assert not job.webhook_url
    with CaptureQueriesContext(connection) as captured:
        job_finish(job=job, status=JobStatus.FAILED, error_code="x", error_message="y")
    assert not [sql for sql in work(captured) if "outbound_" in sql], work(captured)


# --- progress events at most about once a second -------------------------------------------

class HandClock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.time = 100.0
        self.moved = asyncio.Event()
        self.waiting = asyncio.Event()

    def now(self) -> float:
        return self.time

    def move(self, seconds: float) -> None:
        self.time += seconds
        self.moved.set()

    async def wait(self, seconds: float, wake: asyncio.Event) -> None:
        until = self.time + seconds
        self.waiting.set()
        try:
            while self.time < until and not wake.is_set():
                self.moved.clear()
                moved = asyncio.ensure_future(self.moved.wait())
                woken = asyncio.ensure_future(wake.wait())
                await asyncio.wait((moved, woken), return_when=asyncio.FIRST_COMPLETED)
                moved.cancel()
                woken.cancel()
        finally:
            self.waiting.clear()


async def running_events(job: Job) -> list[dict[str, Any]]:
    return [e.payload async for e in JobEvent.objects.filter(
        job=job, type="in_progress").order_by("seq")]


@pytest.mark.django_db(transaction=True)
async def test_log_lines_within_a_second_go_out_together_and_none_is_lost(
        owner: Persona) -> None:
    job = await database_sync_to_async(make_job)(owner, status=JobStatus.SUBMITTED)
    run = JobRun(await Job.objects.select_related("model").aget(pk=job.pk))
    clock = run.clock = HandClock()  # type: ignore[assignment]

    # The first move to in_progress goes out at once.
    await run._on_update(Running(new_logs=["step 1/5"], progress=0.2))
    assert run.pump is not None
    await asyncio.wait_for(run.pump, 10)
    assert [p["logs"] for p in await running_events(job)] == [["step 1/5"]]

    # Within the second after it: held back, merged, nothing written yet.
    clock.move(0.3)
    await run._on_update(Running(new_logs=["step 2/5"], progress=0.4))
    await asyncio.wait_for(clock.waiting.wait(), 10)
    await run._on_update(Running(new_logs=["step 3/5"], progress=0.6))
    assert len(await running_events(job)) == 1

    # Once the second has passed: one event with every line, in order.
    clock.move(0.7)
    await asyncio.wait_for(run.pump, 10)
    events = await running_events(job)
    assert [p["logs"] for p in events] == [["step 1/5"], ["step 2/5", "step 3/5"]]
    assert events[-1]["progress"] == 0.6

    # Held lines go out at once when the attempt settles (the job is about to end).
    clock.move(0.1)
    await run._on_update(Running(new_logs=["step 4/5"], progress=0.8))
    await asyncio.wait_for(clock.waiting.wait(), 10)
    await asyncio.wait_for(run._settle_updates(), 10)
    events = await running_events(job)
    assert [p["logs"] for p in events][-1] == ["step 4/5"]
    seqs = [e.seq async for e in JobEvent.objects.filter(job=job).order_by("seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    stored = await Job.objects.aget(pk=job.pk)
    assert (stored.status, stored.progress) == (JobStatus.IN_PROGRESS, 0.8)


class StoppedClock:
    """Time that never passes: held lines could only go out when the attempt settles."""

    def now(self) -> float:
        return 0.0

    async def wait(self, seconds: float, wake: asyncio.Event) -> None:
        await wake.wait()


@pytest.fixture
def stopped_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(JobRun, "clock", StoppedClock())
    yield


@pytest.mark.django_db(transaction=True)
async def test_a_job_ends_at_once_with_its_held_lines_sent_before_the_end(
        owner: Persona, fal_emulator: EmulatorThread, stopped_clock: None) -> None:
    job = await database_sync_to_async(make_prepared_job)(
        owner, inputs={"prompt": f"held {uuid.uuid4()}", "output_format": "png"})
    await asyncio.wait_for(run_job(job.pk), 60)
    job = await Job.objects.aget(pk=job.pk)
    assert job.status == JobStatus.COMPLETED, job.error_message
    events = [e async for e in JobEvent.objects.filter(job=job).order_by("seq")]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "completed"
    running = [e.payload for e in events if e.type == "in_progress"]
    # The first move, then (time having stood still) at most one event of held lines.
    assert 1 <= len(running) <= 2, running
    lines = [line for payload in running for line in payload["logs"]]
    assert len(lines) == len(set(lines))
    steps = [line for line in lines if line.startswith("Generating: step")]
    assert steps == sorted(steps)
    attempts = [a async for a in JobAttempt.objects.filter(job=job)]
    assert [(a.number, a.outcome) for a in attempts] == [(1, AttemptOutcome.SUCCEEDED)]
    assert attempts[0].ended_at is not None
    assert attempts[0].provider_request_id == job.provider_request_id
