"""One request id traces a job from the API call to its webhook, in production's JSON logs.

Brenia runs live in production mode (daphne, plus a worker in the scale-out profile,
where the job and its webhook run in that other process). The test sends an
``X-Request-ID``, lets the job run against the fal emulator and deliver its webhook
to a receiver on loopback, then reads what the processes wrote.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from generation.emulators.server import EmulatorThread
from tests.brenia.live import Hooks, brenia_env, json_lines, wait_for
from tests.conftest import LiveBrenia, Persona, brenia_processes

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCTION = {
    "BRENIA_ENV": "production",
    "SECRET_KEY": "tracing-" + "k" * 50,
    "ALLOWED_HOSTS": "127.0.0.1",
    "BRENIA_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
}
# What the TLS-terminating proxy in front of production adds to every request.
PROXY = {"X-Forwarded-Proto": "https"}
PROMPT = "Lemonade billboard at dusk, tracing-prompt-31f0"


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    with Hooks() as receiver:
        yield receiver


@pytest.fixture
def production(seeded: None, fal_emulator: EmulatorThread, gemini_emulator: EmulatorThread,
               tmp_path: Path) -> Iterator[LiveBrenia]:
    # LOG_FORMAT is not set: production must choose JSON by itself.
    env = brenia_env(fal_emulator, gemini_emulator, tmp_path, **PRODUCTION)
    with brenia_processes(env, tmp_path, quiet=True) as live:
        yield live


def api(live: LiveBrenia, persona: Persona) -> httpx.Client:
    return httpx.Client(base_url=live.url, timeout=30,
                        headers={"Authorization": f"Bearer {persona.key}", **PROXY})


def finished(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    job: dict[str, Any] = client.get(f"/api/jobs/{job_id}").json()
    return job if job["status"] in ("completed", "failed", "errored", "cancelled") else None


def traced(lines: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["request_id"] == request_id]


def test_one_request_id_traces_a_job_from_the_api_call_to_its_webhook(
        production: LiveBrenia, owner: Persona, hooks: Hooks) -> None:
    client = api(production, owner)
    fal_trace, gemini_trace = (f"trace-{uuid.uuid4().hex[:12]}" for _ in range(2))
    hook = hooks.url()
    created = client.post("/api/images/generate", headers={"X-Request-ID": fal_trace}, json={
        "model": "flux-schnell", "inputs": {"prompt": PROMPT}, "webhook_url": hook})
    assert created.status_code == 202, created.text
    assert created.headers["X-Request-ID"] == fal_trace
    job_id = created.json()["id"]
    gemini = client.post("/api/images/generate", headers={"X-Request-ID": gemini_trace},
                         json={"model": "nano-banana", "inputs": {"prompt": PROMPT}})
    assert gemini.status_code == 202, gemini.text

    for job in (job_id, gemini.json()["id"]):
        assert wait_for(lambda job=job: finished(client, job),  # type: ignore[misc]
                        f"end of job {job}")["status"] == "completed"
    delivered = wait_for(lambda: hooks.got(hook), "webhook")
    assert json.loads(delivered[0])["job"]["id"] == job_id

    # The attempt's line is written once the receiver has answered: wait for it too.
    def webhook_lines() -> list[dict[str, Any]]:
        return [line for line in json_lines(production)
                if line["logger"] == "generation.outbound.delivery" and job_id in line["message"]]

    attempt = wait_for(webhook_lines, "webhook attempt line")
    lines = json_lines(production)  # every line JSON: production's default format

    assert attempt[0]["request_id"] == fal_trace
    assert "delivered after 1 attempt" in attempt[0]["message"]
    mine = traced(lines, fal_trace)
    requests = [line for line in mine if line["logger"] == "brenia.request"]
    assert requests and requests[0]["message"].startswith("POST /api/images/generate 202")
    assert requests[0]["status"] == 202 and "duration_ms" in requests[0]
    job_lines = [line for line in mine if line["logger"] == "generation.jobs.lifecycle"]
    assert f"job {job_id} completed" in [line["message"] for line in job_lines]
    calls = {line["call"] for line in mine if line["logger"] == "generation.providers"}
    assert {"submit", "result"} <= calls, mine
    assert all(line["provider"] == "fal" for line in mine if "provider" in line)

    gemini_calls = [line for line in traced(lines, gemini_trace)
                    if line["logger"] == "generation.providers"]
    assert [(line["provider"], line["call"], line["outcome"]) for line in gemini_calls] == [
        ("gemini", "generate_content", "ok")]
    # At INFO (production's level) no line carries the prompt.
    assert not [line for line in lines if "tracing-prompt-31f0" in json.dumps(line)]


def test_an_odd_request_id_is_replaced_and_the_new_one_logged(
        production: LiveBrenia, owner: Persona) -> None:
    response = api(production, owner).get("/api/jobs", headers={"X-Request-ID": "bad id <x>"})
    assert response.status_code == 200
    given = response.headers["X-Request-ID"]
    assert given != "bad id <x>" and len(given) == 32
    line = wait_for(lambda: [line for line in json_lines(production)
                             if line["logger"] == "brenia.request"
                             and line["request_id"] == given], "request line")[0]
    assert line["message"].startswith("GET /api/jobs 200")


def test_the_request_line_keeps_the_query_out_and_a_forged_line_in_the_path_escaped(
        owner: Persona, caplog: pytest.LogCaptureFixture) -> None:
    from tests.conftest import ApiClient

    with caplog.at_level("INFO", logger="brenia.request"):
        ApiClient(owner.key).get_json("/api/jobs%0A2026 INFO forged", data={"token": "s3cret"})
    [line] = [r for r in caplog.records if r.name == "brenia.request"]
    assert line.getMessage().startswith("GET /api/jobs%0A2026%20INFO%20forged 404")
    assert "\n" not in line.getMessage() and "s3cret" not in line.getMessage()
