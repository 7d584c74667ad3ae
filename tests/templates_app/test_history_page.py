"""The image history page: every finished image, filtered, paginated, rated, private."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from generation.jobs.services import image_rate
from generation.models import AIModel, Image, Job, JobStatus
from templates_app.models import AdTemplate, RunOutput, RunStatus, TemplateRun
from templates_app.services import ad_template_seed
from tests.conftest import Persona
from tests.generation.factories import make_job

URL = "/images/"


@pytest.fixture
def templates(seeded: None) -> None:
    ad_template_seed()


def browser(persona: Persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def add_image(job: Job, *, index: int = 0, when: datetime | None = None,
              prompt: str = "") -> Image:
    image = Image.objects.create(
        job=job, index=index, file=f"images/test/{job.pk}-{index}.png", sha256="0" * 64,
        width=8, height=8, format="PNG", bytes=64, model_slug=job.model_slug,
        model_version=job.model_version, prompt=prompt)
    if when is not None:
        Image.objects.filter(pk=image.pk).update(created_at=when)
        image.created_at = when
    return image


def job_image(persona: Persona, *, slug: str = "flux-schnell", prompt: str = "a lemonade stand",
              when: datetime | None = None, cost: str = "0.003") -> Image:
    """An image of a job the persona asked for directly (the playground, the API)."""
    job = make_job(persona, status=JobStatus.COMPLETED, slug=slug, cost=Decimal(cost))
    return add_image(job, prompt=prompt, when=when)


def run_output(persona: Persona, *, slug: str = "discount-banner", fmt: str = "leaderboard",
               variables: dict[str, Any] | None = None, painter: str = "flux-schnell",
               when: datetime | None = None) -> Image:
    """A finished run's output, made as the engine makes it: a stream job, a model step
    (its image an intermediate, not a deliverable) and a composition step's image."""
    template = AdTemplate.objects.get(slug=slug)
    version = template.versions.order_by("-number").first()
    assert version is not None
    stream = Job.objects.create(user=persona.user, model_slug=f"template:{slug}",
                                model_version=f"v{version.number}",
                                status=JobStatus.COMPLETED)
    run = TemplateRun.objects.create(
        user=persona.user, template=template, version=version, seed=7, job=stream,
        variables=variables or {"discount": "30% OFF", "product_name": "Lemonade 1 L"},
        formats=[fmt], output_format="png", status=RunStatus.COMPLETED)
    model = AIModel.objects.get(slug=painter)
    painted = Job.objects.create(user=persona.user, model=model, model_slug=model.slug,
                                 model_version=model.version_label, parent=stream,
                                 status=JobStatus.COMPLETED, cost=Decimal("0.0031"))
    add_image(painted, prompt="a sunny kitchen")  # the background: not a deliverable
    composed = Job.objects.create(user=persona.user, model_slug="brenia/compose",
                                  model_version="1", parent=stream,
                                  status=JobStatus.COMPLETED, cost=Decimal(0))
    image = add_image(composed, when=when)
    RunOutput.objects.create(run=run, format=fmt, image=image, provenance={
        "models": {"background:wide": {"model": painter, "version": "1"},
                   "copy": {"model": "gemini-2.5-flash", "version": "1"}},
        "copy": {"headline": "Squeezed today"}})
    return image


def shown(response: Any) -> list[str]:
    assert response.status_code == 200
    return [tile.image["id"] for tile in response.context["tiles"]]


def test_the_page_needs_a_login(db: Any) -> None:
    response = Client().get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_every_deliverable_is_shown_newest_first_with_its_details(
        owner: Persona, templates: None) -> None:
    older = job_image(owner, when=datetime(2026, 3, 1, tzinfo=UTC))
    newer = run_output(owner, when=datetime(2026, 3, 2, tzinfo=UTC))
    image_rate(user=owner.user, image_id=newer.pk, score=4, comment="Good contrast")
    response = browser(owner).get(URL)
    assert shown(response) == [str(newer.pk), str(older.pk)]
    run_tile, job_tile = response.context["tiles"]
    run = newer.run_output.run
    assert run_tile.title == "Discount banner"
    assert run_tile.link == f"/runs/{run.pk}/"
    assert run_tile.cost == "Run total 0.0031 USD"  # every step of the run
    assert run_tile.model == "flux-schnell"
    assert run_tile.image["rating"] == {"score": 4, "comment": "Good contrast"}
    assert job_tile.link == f"/jobs/{older.job_id}/"
    assert job_tile.cost == "Cost 0.003 USD"
    assert job_tile.model == "flux-schnell"
    html = response.content.decode()
    assert "Rated 4 of 5" in html
    assert "Not rated yet" in html
    assert f'data-rate-url="/api/images/{newer.pk}/rating"' in html
    assert html.count('aria-pressed="true"') == 4
    assert 'alt="Discount banner, leaderboard format: Squeezed today"' in html
    assert "js/ratings.js" in html


def test_intermediate_images_and_other_peoples_images_never_appear(
        owner: Persona, outsider: Persona, templates: None) -> None:
    mine = run_output(owner)
    theirs = [job_image(outsider), run_output(outsider)]
    assert shown(browser(owner).get(URL)) == [str(mine.pk)]  # not its background
    outsider_sees = shown(browser(outsider).get(URL))
    assert set(outsider_sees) == {str(image.pk) for image in theirs}
    assert str(mine.pk) not in browser(outsider).get(URL + "?rating=unrated").content.decode()


def test_the_text_search_reads_prompts_template_names_and_product_names(
        owner: Persona, templates: None) -> None:
    stand = job_image(owner, prompt="A lemonade stand at dusk")
    banner = run_output(owner, variables={"discount": "20%", "product_name": "Iced Tea"})
    billboard = run_output(owner, slug="billboard", fmt="billboard-48-sheet",
                           variables={"product": "Sicilian lemonade"})
    client = browser(owner)
    assert set(shown(client.get(URL, {"q": "lemonade"}))) == {str(stand.pk), str(billboard.pk)}
    assert shown(client.get(URL, {"q": "iced tea"})) == [str(banner.pk)]
    assert shown(client.get(URL, {"q": "Billboard"})) == [str(billboard.pk)]
    assert shown(client.get(URL, {"q": "dusk"})) == [str(stand.pk)]
    empty = client.get(URL, {"q": "nothing like this"})
    assert shown(empty) == []
    assert "No image matches these filters" in empty.content.decode()


def test_template_model_and_date_filters_each_narrow_the_list(
        owner: Persona, templates: None) -> None:
    march = job_image(owner, slug="flux-dev", when=datetime(2026, 3, 10, 12, tzinfo=UTC))
    april = run_output(owner, when=datetime(2026, 4, 10, 12, tzinfo=UTC))
    may = run_output(owner, slug="billboard", fmt="billboard-48-sheet", painter="flux-dev",
                     when=datetime(2026, 5, 10, 12, tzinfo=UTC))
    client = browser(owner)
    assert shown(client.get(URL, {"template": "discount-banner"})) == [str(april.pk)]
    # A run's output counts as made by the models that painted it.
    assert shown(client.get(URL, {"model": "flux-dev"})) == [str(may.pk), str(march.pk)]
    assert shown(client.get(URL, {"model": "flux-schnell"})) == [str(april.pk)]
    assert shown(client.get(URL, {"date_from": "2026-04-01"})) == [str(may.pk), str(april.pk)]
    assert shown(client.get(URL, {"date_to": "2026-04-10"})) == [str(april.pk), str(march.pk)]
    assert shown(client.get(URL, {"date_from": "2026-04-01", "date_to": "2026-04-30",
                                  "template": "discount-banner"})) == [str(april.pk)]


def test_the_rating_filter_keeps_a_minimum_score_or_the_unrated(owner: Persona) -> None:
    low, high, unrated = job_image(owner), job_image(owner), job_image(owner)
    image_rate(user=owner.user, image_id=low.pk, score=2)
    image_rate(user=owner.user, image_id=high.pk, score=5)
    client = browser(owner)
    assert shown(client.get(URL, {"rating": "4"})) == [str(high.pk)]
    assert set(shown(client.get(URL, {"rating": "2"}))) == {str(low.pk), str(high.pk)}
    assert shown(client.get(URL, {"rating": "unrated"})) == [str(unrated.pk)]


def test_pages_of_24_keep_the_filters_in_their_links(owner: Persona) -> None:
    for day in range(1, 31):
        job_image(owner, prompt=f"lemonade {day}", when=datetime(2026, 1, day, tzinfo=UTC))
    job_image(owner, prompt="iced tea")
    client = browser(owner)
    first = client.get(URL, {"q": "lemonade"})
    assert len(shown(first)) == 24
    html = first.content.decode()
    assert "Page 1 of 2" in html
    assert 'href="?q=lemonade&amp;page=2"' in html
    second = client.get(URL, {"q": "lemonade", "page": "2"})
    assert [t.title for t in second.context["tiles"]] == [f"lemonade {d}" for d in range(6, 0, -1)]
    assert 'href="?q=lemonade&amp;page=1"' in second.content.decode()
    assert len(shown(client.get(URL, {"q": "lemonade", "page": "99"}))) == 6  # the last page
    assert len(shown(client.get(URL, {"page": "x"}))) == 24  # the first


@pytest.mark.parametrize("query", [
    {"date_from": "2026-13-45"},
    {"date_to": "yesterday"},
    {"template": "no-such-template"},
    {"model": "no-such-model"},
    {"rating": "9"},
    {"q": "lemon\x00ade"},
    {"q": "x" * 201},
])
def test_a_bad_filter_value_is_explained_not_a_server_error(owner: Persona, templates: None,
                                                            query: dict[str, str]) -> None:
    image = job_image(owner)
    response = browser(owner).get(URL, query)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Some filters could not be used" in html
    assert 'aria-invalid="true"' in html
    assert shown(response) == [str(image.pk)]  # the bad filter is left out


def test_with_no_images_the_page_points_to_the_templates(owner: Persona) -> None:
    response = browser(owner).get(URL)
    html = response.content.decode()
    assert shown(response) == []
    assert "No images yet" in html
    assert 'href="/templates/"' in html


def test_every_filter_control_has_a_label(owner: Persona, templates: None) -> None:
    html = browser(owner).get(URL).content.decode()
    for name in ("q", "template", "model", "date_from", "date_to", "rating"):
        assert f'<label for="id_{name}"' in html, name
        assert f'id="id_{name}"' in html, name
    assert 'role="search"' in html
    assert '<option value="discount-banner">Discount banner</option>' in html


def test_a_page_of_24_tiles_takes_as_many_queries_as_a_page_of_one(
        owner: Persona, templates: None, django_assert_max_num_queries: Any) -> None:
    client = browser(owner)
    first = run_output(owner)
    image_rate(user=owner.user, image_id=first.pk, score=3)
    client.get(URL)  # the session is read once and then cached: count a steady page
    # 8 for the page itself, 3 for the budget banner every page shows (the user's plan,
    # the default plan, the teams' plans): none of them grows with the tiles.
    with django_assert_max_num_queries(11) as one:
        assert len(shown(client.get(URL))) == 1
    for index in range(12):
        image = run_output(owner, fmt="leaderboard") if index % 2 else job_image(owner)
        image_rate(user=owner.user, image_id=image.pk, score=1 + index % 5)
        job_image(owner)
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = client.get(URL, {"rating": "1"})
    assert len(shown(response)) == 13
    with django_assert_max_num_queries(len(one.captured_queries)):
        assert len(shown(client.get(URL))) == 24
