"""The whole path, as a user meets it: HTTP API → job → fal emulator → stored image.

Brenia runs in its own daphne process (and, in the scale-out profile, with a
separate procrastinate worker process), talking to the fal emulator over HTTP.
"""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import pytest
from PIL import Image as PILImage

from generation.models import Image, Job
from tests.conftest import LiveBrenia, Persona

pytestmark = [pytest.mark.e2e]


def wait_for_status(client: httpx.Client, job_url: str, *, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(job_url).raise_for_status().json()
        if body["status"] in ("completed", "failed", "errored", "cancelled"):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"job still {body['status']} after {timeout} s")
        time.sleep(0.1)


def test_generate_returns_202_then_completes_with_an_image_of_the_requested_size(
        live_brenia: LiveBrenia, owner: Persona) -> None:
    client = httpx.Client(base_url=live_brenia.url,
                          headers={"Authorization": f"Bearer {owner.key}"})
    response = client.post("/api/images/generate", json={
        "model": "flux-schnell",
        "inputs": {"prompt": "A lemonade billboard at dusk", "output_format": "png"},
        "options": {"width": 640, "height": 480},
    })
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued"
    assert set(accepted["links"]) >= {"self", "cancel", "page", "events"}

    job = wait_for_status(client, accepted["links"]["self"])
    assert job["status"] == "completed", job
    assert job["cost"] == "0.003000"  # 0.31 MP billed as 1 MP at $0.003
    [image] = job["images"]
    download = client.get(image["url"])
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/png"
    with PILImage.open(io.BytesIO(download.content)) as picture:
        assert picture.format == "PNG"
        assert picture.size == (640, 480)

    # The image is one stored row, with a request id and one submit recorded.
    stored = Job.objects.get(pk=job["id"])
    assert stored.provider_request_id
    assert Image.objects.filter(job=stored).count() == 1
    assert stored.attempts.count() == 1


def test_other_users_cannot_see_the_job_or_its_image(live_brenia: LiveBrenia, owner: Persona,
                                                     outsider: Persona) -> None:
    mine = httpx.Client(base_url=live_brenia.url,
                        headers={"Authorization": f"Bearer {owner.key}"})
    theirs = httpx.Client(base_url=live_brenia.url,
                          headers={"Authorization": f"Bearer {outsider.key}"})
    accepted = mine.post("/api/images/generate", json={
        "model": "flux-schnell", "inputs": {"prompt": "private"}}).json()
    job = wait_for_status(mine, accepted["links"]["self"])
    assert theirs.get(accepted["links"]["self"]).status_code == 404
    assert theirs.get(job["images"][0]["url"]).status_code == 404
    assert httpx.get(live_brenia.url + job["images"][0]["url"]).status_code == 401


def test_health_endpoints(live_brenia: LiveBrenia) -> None:
    assert httpx.get(live_brenia.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(live_brenia.url + "/readyz").json()
    assert ready["status"] == "ok"
    assert set(ready["checks"]) == {"database", "channel_layer", "storage"}
