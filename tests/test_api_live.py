"""API behaviour that needs jobs really running: waiting, cancelling a running job."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from generation.emulators.fal import FAL_STATE
from generation.emulators.server import EmulatorThread
from generation.models import Job, JobStatus
from tests.conftest import LiveBrenia, Persona

pytestmark = [pytest.mark.e2e]


def api(live: LiveBrenia, persona: Persona) -> httpx.Client:
    return httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {persona.key}"},
                        timeout=30)


def test_wait_returns_the_finished_job_or_202_when_it_is_not_done(
        live_brenia: LiveBrenia, owner: Persona) -> None:
    client = api(live_brenia, owner)
    done = client.post("/api/images/generate?wait=20", json={
        "model": "flux-schnell", "inputs": {"prompt": "waited for"}})
    assert done.status_code == 200
    assert done.json()["status"] == "completed"
    assert done.json()["images"]
    slow = client.post("/api/images/generate?wait=1", json={
        "model": "flux-schnell", "inputs": {"prompt": "too slow [[fal:slow]]"}})
    assert slow.status_code == 202
    assert slow.json()["status"] in ("queued", "submitted", "in_progress")


def test_cancelling_a_running_job_stops_it_at_the_provider(
        live_brenia: LiveBrenia, live_fal: EmulatorThread, owner: Persona) -> None:
    client = api(live_brenia, owner)
    prompt = f"cancel me {time.time()} [[fal:hang]]"
    job_id = client.post("/api/images/generate", json={
        "model": "flux-schnell", "inputs": {"prompt": prompt}}).json()["id"]
    deadline = time.monotonic() + 20
    while Job.objects.get(pk=job_id).status != JobStatus.IN_PROGRESS:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.1)

    cancelled = client.post(f"/api/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert live_fal.app is not None
    state = live_fal.app[FAL_STATE]

    def remote() -> dict[str, Any]:
        [request] = [r for r in state.request_list() if prompt in (r.get("prompt") or "")]
        return request

    deadline = time.monotonic() + 20
    while remote()["status"] != "COMPLETED":  # the hung request was told to stop
        assert time.monotonic() < deadline, remote()
        time.sleep(0.1)
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.CANCELLED  # and nothing moved it afterwards
    assert job.images.count() == 0
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 409


def test_low_priority_reaches_the_providers_queue(live_brenia: LiveBrenia,
                                                  live_fal: EmulatorThread,
                                                  owner: Persona) -> None:
    client = api(live_brenia, owner)
    prompt = f"background batch {time.time()}"
    done = client.post("/api/images/generate?wait=20", json={
        "model": "flux-schnell", "inputs": {"prompt": prompt}, "options": {"priority": "low"}})
    assert done.json()["status"] == "completed"
    assert live_fal.app is not None
    [request] = [r for r in live_fal.app[FAL_STATE].request_list()
                 if prompt in (r.get("prompt") or "")]
    assert request["priority"] == "low"
