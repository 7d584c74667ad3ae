"""Processes killed at any moment lose nothing, submit nothing twice, charge once."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from generation.emulators.fal import FAL_STATE, FalEmulatorConfig, create_app
from generation.emulators.server import EmulatorThread
from generation.jobs.services import job_create
from generation.models import Image, Job, JobEvent, JobStatus
from tests.conftest import SCALEOUT, Persona, child_env, start_daphne, start_worker

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

IN_FLIGHT = 20


@pytest.fixture
def roomy_fal() -> Iterator[EmulatorThread]:
    """Enough runners that every job is in flight at once, each for a few seconds."""
    server = EmulatorThread(lambda: create_app(FalEmulatorConfig(
        latency="fast", runners=IN_FLIGHT + 5, inference_s=3.0)))
    server.start()
    yield server
    server.stop()


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def make_jobs(persona: Persona, tag: str, count: int = IN_FLIGHT) -> list[tuple[Job, str]]:
    jobs = []
    for index in range(count):
        prompt = f"{tag} #{index:02d}#"
        job, _ = job_create(user=persona.user, model_slug="flux-schnell",
                            inputs={"prompt": prompt})
        jobs.append((job, prompt))
    return jobs


def assert_each_finished_once(jobs: list[tuple[Job, str]], emulator: EmulatorThread) -> None:
    assert emulator.app is not None
    state = emulator.app[FAL_STATE]
    for job, prompt in jobs:
        job.refresh_from_db()
        assert job.status == JobStatus.COMPLETED, (job.status, job.error_message)
        assert state.submit_count(prompt_contains=prompt) == 1, prompt
        assert Image.objects.filter(job=job).count() == 1
        assert JobEvent.objects.filter(job=job, type="completed").count() == 1
        assert str(job.cost) == "0.003000"


def all_submitted(jobs: list[tuple[Job, str]]) -> bool:
    ids = [job.pk for job, _ in jobs]
    return Job.objects.filter(pk__in=ids).exclude(provider_request_id="").count() == len(ids)


def all_finished(jobs: list[tuple[Job, str]]) -> bool:
    ids = [job.pk for job, _ in jobs]
    return Job.objects.filter(pk__in=ids, status__in=Job.TERMINAL).count() == len(ids)


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.skipif(not SCALEOUT, reason="workers exist in the scale-out profile")
def test_killed_worker_with_20_jobs_in_flight_is_finished_by_a_new_one(
        owner: Persona, roomy_fal: EmulatorThread, tmp_path: Path) -> None:
    env = child_env(roomy_fal, tmp_path)
    env.update({"BRENIA_STALLED_WORKER_TIMEOUT": "2", "BRENIA_RECOVERY_INTERVAL": "1"})
    log = tmp_path / "workers.log"
    first = start_worker(env, log)
    jobs = make_jobs(owner, f"crash {uuid.uuid4()}")
    try:
        wait_until(lambda: all_submitted(jobs), timeout=30, what="all jobs submitted")
        assert not all_finished(jobs)
        kill(first)
        second = start_worker(env, log)
        try:
            wait_until(lambda: all_finished(jobs), timeout=90, what="all jobs finished")
        finally:
            second.terminate()
            second.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert_each_finished_once(jobs, roomy_fal)


@pytest.mark.skipif(SCALEOUT, reason="the serving process runs jobs in the embedded profile")
def test_killed_server_with_20_jobs_in_flight_resumes_them_on_restart(
        owner: Persona, roomy_fal: EmulatorThread, tmp_path: Path) -> None:
    env: dict[str, Any] = child_env(roomy_fal, tmp_path)
    log = tmp_path / "daphne.log"
    first, url = start_daphne(env, log)
    try:
        tag = f"crash {uuid.uuid4()}"
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {owner.key}"})
        jobs = []
        for index in range(IN_FLIGHT):
            prompt = f"{tag} #{index:02d}#"
            accepted = client.post("/api/images/generate", json={
                "model": "flux-schnell", "inputs": {"prompt": prompt}}).json()
            jobs.append((Job.objects.get(pk=accepted["id"]), prompt))
        wait_until(lambda: all_submitted(jobs), timeout=30, what="all jobs submitted")
        assert not all_finished(jobs)
    finally:
        kill(first)
    second, _ = start_daphne(env, log)
    try:
        wait_until(lambda: all_finished(jobs), timeout=90, what="all jobs finished")
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert_each_finished_once(jobs, roomy_fal)


@pytest.mark.skipif(not SCALEOUT, reason="workers exist in the scale-out profile")
def test_sigterm_lets_a_worker_finish_what_it_runs_then_exit(
        owner: Persona, roomy_fal: EmulatorThread, tmp_path: Path) -> None:
    env = child_env(roomy_fal, tmp_path)
    env["BRENIA_SHUTDOWN_GRACE"] = "30"
    worker = start_worker(env, tmp_path / "worker.log")
    jobs = make_jobs(owner, f"graceful {uuid.uuid4()}", count=5)
    try:
        wait_until(lambda: all_submitted(jobs), timeout=30, what="jobs submitted")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=40) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    # Everything it had taken was finished before it left; nothing needed a rescue.
    assert all_finished(jobs)
    assert_each_finished_once(jobs, roomy_fal)
