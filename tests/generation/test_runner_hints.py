"""Brenia sends ``X-Fal-Runner-Hint`` from where each registry row says it comes from:
the LoRA path (a template's LoRA too), the model id, or nowhere."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from generation.emulators.fal import FAL_STATE
from generation.emulators.server import EmulatorThread
from generation.jobs import services
from generation.models import AIModel, Job, JobStatus
from tests.conftest import Persona, run_background_work

pytestmark = pytest.mark.django_db(transaction=True)

LORA = "https://cdn.example.com/loras/brand-style.safetensors"


def _hint_of(emulator: EmulatorThread, job: Job) -> Any:
    assert emulator.app is not None
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error_message
    record = emulator.app[FAL_STATE].request_info(job.provider_request_id)
    assert record is not None
    return record["hint"]


def _lora_job(persona: Persona) -> Job:
    job, _ = services.job_create(user=persona.user, model_slug="flux-lora", inputs={
        "prompt": f"brand style {uuid.uuid4()}", "lora_url": LORA,
        "image_size": {"width": 256, "height": 256}})
    async_to_sync(run_background_work)()
    return job


@pytest.mark.parametrize(("field", "expected"), [
    ("loras", LORA), ("@model", "fal-ai/flux-lora"), ("", None)])
def test_the_hint_comes_from_where_the_registry_says(
        owner: Persona, fal_emulator: EmulatorThread, field: str, expected: Any) -> None:
    AIModel.objects.filter(slug="flux-lora").update(runner_hint_field=field)
    assert _hint_of(fal_emulator, _lora_job(owner)) == expected


def test_a_templates_person_lora_is_the_hint_of_its_background_step(
        owner: Persona, fal_emulator: EmulatorThread, gemini_emulator: EmulatorThread) -> None:
    from templates_app.models import TemplateRun
    from templates_app.services import ad_template_seed, template_run_start

    ad_template_seed()
    run, _ = template_run_start(
        user=owner.user, slug="billboard", formats=["48-sheet"],
        variables={"product": "Sicilian lemonade", "offer": "Free delivery this week",
                   "audience": "city commuters", "person_lora_url": LORA})
    async_to_sync(run_background_work)()
    run = TemplateRun.objects.get(pk=run.pk)
    step = run.steps.get(key__startswith="background:")
    assert step.job is not None and step.job.model_slug == "flux-lora"
    assert _hint_of(fal_emulator, step.job) == LORA
