"""Ratings added up per model version and per template version, and shown in the admin."""

from __future__ import annotations

from decimal import Decimal

from django.test import Client

from generation.jobs.services import image_rate
from generation.models import AIModel
from generation.registry.ratings import (
    ratings_by_model_version,
    ratings_by_template,
    ratings_summary_line,
)
from tests.conftest import Persona, make_persona
from tests.generation.factories import make_job
from tests.generation.test_ratings import make_image


def test_ratings_add_up_per_model_version(owner: Persona, outsider: Persona) -> None:
    old = [make_image(owner) for _ in range(2)]
    AIModel.objects.filter(slug="flux-schnell").update(version_label="2")
    new = make_image(owner, job=make_job(owner, cost=Decimal("0.003")))
    for image, score in zip(old, (2, 3), strict=True):
        image_rate(user=owner.user, image_id=image.pk, score=score)
    image_rate(user=owner.user, image_id=new.pk, score=5)
    rows = ratings_by_model_version(model_slug="flux-schnell")
    assert [(r["model_version"], r["ratings"], r["mean"]) for r in rows] == [
        ("1", 2, Decimal("2.50")), ("2", 1, Decimal("5.00"))]
    assert ratings_summary_line(rows[1:]) == "5.00 (1)"
    assert ratings_summary_line([]) == "—"


def test_template_outputs_are_rated_per_template_version(owner: Persona) -> None:
    from templates_app.models import RunOutput
    from templates_app.services import ad_template_seed, template_run_start

    ad_template_seed()
    run, _ = template_run_start(user=owner.user, slug="discount-banner",
                                formats=["medium-rectangle"], variables={
                                    "discount": "30% OFF", "product_name": "Lemonade 1 L",
                                    "disclaimer": "Until 31 December."})
    for score in (4, 5):
        image = make_image(owner, job=run.job, index=score)
        RunOutput.objects.create(run=run, format=f"f{score}", image=image)
        image_rate(user=owner.user, image_id=image.pk, score=score)
    make_image(owner)  # a plain job's image: not a template's
    assert ratings_by_template() == [
        {"template": "discount-banner", "version": 1, "ratings": 2, "mean": Decimal("4.50")}]


def test_the_admin_lists_each_models_rating_for_its_current_version(owner: Persona) -> None:
    image_rate(user=owner.user, image_id=make_image(owner).pk, score=4)
    admin = make_persona("rating-admin", staff=True)
    client = Client()
    client.force_login(admin.user)
    page = client.get("/admin/generation/aimodel/").content.decode()
    assert "Rating (this version)" in page and "4.00 (1)" in page
