"""Image ratings: the service and PUT/GET/DELETE /api/images/{id}/rating."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from brenia.errors import InvalidInput, NotFound
from generation.jobs.services import image_rate
from generation.models import Image, ImageRating, Job, JobStatus
from tests.conftest import Persona
from tests.generation.factories import make_job


def make_image(persona: Persona, *, job: Job | None = None, index: int = 0) -> Image:
    """An image of a completed job of ``persona``'s (no file behind it: not needed here)."""
    if job is None:
        job = make_job(persona, status=JobStatus.COMPLETED, cost=Decimal("0.003"))
    return Image.objects.create(
        job=job, index=index, file=f"images/test/{job.pk}-{index}.png", sha256="0" * 64,
        width=1, height=1, format="PNG", bytes=11, model_slug=job.model_slug,
        model_version=job.model_version, prompt=str(job.inputs.get("prompt", "")))


def rating_url(image: Image | str) -> str:
    return f"/api/images/{image.pk if isinstance(image, Image) else image}/rating"


def put(persona: Persona, image: Image | str, body: Any) -> Any:
    return persona.api().put(rating_url(image), data=json.dumps(body),
                             content_type="application/json",
                             headers={"Authorization": f"Bearer {persona.key}"})


def delete(persona: Persona, image: Image) -> Any:
    return persona.api().delete(rating_url(image),
                                headers={"Authorization": f"Bearer {persona.key}"})


def test_rating_an_image_stores_the_score_comment_and_model_version(owner: Persona) -> None:
    image = make_image(owner)
    response = put(owner, image, {"score": 4, "comment": "Bright, on brand."})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["image"] == str(image.pk)
    assert (body["score"], body["comment"]) == (4, "Bright, on brand.")
    assert body["updated_at"]
    rating = ImageRating.objects.get()
    assert (rating.user, rating.image, rating.score) == (owner.user, image, 4)
    assert (rating.model_slug, rating.model_version) == (image.model_slug, image.model_version)
    got = owner.api().get_json(rating_url(image))
    assert got.status_code == 200
    assert got.json() == body


def test_rating_again_replaces_the_rating(owner: Persona) -> None:
    image = make_image(owner)
    first = put(owner, image, {"score": 2, "comment": "Too dark."}).json()
    second = put(owner, image, {"score": 5}).json()
    assert ImageRating.objects.count() == 1
    rating = ImageRating.objects.get()
    assert (rating.score, rating.comment) == (5, "")
    assert (second["score"], second["comment"]) == (5, "")
    assert second["updated_at"] >= first["updated_at"]
    assert rating.updated_at > rating.created_at


def test_a_whole_number_written_as_4_0_is_a_score(owner: Persona) -> None:
    response = put(owner, make_image(owner), {"score": 4.0})
    assert response.status_code == 200
    assert response.json()["score"] == 4


def test_a_comment_may_be_2000_characters_and_no_more(owner: Persona) -> None:
    image = make_image(owner)
    assert put(owner, image, {"score": 3, "comment": "x" * 2000}).status_code == 200
    response = put(owner, image, {"score": 1, "comment": "x" * 2001})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "comment", "problem": "must be at most 2000 characters"}]
    assert ImageRating.objects.get().score == 3  # the refused rating changed nothing


@pytest.mark.parametrize("score", [0, 6, "x", "4", True, 4.5, None])
def test_a_score_outside_1_to_5_is_refused_naming_the_score(owner: Persona, score: Any) -> None:
    image = make_image(owner)
    response = put(owner, image, {"score": score})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert [e["field"] for e in response.json()["errors"]] == ["score"]
    assert not ImageRating.objects.exists()


@pytest.mark.parametrize(("body", "field"), [
    ({}, "score"),
    ({"score": 3, "stars": 3}, "stars"),
    ({"score": 3, "comment": "a\u0000b"}, "comment"),
    ({"score": 3, "comment": 7}, "comment"),
])
def test_a_bad_body_is_refused_naming_the_field(owner: Persona, body: Any, field: str) -> None:
    response = put(owner, make_image(owner), body)
    assert response.status_code == 422
    assert field in {e["field"] for e in response.json()["errors"]}
    assert not ImageRating.objects.exists()


def test_the_service_checks_what_the_api_does(owner: Persona) -> None:
    image = make_image(owner)
    with pytest.raises(InvalidInput) as refused:
        image_rate(user=owner.user, image_id=image.pk, score=0, comment="x" * 2001)
    assert [e.field for e in refused.value.errors] == ["score", "comment"]
    with pytest.raises(InvalidInput):
        image_rate(user=owner.user, image_id=image.pk, score=3, comment="\ud800")
    assert image_rate(user=owner.user, image_id=str(image.pk), score=5).score == 5


def test_another_users_image_is_not_found_and_nothing_is_written(
        owner: Persona, outsider: Persona) -> None:
    image = make_image(owner)
    put(owner, image, {"score": 2, "comment": "mine"})
    for response in (put(outsider, image, {"score": 5}),
                     outsider.api().get_json(rating_url(image)),
                     delete(outsider, image)):
        assert response.status_code == 404
        assert response.json()["code"] == "image_not_found"
    rating = ImageRating.objects.get()
    assert (rating.user, rating.score, rating.comment) == (owner.user, 2, "mine")
    with pytest.raises(NotFound):
        image_rate(user=outsider.user, image_id=image.pk, score=5)
    assert ImageRating.objects.count() == 1


def test_an_unknown_image_is_not_found(owner: Persona) -> None:
    assert put(owner, "not-a-uuid", {"score": 3}).status_code == 404
    missing = "00000000-0000-0000-0000-000000000000"
    assert owner.api().get_json(rating_url(missing)).status_code == 404


def test_an_unrated_image_has_no_rating_to_get(owner: Persona) -> None:
    response = owner.api().get_json(rating_url(make_image(owner)))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_delete_takes_the_rating_back(owner: Persona) -> None:
    image = make_image(owner)
    put(owner, image, {"score": 4})
    response = delete(owner, image)
    assert response.status_code == 204
    assert response.content == b""
    assert not ImageRating.objects.exists()
    assert owner.api().get_json(rating_url(image)).status_code == 404
    assert delete(owner, image).status_code == 204  # nothing left to take back


def test_the_rating_shows_on_the_jobs_images(owner: Persona) -> None:
    job = make_job(owner, status=JobStatus.COMPLETED, cost=Decimal("0.006"))
    rated, unrated = make_image(owner, job=job, index=0), make_image(owner, job=job, index=1)
    put(owner, rated, {"score": 5, "comment": "Use this one."})
    images = {i["id"]: i for i in owner.api().get_json(f"/api/jobs/{job.pk}").json()["images"]}
    assert images[str(rated.pk)]["rating"] == {"score": 5, "comment": "Use this one."}
    assert images[str(unrated.pk)]["rating"] is None
    listed = owner.api().get_json("/api/jobs").json()["items"][0]["images"]
    assert {i["id"]: i["rating"] for i in listed}[str(rated.pk)]["score"] == 5


def test_job_lists_load_ratings_in_one_query(owner: Persona,
                                             django_assert_max_num_queries: Any) -> None:
    from generation.jobs.presenters import job_state
    from generation.jobs.selectors import job_list_for_user

    for _ in range(5):
        job = make_job(owner, status=JobStatus.COMPLETED)
        image_rate(user=owner.user, image_id=make_image(owner, job=job).pk, score=3)
    # jobs (with their models), their images, the ratings of those
    with django_assert_max_num_queries(3):
        states = [job_state(job) for job in job_list_for_user(user=owner.user)]
    assert [s["images"][0]["rating"]["score"] for s in states] == [3] * 5


def test_a_session_needs_the_csrf_token_to_rate(owner: Persona) -> None:
    from django.test import Client

    image = make_image(owner)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner.user)
    refused = browser.put(rating_url(image), data=json.dumps({"score": 4}),
                          content_type="application/json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    token = "a" * 32
    browser.cookies["csrftoken"] = token
    accepted = browser.put(rating_url(image), data=json.dumps({"score": 4}),
                           content_type="application/json", headers={"X-CSRFToken": token})
    assert accepted.status_code == 200, accepted.json()
    assert ImageRating.objects.get().score == 4


def test_the_rating_shows_on_a_template_runs_outputs(owner: Persona) -> None:
    from templates_app.services import ad_template_seed
    from tests.templates_app.test_history_page import run_output

    ad_template_seed()
    image = run_output(owner)
    run = image.run_output.run
    assert owner.api().get_json(f"/api/runs/{run.pk}").json()["outputs"][0]["image"][
        "rating"] is None
    put(owner, image, {"score": 3, "comment": "Busy"})
    output = owner.api().get_json(f"/api/runs/{run.pk}").json()["outputs"][0]
    assert output["image"]["id"] == str(image.pk)
    assert output["image"]["rating"] == {"score": 3, "comment": "Busy"}
