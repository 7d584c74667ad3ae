"""The marketer's pages through Django's test client: the template form and its quote,
runs started from it, the run page's live part, its zip, thumbnails; others' runs 404."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from PIL import Image as PILImage

from generation.models import Image
from templates_app.models import RunStatus, TemplateRun
from tests.conftest import Persona, run_background_work
from tests.templates_app.test_runs import emulators, start, templates  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True)
BILLBOARD = "/templates/billboard/"


def browser_for(persona: Persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def billboard_form(**changes: Any) -> dict[str, Any]:
    form = {"product": "Sicilian lemonade", "offer": "Free delivery this week",
            "scene": "a sunlit city street", "run-formats": ["digital-landscape"],
            "run-output_format": "png", "run-idempotency_key": "form-1"}
    form.update(changes)
    return form


def test_the_form_is_generated_from_the_template_and_prices_itself(
        owner: Persona, templates: None) -> None:  # noqa: F811
    browser = browser_for(owner)
    page = browser.get(BILLBOARD).content.decode()
    for name in ("product", "offer", "headline", "run-formats", "run-brand_kit"):
        assert f'name="{name}"' in page
    assert page.count('name="run-formats"') == 4  # one per format, all offered
    one = browser.post(BILLBOARD + "quote", billboard_form()).content.decode()
    every = browser.post(BILLBOARD + "quote", billboard_form(**{"run-formats": list(
        FORMATS_OF_BILLBOARD)})).content.decode()
    assert "data-quote-total" in one and "data-quote-total" in every
    assert _total(one) < _total(every)  # three aspect families cost more than one
    assert not TemplateRun.objects.exists()  # a quote creates nothing


FORMATS_OF_BILLBOARD = ("48-sheet", "bulletin", "digital-landscape", "digital-portrait")


def _total(html: str) -> float:
    return float(html.split('data-quote-total="', 1)[1].split('"', 1)[0])


def test_an_unfinished_form_is_quoted_with_what_is_missing(owner: Persona,
                                                          templates: None) -> None:  # noqa: F811
    html = browser_for(owner).post(BILLBOARD + "quote", billboard_form(product="")).content
    assert b"data-quote-problems" in html and b"Product" in html
    assert b"data-quote-total" not in html


def test_a_form_waiting_for_its_product_photo_is_priced_all_the_same(
        owner: Persona, templates: None) -> None:  # noqa: F811
    # The photo is never uploaded for a quote: a placeholder image stands in, and it must
    # pass the same image checks a real upload does.
    html = browser_for(owner).post("/templates/product-shot/quote", {
        "product_name": "Limonaia lemonade", "run-formats": ["square"],
        "run-output_format": "png"}).content.decode()
    assert "data-quote-total" in html, html
    assert _total(html) > 0


def test_copy_that_cannot_fit_is_refused_inline_and_nothing_starts(
        owner: Persona, templates: None) -> None:  # noqa: F811
    response = browser_for(owner).post("/templates/discount-banner/", {
        "discount": "30% OFF", "cta": "Shop now",
        "product_name": "Limonaia sparkling lemonade family pack with free glass",
        "run-formats": ["mobile-banner"], "run-output_format": "png"})
    assert response.status_code == 422
    html = response.content.decode()
    field = html.split('name="product_name"', 1)[0].rsplit("<input", 1)[1] + \
        html.split('name="product_name"', 1)[1].split(">", 1)[0]
    assert 'aria-invalid="true"' in field
    assert "320×50" in html and "Limonaia sparkling lemonade family pack" in html
    assert not TemplateRun.objects.exists()


def test_no_format_chosen_is_an_inline_error(owner: Persona, templates: None) -> None:  # noqa: F811
    response = browser_for(owner).post(BILLBOARD, billboard_form(**{"run-formats": []}))
    assert response.status_code == 422
    assert b"Choose at least one format." in response.content
    assert not TemplateRun.objects.exists()


def test_a_resubmitted_form_starts_one_run(owner: Persona, templates: None,  # noqa: F811
                                           emulators: Any) -> None:  # noqa: F811
    browser = browser_for(owner)
    first = browser.post(BILLBOARD, billboard_form())
    second = browser.post(BILLBOARD, billboard_form())  # a double click, or a reload
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    run = TemplateRun.objects.get()
    assert first["Location"] == f"/runs/{run.pk}/" and run.formats == ["digital-landscape"]


async def test_run_page_zip_and_thumbnails(owner: Persona, outsider: Persona,
                                           templates: None, emulators: Any) -> None:  # noqa: F811
    run = await start(owner, "billboard", formats=["digital-landscape", "digital-portrait"])
    assert run.status == RunStatus.COMPLETED
    browser = await sync_to_async(browser_for)(owner)
    live = (await sync_to_async(browser.get)(f"/runs/{run.pk}/?part=live")).content.decode()
    assert live.count('data-format="') == 2 and 'id="run-zip"' in live
    assert 'data-status="completed"' in live

    response = await sync_to_async(browser.get)(f"/runs/{run.pk}/download.zip")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    chunks = [chunk async for chunk in response.streaming_content]  # type: ignore[union-attr]
    body = b"".join(chunks)
    assert int(response["Content-Length"]) == len(body)
    # Streamed as it is built, a file read at a time: never the whole zip in one piece.
    assert len(chunks) > 2 * len(body) // (256 * 1024)
    assert max(len(chunk) for chunk in chunks) <= 64 * 1024 + 512
    archive = zipfile.ZipFile(io.BytesIO(body))
    sizes = {}
    for name in archive.namelist():
        with PILImage.open(io.BytesIO(archive.read(name))) as picture:
            sizes[name] = picture.size
    assert sizes == {"digital-landscape-1920x1080.png": (1920, 1080),
                     "digital-portrait-1080x1920.png": (1080, 1920)}

    image = await Image.objects.filter(run_output__run=run).afirst()
    assert image is not None
    thumb = await sync_to_async(browser.get)(f"/images/{image.pk}/thumbnail")
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/webp"
    data = b"".join(thumb.streaming_content)  # type: ignore[arg-type]
    with PILImage.open(io.BytesIO(data)) as picture:
        assert max(picture.size) == 480 and picture.format == "WEBP"

    stranger = await sync_to_async(browser_for)(outsider)
    for url in (f"/runs/{run.pk}/", f"/runs/{run.pk}/?part=live", f"/runs/{run.pk}/download.zip",
                f"/images/{image.pk}/thumbnail"):
        assert (await sync_to_async(stranger.get)(url)).status_code == 404, url
    retry = await sync_to_async(stranger.post)(f"/runs/{run.pk}/retry")
    assert retry.status_code == 404


async def test_a_failed_run_offers_retry_and_retries_from_the_page(
        owner: Persona, templates: None, emulators: Any) -> None:  # noqa: F811
    fal, _gemini = emulators
    fal.set_faults("fal-ai/flux/schnell", {"sequence": ["content_policy"]})
    run = await start(owner, "billboard", formats=["digital-landscape"])
    assert run.status == RunStatus.FAILED
    browser = await sync_to_async(browser_for)(owner)
    page = (await sync_to_async(browser.get)(f"/runs/{run.pk}/")).content.decode()
    assert 'id="run-retry"' in page and "run-zip" not in page
    response = await sync_to_async(browser.post)(f"/runs/{run.pk}/retry")
    assert response.status_code == 302
    await run_background_work()
    await run.arefresh_from_db()
    assert run.status == RunStatus.COMPLETED
