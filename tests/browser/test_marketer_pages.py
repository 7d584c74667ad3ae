"""The marketer's pages in a real browser: template form, quote, live run, results, zip,
ratings, another user's run, reload mid-run; and axe-core on every page."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from PIL import Image as PILImage
from playwright.sync_api import Browser, Page

from generation.models import ImageRating
from templates_app.compose import FORMATS
from templates_app.models import RunStatus, TemplateRun
from templates_app.services import ad_template_seed
from tests.browser.conftest import assert_accessible, log_in
from tests.conftest import LiveBrenia, Persona

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

RUN_URL = re.compile(r"/runs/[0-9a-f-]+/$")
# A run page records every run status it shows (its live part is swapped as it goes).
RECORD_RUN_STATUSES = """
window.__runStatuses = [];
window.__stepsSeenRunning = new Set();
const record = () => {
  const el = document.getElementById("run-status");
  const last = window.__runStatuses[window.__runStatuses.length - 1];
  if (el && el.dataset.status !== last) window.__runStatuses.push(el.dataset.status);
  for (const step of document.querySelectorAll("#run-steps li[data-status=running]")) {
    window.__stepsSeenRunning.add(step.dataset.step);
  }
};
document.addEventListener("DOMContentLoaded", () => {
  record();
  const live = document.getElementById("run-live");
  if (live) new MutationObserver(record).observe(live, {subtree: true, childList: true,
                                                        attributes: true});
});
"""


@pytest.fixture
def site(live_brenia: LiveBrenia) -> LiveBrenia:
    ad_template_seed()
    return live_brenia


def product_photo(tmp_path: Path) -> Path:
    picture = PILImage.new("RGB", (600, 800), (236, 234, 228))
    for y in range(220, 760):
        for x in range(220, 380):
            picture.putpixel((x, y), (220, 170, 30))
    path = tmp_path / "bottle.png"
    picture.save(path)
    return path


def open_template(page: Page, site: LiveBrenia, slug: str) -> None:
    page.goto(f"{site.url}/templates/")
    page.click(f".tile h3 a[href='/templates/{slug}/']")
    page.wait_for_url(f"{site.url}/templates/{slug}/")


def keep_formats(page: Page, keep: set[str]) -> None:
    for box in page.locator("input[name='run-formats']").all():
        box.set_checked((box.get_attribute("value") or "") in keep)


def quote_total(page: Page) -> str:
    page.locator("[data-quote-total]").wait_for()
    return page.locator("[data-quote-total]").get_attribute("data-quote-total") or ""


def wait_for_run_end(page: Page, timeout_ms: int = 120_000) -> str:
    page.wait_for_selector("#run-status[data-status=completed], #run-status[data-status=failed]",
                           timeout=timeout_ms)
    return page.locator("#run-status").get_attribute("data-status") or ""


def test_billboard_from_form_to_zip(site: LiveBrenia, owner: Persona, outsider: Persona,
                                    browser: Browser, page: Page) -> None:
    log_in(page, site, owner)
    assert_accessible(page)  # home, with no run yet
    page.click("text=Start from a template")
    assert_accessible(page)  # the gallery
    open_template(page, site, "billboard")
    page.fill("[name=product]", "Limonaia sparkling lemonade")
    page.fill("[name=offer]", "Free delivery all summer")
    every_format = quote_total(page)
    keep_formats(page, {"digital-landscape", "digital-portrait"})
    # The quote follows the form: two aspect families instead of three cost less.
    page.wait_for_function(
        "before => document.querySelector('[data-quote-total]')?.dataset.quoteTotal !== before",
        arg=every_format)
    assert float(quote_total(page)) < float(every_format)
    assert_accessible(page)  # the form with its quote

    page.add_init_script(RECORD_RUN_STATUSES)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.click("button[type=submit]:has-text('Generate')")
    page.wait_for_url(RUN_URL)
    loads = len(navigations)
    assert wait_for_run_end(page) == "completed"
    assert len(navigations) == loads  # it got there live, without a reload
    statuses: list[str] = page.evaluate("window.__runStatuses")
    assert statuses[0] in ("queued", "running") and statuses[-1] == "completed", statuses
    # Steps were seen moving on the page, each background painted live.
    running: list[str] = page.evaluate("[...window.__stepsSeenRunning]")
    assert any(key.startswith("background") for key in running), running

    tiles = page.locator("#run-outputs > li")
    assert sorted(tiles.evaluate_all("els => els.map(e => e.dataset.format)")) == [
        "digital-landscape", "digital-portrait"]
    for img in page.locator("#run-outputs img").all():
        img.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                               arg=img.element_handle())
    steps = page.locator("#run-steps > li")
    assert steps.count() >= 4 and all(
        s == "completed" for s in steps.evaluate_all("els => els.map(e => e.dataset.status)"))
    assert_accessible(page)  # the finished run page

    with page.expect_download() as download_info:
        page.click("#run-zip")
    archive = zipfile.ZipFile(download_info.value.path())
    sizes = {}
    for name in archive.namelist():
        with PILImage.open(io.BytesIO(archive.read(name))) as picture:
            sizes[name.rsplit("-", 1)[0]] = picture.size
    assert sizes == {slug: (FORMATS[slug].width, FORMATS[slug].height)
                     for slug in ("digital-landscape", "digital-portrait")}

    # A rating saved through the API, from the result tile.
    first = tiles.first
    first.locator("[data-score='4']").click()
    image_id = first.locator("[data-rate-image]").get_attribute("data-rate-image")
    page.wait_for_function(
        "el => el.querySelector(\"[data-score='4']\").getAttribute('aria-pressed') === 'true'",
        arg=first.element_handle())
    rating = ImageRating.objects.get(image_id=image_id, user=owner.user)
    assert rating.score == 4

    run_url = page.url
    page.goto(f"{site.url}/images/")
    assert page.locator(".tile").count() == 2
    assert_accessible(page)

    # Another user: the run, its zip and its thumbnails are not found (404, not 403).
    other = browser.new_context()
    stranger = other.new_page()
    log_in(stranger, site, outsider)
    for url in (run_url, run_url + "download.zip", run_url + "?part=live"):
        response = stranger.goto(url)
        assert response is not None and response.status == 404, url
    other.close()


def test_product_shot_upload_survives_a_reload_mid_run(site: LiveBrenia, owner: Persona,
                                                       page: Page, tmp_path: Path) -> None:
    log_in(page, site, owner)
    open_template(page, site, "product-shot")
    page.set_input_files("input[type=file]", str(product_photo(tmp_path)))
    page.locator("img.preview-img").wait_for()  # the chosen photo is shown before upload
    page.fill("[name=product_name]", "Limonaia lemonade")
    keep_formats(page, {"square"})
    quote_total(page)  # priced without uploading the photo
    page.click("button[type=submit]:has-text('Generate')")
    page.wait_for_url(RUN_URL)
    page.wait_for_selector("#run-steps li[data-status=running]", timeout=30_000)
    page.reload()  # mid-run: the page picks up where the run is and goes on live
    # And a dropped connection, if the run is still going once the feed is open.
    page.wait_for_selector("#connection[data-state=open], #connection[data-state=done]")
    page.evaluate("window.breniaRunFeed.simulateDrop()")
    assert wait_for_run_end(page) == "completed"
    assert page.locator("#run-outputs > li[data-format=square]").count() == 1
    run = TemplateRun.objects.get(user=owner.user)
    assert run.status == RunStatus.COMPLETED and run.variables["product_photo"].startswith(
        "data:image/png;base64,")


def test_copy_that_cannot_fit_is_an_inline_error(site: LiveBrenia, owner: Persona,
                                                  page: Page) -> None:
    log_in(page, site, owner)
    open_template(page, site, "discount-banner")
    page.fill("[name=product_name]", "Limonaia sparkling lemonade family pack with free glass")
    keep_formats(page, {"mobile-banner"})
    # The quote already says why it cannot run...
    page.wait_for_function(
        "() => document.querySelector('[data-quote-problems]')?.textContent.includes('320×50')")
    response_status: list[int] = []
    page.on("response", lambda r: response_status.append(r.status)
            if r.request.method == "POST" and r.url.endswith("/templates/discount-banner/")
            else None)
    page.click("button[type=submit]:has-text('Generate')")
    page.wait_for_load_state()
    # ...and the run is refused with the problem next to the field, nothing started.
    field = page.locator("[name=product_name]")
    assert field.get_attribute("aria-invalid") == "true"
    assert field.input_value().startswith("Limonaia sparkling")  # what was typed is kept
    error = page.locator(".errorlist").filter(has_text="320×50").first
    assert error.is_visible()
    assert response_status == [422]
    assert not TemplateRun.objects.filter(user=owner.user).exists()
    assert_accessible(page)


def test_brand_kit_and_playground_pages_are_accessible(site: LiveBrenia, owner: Persona,
                                                       page: Page) -> None:
    log_in(page, site, owner)
    for path in ("/brand-kits/", "/brand-kits/new", "/playground/", "/playground/flux-dev/",
                 "/playground/background-removal/", "/images/"):
        response = page.goto(site.url + path)
        assert response is not None and response.status == 200, path
        assert_accessible(page)
    page.context.clear_cookies()
    page.goto(site.url + "/accounts/login/")
    assert_accessible(page)
