"""Circuit breakers per provider endpoint: open, half-open, recover; shared by processes.

The rules with an injected clock, then through the runner with the fal emulator's fault
injection, then what operators see (/readyz, /metrics, the admin), then two separate
processes over the scale-out profile's Redis.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import fal_client
import pytest
from channels.db import database_sync_to_async
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from generation.emulators.fal import FAL_STATE, FalEmulatorConfig, create_app
from generation.emulators.server import EmulatorThread
from generation.jobs.runner import run_job
from generation.models import AIModel, AttemptOutcome, Job, JobStatus
from generation.routing.breaker import BreakerOpen, CircuitBreaker
from tests.conftest import FAL_TEST_KEY, ROOT, Persona, free_port
from tests.generation.factories import make_prepared_job

pytestmark = pytest.mark.django_db(transaction=True)
SCHNELL = "fal-ai/flux/schnell"
SCHNELL_BREAKER = f"fal:{SCHNELL}"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.02)


# --- the rules --------------------------------------------------------------------------

def test_a_breaker_opens_after_the_failures_in_a_row_and_refuses_until_reset() -> None:
    clock = Clock()
    breaker = CircuitBreaker("fal:rules", failures=3, reset_seconds=30, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # a success in between: the count starts again
    breaker.record_failure()
    breaker.record_failure()
    breaker.check()
    assert breaker.state().state == "closed"
    breaker.record_failure()
    assert breaker.state().state == "open"
    clock.now += 10
    with pytest.raises(BreakerOpen) as refused:
        breaker.check()
    assert refused.value.code == "provider_unavailable"
    assert refused.value.retry_after == 20


def test_half_open_lets_one_probe_through_whose_failure_opens_it_again() -> None:
    clock = Clock()
    breaker = CircuitBreaker("fal:probe", failures=1, reset_seconds=30, clock=clock)
    breaker.record_failure()
    clock.now += 30
    assert breaker.state().state == "half_open"
    breaker.check()  # the probe
    with pytest.raises(BreakerOpen):
        breaker.check()  # everyone else waits for it
    breaker.record_failure()  # the probe failed: a whole period again
    clock.now += 29
    assert breaker.state().state == "open"
    clock.now += 1
    breaker.check()  # the next probe
    breaker.record_success()
    assert breaker.state().state == "closed"
    breaker.check()
    breaker.check()


# --- through the runner ----------------------------------------------------------------

@pytest.fixture
def faulty_fal(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    server = EmulatorThread(lambda: create_app(FalEmulatorConfig(latency="instant")))
    settings.FAL_KEY = FAL_TEST_KEY
    settings.FAL_QUEUE_URL = server.start()
    settings.BRENIA_POLL_INTERVAL = 0.05
    settings.BRENIA_BREAKER_FAILURES = 3
    monkeypatch.setattr("generation.jobs.runner.BACKOFF_BASE", 0.01)
    monkeypatch.setattr(fal_client.client, "MAX_ATTEMPTS", 2)
    assert server.app is not None
    yield server.app[FAL_STATE]
    server.stop()


async def run(persona: Persona, prompt: str) -> Job:
    job = await database_sync_to_async(make_prepared_job)(persona, inputs={"prompt": prompt})
    await run_job(job.pk)
    return await Job.objects.aget(pk=job.pk)


async def attempts(job: Job) -> list[tuple[str, str, str, str]]:
    return [(a.model_slug, a.outcome, a.error_kind, a.reason)
            async for a in job.attempts.order_by("number")]


def submits(fal: Any) -> int:
    return int(fal.stats()["submit_attempts"]["by_endpoint"].get(SCHNELL, 0))


def test_a_breaker_whose_store_is_down_lets_calls_go(settings: Any) -> None:
    """Redis restarting must not fail jobs: found by bench/drills.py redis."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    CircuitBreaker("fal:store-down", failures=1).check()  # no exception: the call goes


async def test_a_job_runs_while_the_breaker_store_is_down(
        owner: Persona, faulty_fal: Any, settings: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    job = await run(owner, f"store down {uuid.uuid4()}")
    assert job.status == JobStatus.COMPLETED, (job.error_code, job.error_message)


async def test_repeated_failures_open_the_breaker_and_later_jobs_are_refused_at_once(
        owner: Persona, faulty_fal: Any) -> None:
    faulty_fal.set_faults(SCHNELL, {"rate": {"runner_error": 1.0}})
    first = await run(owner, f"outage {uuid.uuid4()}")
    assert first.status == JobStatus.ERRORED
    assert submits(faulty_fal) == 3
    assert CircuitBreaker(SCHNELL_BREAKER).state().state == "open"
    second = await run(owner, f"refused {uuid.uuid4()}")
    assert second.status == JobStatus.ERRORED
    assert second.error_code == "provider_unavailable"
    assert "try again in about" in second.error_message
    assert await attempts(second) == [
        ("flux-schnell", AttemptOutcome.TRANSIENT_ERROR, "breaker_open",
         "no fallback left (breaker_open)")]
    assert submits(faulty_fal) == 3  # nothing was sent


async def test_an_open_breaker_falls_back_without_calling_the_endpoint(
        owner: Persona, faulty_fal: Any) -> None:
    await AIModel.objects.filter(slug="flux-schnell").aupdate(
        fallback=await AIModel.objects.aget(slug="flux-dev"))
    breaker = CircuitBreaker(SCHNELL_BREAKER)
    for _ in range(3):
        await breaker.arecord_failure()
    job = await run(owner, f"around {uuid.uuid4()}")
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert await attempts(job) == [
        ("flux-schnell", AttemptOutcome.TRANSIENT_ERROR, "breaker_open",
         "fell back to flux-dev (breaker_open)"),
        ("flux-dev", AttemptOutcome.SUCCEEDED, "", "")]
    assert submits(faulty_fal) == 0


async def test_a_half_open_breaker_recovers_through_a_successful_probe_job(
        owner: Persona, faulty_fal: Any, settings: Any) -> None:
    settings.BRENIA_BREAKER_RESET_SECONDS = 0.3
    faulty_fal.set_faults(SCHNELL, {"rate": {"runner_error": 1.0}})
    assert (await run(owner, f"down {uuid.uuid4()}")).status == JobStatus.ERRORED
    breaker = CircuitBreaker(SCHNELL_BREAKER)
    assert breaker.state().state == "open"
    await database_sync_to_async(wait_for)(
        lambda: breaker.state().state == "half_open", "the breaker half-open")
    # Still failing: the probe job's failure opens it again, and its retry is refused.
    probe = await run(owner, f"probe {uuid.uuid4()}")
    assert [kind for _, _, kind, _ in await attempts(probe)] == ["server", "breaker_open"]
    assert breaker.state().state == "open"
    # Mended: the next probe succeeds and closes it.
    faulty_fal.set_faults(SCHNELL, {})
    await database_sync_to_async(wait_for)(
        lambda: breaker.state().state == "half_open", "the breaker half-open again")
    healed = await run(owner, f"healed {uuid.uuid4()}")
    assert healed.status == JobStatus.COMPLETED, healed.error_message
    assert breaker.state().state == "closed"


async def test_a_safety_refusal_does_not_count_against_the_endpoint(
        owner: Persona, faulty_fal: Any) -> None:
    faulty_fal.set_faults(SCHNELL, {"sequence": ["content_policy"] * 4})
    for _ in range(4):
        assert (await run(owner, f"refused {uuid.uuid4()}")).status == JobStatus.FAILED
    assert CircuitBreaker(SCHNELL_BREAKER).state().state == "closed"


# --- what operators see -----------------------------------------------------------------

def test_readyz_and_metrics_show_an_open_breaker_without_failing_readiness(
        seeded: None, settings: Any) -> None:
    breaker = CircuitBreaker(SCHNELL_BREAKER, failures=2)
    breaker.record_failure()
    breaker.record_failure()
    response = Client().get("/readyz")
    body = response.json()
    assert body["breakers"][SCHNELL_BREAKER]["state"] == "open"
    assert body["breakers"][SCHNELL_BREAKER]["failures"] == 2
    assert body["breakers"]["fal:fal-ai/flux/dev"]["state"] == "closed"
    assert response.status_code == 200, body  # one failing endpoint is not unreadiness
    settings.BRENIA_METRICS_TOKEN = "breaker-token"
    scraped = Client().get("/metrics", headers={"Authorization": "Bearer breaker-token"})
    values = {(s.name, s.labels.get("endpoint")): s.value
              for family in text_string_to_metric_families(scraped.content.decode())
              for s in family.samples}
    assert values[("brenia_provider_breaker_state", SCHNELL_BREAKER)] == 2


def test_the_admin_lists_breakers_and_closes_one(seeded: None, admin_client: Client) -> None:
    breaker = CircuitBreaker(SCHNELL_BREAKER, failures=1)
    breaker.record_failure()
    page = admin_client.get("/admin/generation/providerendpoint/")
    assert page.status_code == 200
    assert "open (probe in" in page.content.decode()
    schnell = AIModel.objects.get(slug="flux-schnell")
    done = admin_client.post("/admin/generation/providerendpoint/", {
        "action": "close_breakers", "_selected_action": [schnell.pk]})
    assert done.status_code == 302
    assert breaker.state().state == "closed"


# --- two processes, one state ----------------------------------------------------------

PROCESS = """
import os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brenia.settings")
django.setup()
from generation.routing.breaker import BreakerOpen, CircuitBreaker
breaker = CircuitBreaker(sys.argv[1])
print("ready", flush=True)
for line in sys.stdin:
    command = line.strip()
    if command == "fail":
        breaker.record_failure()
        print(breaker.state().state, flush=True)
    elif command == "succeed":
        breaker.record_success()
        print(breaker.state().state, flush=True)
    elif command == "state":
        print(breaker.state().state, flush=True)
    elif command == "check":
        try:
            breaker.check()
            print("go", flush=True)
        except BreakerOpen:
            print("refused", flush=True)
"""


class BreakerProcess:
    """A separate Python process with Brenia's settings, holding one breaker."""

    def __init__(self, endpoint: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", PROCESS, endpoint], cwd=ROOT,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.read() == "ready"

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def read(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def ask(self, command: str) -> str:
        self.send(command)
        return self.read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=15)


@pytest.mark.skipif(not os.environ.get("REDIS_URL"),
                    reason="the embedded profile is one process: its breakers live in "
                           "that process's cache; scale-out shares them through Redis")
def test_two_processes_see_one_breaker_and_only_one_of_them_probes(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The processes use the breakers' own key prefix; a fresh endpoint keeps runs apart.
    monkeypatch.setattr("generation.routing.breaker.KEY_PREFIX", "routing:breaker:")
    endpoint = f"fal:test/shared-{uuid.uuid4().hex}"
    env = {**os.environ, "BRENIA_BREAKER_FAILURES": "3",
           "BRENIA_BREAKER_RESET_SECONDS": "1.5"}
    settings.BRENIA_BREAKER_FAILURES, settings.BRENIA_BREAKER_RESET_SECONDS = 3, 1.5
    here = CircuitBreaker(endpoint)
    first, second = BreakerProcess(endpoint, env), BreakerProcess(endpoint, env)
    try:
        assert first.ask("fail") == "closed"
        assert second.ask("fail") == "closed"
        assert first.ask("fail") == "open"  # the third in a row, counted over both
        assert second.ask("check") == "refused"
        assert here.state().state == "open"
        wait_for(lambda: second.ask("state") == "half_open", "half-open in the other process")
        # Both ask at once: exactly one of them gets the probe.
        first.send("check")
        second.send("check")
        assert sorted([first.read(), second.read()]) == ["go", "refused"]
        assert first.ask("succeed") == "closed"
        assert second.ask("state") == "closed"
        assert second.ask("check") == "go"
        assert here.state().state == "closed"
    finally:
        first.close()
        second.close()
