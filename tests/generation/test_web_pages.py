"""The playground pages through Django's test client: any enabled model, its form
generated from its input schema, a run of it, and its inline errors."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image as PILImage

from generation.models import AIModel, Job
from tests.conftest import Persona

pytestmark = pytest.mark.django_db


def browser_for(persona: Persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def test_the_playground_lists_enabled_models_by_kind(owner: Persona) -> None:
    AIModel.objects.filter(slug="flux-pro").update(enabled=False)
    html = browser_for(owner).get("/playground/").content.decode()
    assert "Text to image" in html and "Background removal" in html
    assert "/playground/flux-dev/" in html and "/playground/flux-pro/" not in html
    assert browser_for(owner).get("/playground/flux-pro/").status_code == 404


def test_a_model_form_follows_its_schema_and_runs(owner: Persona, fal_emulator: Any) -> None:
    browser = browser_for(owner)
    html = browser.get("/playground/flux-dev/").content.decode()
    for name in ("prompt", "image_size", "image_size__width", "num_inference_steps", "seed"):
        assert f'name="{name}"' in html
    response = browser.post("/playground/flux-dev/", {
        "prompt": "A lemonade stand at noon", "image_size": "square_hd",
        "num_inference_steps": "12", "num_images": "1", "guidance_scale": "3.5",
        "output_format": "jpeg", "enable_safety_checker": "on"})
    assert response.status_code == 302
    job = Job.objects.get(user=owner.user)
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert job.inputs["prompt"] == "A lemonade stand at noon"
    assert job.inputs["image_size"] == "square_hd" and job.inputs["num_inference_steps"] == 12


def test_bad_values_are_inline_errors_and_start_nothing(owner: Persona) -> None:
    response = browser_for(owner).post("/playground/flux-dev/", {
        "prompt": "", "image_size": "custom", "image_size__width": "-5",
        "image_size__height": "512", "num_inference_steps": "999"})
    assert response.status_code == 422
    html = response.content.decode()
    assert html.count('aria-invalid="true"') >= 3  # prompt, width, steps
    assert not Job.objects.exists()


def test_an_uploaded_image_is_sent_as_a_data_uri(owner: Persona, fal_emulator: Any) -> None:
    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 48), (200, 30, 40)).save(buffer, "PNG")
    upload = SimpleUploadedFile("photo.png", buffer.getvalue(), content_type="image/png")
    response = browser_for(owner).post("/playground/background-removal/", {
        "image_url__upload": upload})
    assert response.status_code == 302, response.content.decode()[:2000]
    job = Job.objects.get(user=owner.user)
    prefix = "data:image/png;base64,"
    assert job.inputs["image_url"].startswith(prefix)
    decoded = base64.b64decode(job.inputs["image_url"][len(prefix):])
    with PILImage.open(io.BytesIO(decoded)) as picture:
        assert picture.size == (64, 48)


def test_someone_elses_job_page_is_not_found(owner: Persona, outsider: Persona,
                                            fal_emulator: Any) -> None:
    browser_for(owner).post("/playground/flux-schnell/", {"prompt": "Iced tea"})
    job = Job.objects.get(user=owner.user)
    assert browser_for(owner).get(f"/jobs/{job.pk}/").status_code == 200
    assert browser_for(outsider).get(f"/jobs/{job.pk}/").status_code == 404
