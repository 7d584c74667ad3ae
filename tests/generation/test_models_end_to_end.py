"""Every seeded model, run for real through its provider against the emulators."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from generation.emulators.server import EmulatorThread
from generation.jobs.runner import run_job
from generation.models import Image, Job, JobStatus
from generation.registry.services import seed_rows
from tests.conftest import Persona
from tests.generation.factories import make_prepared_job
from tests.generation.samples import valid_inputs

pytestmark = pytest.mark.django_db(transaction=True)

SEEDED = [row["slug"] for row in seed_rows()]


@pytest.fixture
def emulators(fal_emulator: EmulatorThread, gemini_emulator: EmulatorThread) -> None:
    """Both providers point at their emulators for these tests."""


async def run(persona: Persona, slug: str, inputs: dict[str, Any],
              options: dict[str, Any] | None = None) -> Job:
    job = await database_sync_to_async(make_prepared_job)(persona, slug=slug, inputs=inputs,
                                                          options=options)
    await run_job(job.pk)
    return await Job.objects.aget(pk=job.pk)


def stored_picture(image: Image) -> PILImage.Image:
    with default_storage.open(image.file.name, "rb") as handle:
        picture = PILImage.open(io.BytesIO(handle.read()))
        picture.load()
    return picture


@pytest.mark.parametrize("slug", SEEDED)
async def test_every_seeded_model_completes(owner: Persona, emulators: None, slug: str) -> None:
    job = await run(owner, slug, valid_inputs(slug))
    assert job.status == JobStatus.COMPLETED, (job.error_code, job.error_message)
    assert job.cost is not None and job.cost > 0
    images = [i async for i in Image.objects.filter(job=job)]
    if slug == "gemini-copy":
        assert images == []
        assert len(json.loads(job.result["text"])["headlines"]) >= 3
    else:
        assert images, "an image model must produce images"
        for image in images:
            picture = stored_picture(image)
            assert picture.size == (image.width, image.height)


async def test_background_removal_returns_a_real_cut_out(owner: Persona, emulators: None) -> None:
    job = await run(owner, "background-removal", valid_inputs("background-removal"))
    [image] = [i async for i in Image.objects.filter(job=job)]
    picture = stored_picture(image)
    assert picture.mode == "RGBA"
    alpha = picture.getchannel("A")
    assert alpha.getextrema() == (0, 255)  # transparent background, opaque subject


async def test_requested_size_is_honoured(owner: Persona, emulators: None) -> None:
    job = await run(owner, "flux-dev", {"prompt": "wide banner", "output_format": "png"},
                    {"width": 1200, "height": 628})
    [image] = [i async for i in Image.objects.filter(job=job)]
    assert (image.width, image.height, image.format) == (1200, 628, "PNG")
    assert str(job.cost) == "0.025000"  # 0.75 MP, billed as 1 MP at $0.025


async def test_nano_banana_cost_comes_from_reported_image_tokens(owner: Persona,
                                                                emulators: None) -> None:
    job = await run(owner, "nano-banana-pro",
                    {"prompt": "poster", "image_size": "4K", "aspect_ratio": "16:9"})
    assert job.status == JobStatus.COMPLETED, job.error_message
    [image] = [i async for i in Image.objects.filter(job=job)]
    assert (image.width, image.height) == (5504, 3072)
    assert str(job.cost) == "0.240000"  # 2000 image tokens at $120 per million


@pytest.mark.parametrize(("token", "code"), [
    ("[[gemini:image_safety]]", "image_safety"),
    ("[[gemini:block]]", "prompt_blocked"),
    ("[[gemini:no_image]]", "no_image"),
])
async def test_gemini_refusals_fail_with_their_reason(owner: Persona, emulators: None,
                                                     token: str, code: str) -> None:
    job = await run(owner, "nano-banana", {"prompt": f"a poster {token}"})
    assert job.status == JobStatus.FAILED
    assert job.error_code == code
    assert job.error_message
    assert job.cost is None  # refusals are not charged
    assert await job.attempts.acount() == 1  # and not retried
