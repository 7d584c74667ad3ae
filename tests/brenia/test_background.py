"""The in-process background runner is bounded: a burst waits its turn, in order.

The runner tests drive a real ``InProcessRunner`` on its own loop thread, with tasks
that hold until the test releases them, so "how many run at once" is read from the
tasks themselves, never from timing. The API tests send more jobs than the bound
through the HTTP API and run them against the fal emulator, in this process and in a
daphne killed while most of them wait.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.test import override_settings

from brenia.background import JOBS, InProcessRunner, Task
from generation.emulators.server import EmulatorThread
from generation.models import Job, JobStatus
from tests.conftest import SCALEOUT, Persona, child_env, run_background_work, start_daphne
from tests.test_durability import (
    IN_FLIGHT,
    all_finished,
    assert_each_finished_once,
    kill,
    roomy_fal,
    wait_until,
)

__all__ = ["roomy_fal"]  # a fixture these tests use

WAIT = 30  # seconds a helper waits for the runner before the test fails, not a timing


class Holding:
    """A task whose runs each wait for their own release, recording who ran when."""

    def __init__(self, runner: InProcessRunner) -> None:
        self.runner = runner
        self.started: list[int] = []
        self.finished: list[int] = []
        self.active = 0
        self.peak = 0
        self.changed = threading.Condition()
        self.releases: dict[int, asyncio.Event] = {}
        self.task = Task(name=f"test.hold.{uuid.uuid4()}", fn=self._run, queue=JOBS)

    async def _run(self, *, index: int) -> None:
        release = self.releases.setdefault(index, asyncio.Event())
        with self.changed:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.started.append(index)
            self.changed.notify_all()
        try:
            await release.wait()
        finally:
            with self.changed:
                self.active -= 1
                self.finished.append(index)
                self.changed.notify_all()

    def submit(self, index: int, *, key: str | None = None) -> None:
        self.runner.submit(self.task, key=key, at=None, kwargs={"index": index})

    def wait_until(self, condition: Callable[[], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(condition, timeout=WAIT), (self.started, self.finished)

    def on_loop(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the runner's loop, after everything submitted before it."""
        async def call() -> Any:
            return fn()

        loop = self.runner._ensure_loop()
        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=WAIT)

    def release(self, *indexes: int) -> None:
        def release_them() -> None:
            for index in indexes:
                self.releases.setdefault(index, asyncio.Event()).set()

        self.on_loop(release_them)

    def drain(self) -> None:
        loop = self.runner._ensure_loop()
        asyncio.run_coroutine_threadsafe(self.runner.drain(), loop).result(timeout=WAIT)


@pytest.fixture
def holding() -> Iterator[Holding]:
    runner = InProcessRunner()
    yield Holding(runner)
    if runner.loop is not None:
        runner.loop.call_soon_threadsafe(runner.loop.stop)


@override_settings(BRENIA_INPROCESS_CONCURRENCY=3)
def test_no_more_than_the_bound_run_at_once_and_the_rest_wait_in_order(
        holding: Holding) -> None:
    for index in range(8):
        holding.submit(index)
    holding.wait_until(lambda: len(holding.started) == 3)
    assert holding.on_loop(lambda: (len(holding.runner.running), len(holding.runner.waiting))) \
        == (3, 5)

    holding.release(1)  # one ends: the first that waited takes its slot
    holding.wait_until(lambda: len(holding.started) == 4)
    assert holding.started == [0, 1, 2, 3]
    assert holding.peak == 3

    holding.release(*range(8))
    holding.drain()
    assert sorted(holding.finished) == list(range(8))
    assert holding.started == list(range(8))  # first come, first started
    assert holding.peak == 3
    assert not holding.runner.pending  # nothing left for carried() to report


@override_settings(BRENIA_INPROCESS_CONCURRENCY=1)
def test_waiting_work_is_carried_and_a_waiting_key_is_not_queued_twice(
        holding: Holding) -> None:
    holding.submit(0)
    holding.wait_until(lambda: holding.started == [0])
    holding.submit(1, key="only-once")
    holding.submit(2, key="only-once")  # the key waits already: dropped
    holding.submit(3)
    assert holding.on_loop(lambda: [queued.kwargs["index"] for queued in holding.runner.waiting]) \
        == [1, 3]
    # Recovery steps see waiting work as carried, so they do not submit it again.
    assert holding.runner.carried(holding.task, arg="index") == {"0", "1", "3"}

    holding.release(0, 1, 2, 3)
    holding.drain()
    assert holding.started == [0, 1, 3]


@override_settings(BRENIA_INPROCESS_CONCURRENCY=1)
def test_aborting_a_waiting_key_drops_it_before_it_runs(holding: Holding) -> None:
    holding.submit(0)
    holding.wait_until(lambda: holding.started == [0])
    holding.submit(1, key="unwanted")
    holding.submit(2)
    holding.on_loop(lambda: None)  # both are queued by now
    holding.runner.abort("unwanted")
    assert holding.on_loop(lambda: [queued.kwargs["index"] for queued in holding.runner.waiting]) \
        == [2]
    assert holding.runner.carried(holding.task, arg="index") == {"0", "2"}

    holding.release(0, 1, 2)
    holding.drain()
    assert holding.started == [0, 2]


@pytest.mark.django_db(transaction=True)
@override_settings(BRENIA_INPROCESS_CONCURRENCY=2)
def test_jobs_sent_beyond_the_bound_all_finish(owner: Persona,
                                               fal_emulator: EmulatorThread) -> None:
    api = owner.api()
    job_ids = []
    for index in range(7):
        response = api.post_json("/api/images/generate", {
            "model": "flux-schnell", "inputs": {"prompt": f"burst {index} {uuid.uuid4()}"}})
        assert response.status_code == 202, response.json()
        job_ids.append(response.json()["id"])
    async_to_sync(run_background_work)()
    statuses = set(Job.objects.filter(pk__in=job_ids).values_list("status", flat=True))
    assert statuses == {JobStatus.COMPLETED}


def submitted(jobs: list[tuple[Job, str]]) -> int:
    ids = [job.pk for job, _ in jobs]
    return Job.objects.filter(pk__in=ids).exclude(provider_request_id="").count()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(SCALEOUT, reason="the serving process runs jobs in the embedded profile")
def test_jobs_waiting_for_a_slot_when_the_server_dies_are_resumed_on_restart(
        owner: Persona, roomy_fal: EmulatorThread, tmp_path: Path) -> None:
    bound = 5
    env: dict[str, Any] = {**child_env(roomy_fal, tmp_path),
                           "BRENIA_INPROCESS_CONCURRENCY": str(bound)}
    log = tmp_path / "daphne.log"
    first, url = start_daphne(env, log)
    try:
        tag = f"bounded crash {uuid.uuid4()}"
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {owner.key}"})
        jobs = []
        for index in range(IN_FLIGHT):
            prompt = f"{tag} #{index:02d}#"
            accepted = client.post("/api/images/generate", json={
                "model": "flux-schnell", "inputs": {"prompt": prompt}}).json()
            jobs.append((Job.objects.get(pk=accepted["id"]), prompt))
        wait_until(lambda: submitted(jobs) >= bound, timeout=30, what="the first jobs running")
    finally:
        kill(first)
    # Each job takes seconds at fal: most never left the queue before the kill.
    assert submitted(jobs) < IN_FLIGHT
    second, _ = start_daphne(env, log)
    try:
        wait_until(lambda: all_finished(jobs), timeout=120, what="all jobs finished")
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert_each_finished_once(jobs, roomy_fal)
