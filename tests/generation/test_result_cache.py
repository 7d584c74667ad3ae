"""The result cache: a seeded request made again is answered from the first result,
at no cost, marked as a hit; anything that could change the result misses."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from brenia.billing.models import LedgerEntry, LedgerKind
from generation.emulators.fal import FAL_STATE
from generation.emulators.server import EmulatorThread
from generation.jobs import services
from generation.jobs.presenters import job_state
from generation.jobs.services import job_local_create
from generation.models import Job, JobStatus
from tests.conftest import Persona, run_background_work

pytestmark = pytest.mark.django_db(transaction=True)


def _submit(persona: Persona, prompt: str, *, seed: int | None = 7, **kwargs: Any) -> Job:
    options = {"width": 256, "height": 256} | ({"seed": seed} if seed is not None else {})
    job, _ = services.job_create(user=persona.user, model_slug="flux-schnell",
                                 inputs={"prompt": prompt}, options=options, **kwargs)
    return job


def _made(persona: Persona, prompt: str, **kwargs: Any) -> Job:
    """A job run through the provider (the emulator) to completion, as dispatched."""
    job = _submit(persona, prompt, **kwargs)
    async_to_sync(run_background_work)()
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and job.cached_from_id is None
    return job


def _provider_calls(emulator: EmulatorThread) -> int:
    assert emulator.app is not None
    return len(emulator.app[FAL_STATE].requests)


def test_the_same_seeded_request_is_a_free_marked_hit_with_the_same_images(
        owner: Persona, outsider: Persona, fal_emulator: EmulatorThread) -> None:
    prompt = f"lemonade {uuid.uuid4()}"
    first = _made(owner, prompt)
    calls = _provider_calls(fal_emulator)
    hit = _submit(outsider, prompt)
    assert hit.status == JobStatus.COMPLETED  # at once, in the request that made it
    assert _provider_calls(fal_emulator) == calls
    assert hit.cached_from_id == first.pk and hit.cost == Decimal(0)
    assert hit.estimated_cost == Decimal(0)
    state = job_state(hit)
    assert state["cache_hit"] is True and state["cost"] == "0.000000"
    assert [(i["sha256"], i["width"]) for i in state["images"]] == \
        [(i.sha256, i.width) for i in first.images.order_by("index")]
    assert job_state(first)["cache_hit"] is False
    # Charged nothing: a zero hold, settled at zero.
    entries = LedgerEntry.objects.filter(job=hit).values_list("kind", "amount")
    assert sorted(entries) == [(LedgerKind.HOLD, Decimal(0)), (LedgerKind.SETTLE, Decimal(0))]
    # The hit's images are its own rows, over the same stored files.
    assert {i.file.name for i in hit.images.all()} == {i.file.name for i in first.images.all()}
    assert not set(hit.images.values_list("pk", flat=True)) & \
        set(first.images.values_list("pk", flat=True))


def test_a_changed_input_seed_or_opt_out_is_a_miss(owner: Persona,
                                                  fal_emulator: EmulatorThread) -> None:
    prompt = f"banner {uuid.uuid4()}"
    _made(owner, prompt)
    assert _submit(owner, prompt + "!").cached_from_id is None
    assert _submit(owner, prompt, seed=8).cached_from_id is None
    opted_out = _submit(owner, prompt, use_cache=False)
    assert opted_out.cached_from_id is None and opted_out.status == JobStatus.QUEUED
    assert opted_out.estimated_cost > 0


def test_requests_without_a_seed_are_never_cached(owner: Persona,
                                                  fal_emulator: EmulatorThread) -> None:
    prompt = f"random {uuid.uuid4()}"
    first = _made(owner, prompt, seed=None)
    assert first.cache_key == ""
    assert _submit(owner, prompt, seed=None).cached_from_id is None


def test_results_older_than_the_time_to_live_are_not_reused(
        owner: Persona, fal_emulator: EmulatorThread, settings: Any) -> None:
    settings.BRENIA_RESULT_CACHE_SECONDS = 60
    prompt = f"old {uuid.uuid4()}"
    first = _made(owner, prompt)
    Job.objects.filter(pk=first.pk).update(finished_at=timezone.now() - timedelta(minutes=2))
    assert _submit(owner, prompt).cached_from_id is None
    settings.BRENIA_RESULT_CACHE_SECONDS = 0  # off
    second = _made(owner, f"off {uuid.uuid4()}")
    assert _submit(owner, second.inputs["prompt"]).cached_from_id is None


def test_a_failed_job_is_never_a_cache_source(owner: Persona,
                                              fal_emulator: EmulatorThread) -> None:
    prompt = f"failed {uuid.uuid4()}"
    failed = _submit(owner, prompt)
    services.job_cancel(user=owner.user, job_id=failed.pk)
    assert _submit(owner, prompt).cached_from_id is None


def test_a_template_step_hit_ends_after_its_creating_transaction(
        owner: Persona, fal_emulator: EmulatorThread) -> None:
    prompt = f"step {uuid.uuid4()}"
    first = _made(owner, prompt)
    parent = job_local_create(user=owner.user, label="template:billboard")
    with transaction.atomic():
        step = _submit(owner, prompt, parent=parent)
        # Inside the transaction the step is still queued: its run records it first.
        assert Job.objects.get(pk=step.pk).status == JobStatus.QUEUED
    step.refresh_from_db()
    assert step.status == JobStatus.COMPLETED and step.cached_from_id == first.pk
    assert step.images.count() == first.images.count()


def test_every_image_carries_its_share_of_its_jobs_cost(owner: Persona,
                                                        fal_emulator: EmulatorThread) -> None:
    job, _ = services.job_create(user=owner.user, model_slug="flux-schnell",
                                 inputs={"prompt": f"two {uuid.uuid4()}"},
                                 options={"width": 512, "height": 512, "num_images": 2})
    async_to_sync(run_background_work)()
    job.refresh_from_db()
    images = list(job.images.order_by("index"))
    assert len(images) == 2 and job.cost is not None
    assert [image.cost for image in images] == [job.cost / 2] * 2
    assert [i["cost"] for i in job_state(job)["images"]] == [str(job.cost / 2)] * 2
