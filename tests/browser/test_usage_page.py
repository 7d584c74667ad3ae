"""The usage page in a real browser: reached from the navigation, its chart drawn
(one segment per day and model, a legend), filtered, the CSV downloaded; axe-core on
it in light and dark mode, with data and empty."""

from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import Page

from tests.brenia.test_usage import finished, settled_at
from tests.browser.conftest import assert_accessible, log_in
from tests.conftest import LiveBrenia, Persona

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# (days ago, model, cost): a fortnight of work on three models.
WORK = [(13, "flux-schnell", "0.12"), (12, "flux-dev", "0.35"), (12, "flux-schnell", "0.06"),
        (10, "nano-banana", "0.20"), (9, "flux-dev", "0.50"), (9, "nano-banana", "0.10"),
        (7, "flux-schnell", "0.18"), (5, "flux-dev", "0.25"), (4, "nano-banana", "0.40"),
        (4, "flux-schnell", "0.09"), (2, "flux-dev", "0.75"), (1, "flux-schnell", "0.30"),
        (0, "nano-banana", "0.15"), (0, "flux-dev", "0.20")]


def test_usage_page_charts_filters_and_exports(live_brenia: LiveBrenia, owner: Persona,
                                               outsider: Persona, page: Page,
                                               tmp_path: Path) -> None:
    now = timezone.now()

    def work() -> None:
        for days_ago, model, cost in WORK:
            settled_at(finished(owner.user, cost, slug=model), now - timedelta(days=days_ago))
        connection.close()

    # On a thread of its own: finishing a job publishes its event through async_to_sync,
    # which refuses the thread Playwright's event loop runs on.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(work).result()
    first, last = (now - timedelta(days=13)).date(), now.date()

    log_in(page, live_brenia, owner)
    page.get_by_role("link", name="Usage").click()
    page.wait_for_url(f"{live_brenia.url}/usage/")
    page.get_by_label("From", exact=True).fill(first.isoformat())
    page.get_by_label("To", exact=True).fill(last.isoformat())
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(f"**/usage/?from={first.isoformat()}*")

    chart = page.get_by_role("img", name="Spend per day by model")
    chart.wait_for()
    assert page.locator("svg rect[data-day]").count() == len(WORK)
    legend = page.get_by_role("list", name="Models")
    assert legend.get_by_role("listitem").all_inner_texts() == [
        "flux-dev 2.050000 USD", "nano-banana 0.850000 USD", "flux-schnell 0.750000 USD"]
    total = sum(float(cost) for _, _, cost in WORK)
    assert page.locator(".usage-totals dd").first.inner_text() == f"{total:.6f} USD"
    page.locator(".chart-data > summary").click()
    assert page.locator(".chart-data tbody tr").count() == len({d for d, _, _ in WORK})
    page.screenshot(path=str(tmp_path / "usage.png"), full_page=True)
    assert_accessible(page)
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=str(tmp_path / "usage-dark.png"), full_page=True)
    page.emulate_media(color_scheme="light")

    page.get_by_label("Group by").select_option("day")
    page.get_by_role("button", name="Show").click()
    page.get_by_role("heading", name="By day").wait_for()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename == \
        f"brenia-usage-{first.isoformat()}-to-{last.isoformat()}-by-day.csv"
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))
    assert rows[0] == ["day", "currency", "spend", "jobs", "images"]
    assert len(rows) == 1 + len({days_ago for days_ago, _, _ in WORK})

    page.context.clear_cookies()
    log_in(page, live_brenia, outsider)
    page.goto(f"{live_brenia.url}/usage/")
    page.get_by_text("No spend in this period").wait_for()
    assert page.locator("svg").count() == 0
    assert_accessible(page)
