"""Job creation, idempotency and cancellation through the service layer."""

from __future__ import annotations

import pytest

from brenia.errors import Conflict, InvalidInput, NotFound
from generation.jobs import services
from generation.models import AIModel, Job, JobEvent, JobStatus
from tests.conftest import Persona
from tests.generation.factories import make_job


def test_job_create_stores_provider_arguments_and_estimate(owner: Persona) -> None:
    job, created = services.job_create(
        user=owner.user, model_slug="flux-schnell", inputs={"prompt": "lemonade"},
        options={"width": 1200, "height": 628, "num_images": 2})
    assert created
    assert job.status == JobStatus.QUEUED
    assert job.provider_arguments["image_size"] == {"width": 1200, "height": 628}
    assert job.provider_arguments["num_images"] == 2
    assert job.inputs["num_inference_steps"] == 4  # schema default applied
    # 1200x628 = 0.75 MP → billed as 1 MP each, two images at $0.003/MP
    assert str(job.estimated_cost) == "0.006000"
    assert JobEvent.objects.filter(job=job, type="queued", seq=1).exists()


def test_same_idempotency_key_and_body_return_the_same_job(owner: Persona) -> None:
    first, created = services.job_create(user=owner.user, model_slug="flux-schnell",
                                         inputs={"prompt": "a"}, idempotency_key="k1")
    again, created_again = services.job_create(user=owner.user, model_slug="flux-schnell",
                                               inputs={"prompt": "a"}, idempotency_key="k1")
    assert created and not created_again
    assert again.pk == first.pk
    assert Job.objects.count() == 1


def test_same_idempotency_key_with_another_body_is_a_conflict(owner: Persona) -> None:
    services.job_create(user=owner.user, model_slug="flux-schnell", inputs={"prompt": "a"},
                        idempotency_key="k1")
    with pytest.raises(Conflict) as caught:
        services.job_create(user=owner.user, model_slug="flux-schnell", inputs={"prompt": "b"},
                            idempotency_key="k1")
    assert caught.value.code == "idempotency_key_reused"


def test_idempotency_keys_are_per_user(owner: Persona, outsider: Persona) -> None:
    mine, _ = services.job_create(user=owner.user, model_slug="flux-schnell",
                                  inputs={"prompt": "a"}, idempotency_key="k1")
    theirs, created = services.job_create(user=outsider.user, model_slug="flux-schnell",
                                          inputs={"prompt": "a"}, idempotency_key="k1")
    assert created and theirs.pk != mine.pk


def test_disabled_model_refuses_new_jobs(owner: Persona) -> None:
    AIModel.objects.filter(slug="flux-schnell").update(enabled=False)
    with pytest.raises(Conflict) as caught:
        services.job_create(user=owner.user, model_slug="flux-schnell", inputs={"prompt": "a"})
    assert caught.value.code == "model_disabled"
    assert Job.objects.count() == 0


def test_invalid_metadata_is_rejected(owner: Persona) -> None:
    with pytest.raises(InvalidInput):
        services.job_create(user=owner.user, model_slug="flux-schnell", inputs={"prompt": "a"},
                            metadata=["not", "an", "object"])  # type: ignore[arg-type]


def test_cancel_of_queued_job_records_an_event(owner: Persona) -> None:
    job = make_job(owner)
    services.job_cancel(user=owner.user, job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert JobEvent.objects.filter(job=job, type="cancelled").exists()


def test_cancel_of_finished_job_is_rejected(owner: Persona) -> None:
    job = make_job(owner, status=JobStatus.COMPLETED)
    with pytest.raises(Conflict):
        services.job_cancel(user=owner.user, job_id=job.pk)


def test_cancel_of_someone_elses_job_is_not_found(owner: Persona, outsider: Persona) -> None:
    job = make_job(owner)
    with pytest.raises(NotFound):
        services.job_cancel(user=outsider.user, job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
