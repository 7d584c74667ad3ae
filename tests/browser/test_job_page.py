"""The live job page in a real browser (Playwright driving Debian's chromium)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute

from generation.models import ImageRating
from tests.browser.conftest import assert_accessible, log_in
from tests.conftest import LiveBrenia, Persona

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# Records every status the page shows, so the test sees transitions, not just the end.
RECORD_STATUSES = """
window.__statuses = [];
document.addEventListener("DOMContentLoaded", () => {
  const el = document.getElementById("job-status");
  if (!el) return;
  window.__statuses.push(el.dataset.status);
  new MutationObserver(() => {
    const s = el.dataset.status;
    if (window.__statuses[window.__statuses.length - 1] !== s) window.__statuses.push(s);
  }).observe(el, {attributes: true, childList: true, characterData: true, subtree: true});
});
"""


def test_job_page_shows_live_transitions_without_reload(live_brenia: LiveBrenia, owner: Persona,
                                                        page: Page) -> None:
    page.add_init_script(RECORD_STATUSES)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    log_in(page, live_brenia, owner)
    page.goto(f"{live_brenia.url}/playground/")
    assert_accessible(page)
    page.click("text=FLUX.1 [schnell]")
    assert_accessible(page)
    page.fill("[name=prompt]", "Summer lemonade billboard, bold type")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]+/$"))
    loads_before = len(navigations)
    page.wait_for_selector("#job-status[data-status=completed]", timeout=30_000)
    statuses: list[str] = page.evaluate("window.__statuses")
    assert statuses[-1] == "completed"
    assert "in_progress" in statuses, statuses
    assert any(s in ("queued", "submitted") for s in statuses[:-1]), statuses
    assert len(navigations) == loads_before  # no reload happened
    image = page.locator("#job-images img")
    image.wait_for()
    natural_width: Any = image.evaluate("img => img.naturalWidth")
    assert natural_width > 0  # the image really loaded through the owner-only link
    assert (page.locator("#job-logs").text_content() or "").strip() != ""
    assert page.locator("#job-logs-toggle").is_visible()
    assert not page.locator("#job-logs").is_visible()  # collapsed until asked for
    assert_accessible(page)
    page.locator("#job-images [data-score='5']").first.click()
    page.wait_for_selector("#job-images [data-rating-status]:has-text('Rated 5 of 5')")
    image_id = page.locator("#job-images [data-rate-image]").first.get_attribute(
        "data-rate-image")
    assert ImageRating.objects.get(image_id=image_id, user=owner.user).score == 5


def test_job_page_recovers_after_a_dropped_connection(live_brenia: LiveBrenia, owner: Persona,
                                                      page: Page) -> None:
    log_in(page, live_brenia, owner)
    page.goto(f"{live_brenia.url}/playground/flux-schnell/")
    page.fill("[name=prompt]", "Discount banner, 30% off")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]+/$"))
    page.wait_for_selector("#connection[data-state=open]")
    page.evaluate("window.breniaJobFeed.simulateDrop()")
    page.wait_for_selector("#job-status[data-status=completed]", timeout=30_000)
    page.locator("#job-images img").wait_for()


def test_job_page_catches_up_when_an_event_goes_missing(live_brenia: LiveBrenia, owner: Persona,
                                                        browser: Browser) -> None:
    """The first live event is kept from the page, as an overloaded channel layer may
    lose one; the next reveals the gap in seq and the page asks for a replay."""
    lost: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []  # what the page sent the server
    received: list[dict[str, Any]] = []  # what reached the page

    def relay(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def to_page(message: str | bytes) -> None:
            event = json.loads(message)
            if not lost and event.get("seq") and event.get("type") not in (
                    "snapshot", "completed", "failed", "cancelled"):
                lost.append(event)
                return
            received.append(event)
            ws.send(message)

        def to_server(message: str | bytes) -> None:
            sent.append(json.loads(message))
            server.send(message)

        server.on_message(to_page)
        ws.on_message(to_server)

    page = browser.new_page()
    page.route_web_socket(re.compile(r"/ws/jobs/"), relay)
    log_in(page, live_brenia, owner)
    page.goto(f"{live_brenia.url}/playground/flux-schnell/")
    page.fill("[name=prompt]", "Iced tea poster, pastel colours")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]+/$"))
    page.wait_for_selector("#job-status[data-status=completed]", timeout=30_000)

    assert lost, f"no live event came before the job finished: {received}"
    job_id, seq = lost[0]["job_id"], lost[0]["seq"]
    assert {"action": "subscribe", "job": job_id, "after": seq - 1} in sent
    replayed = [e for e in received if e.get("seq") == seq and e["type"] != "snapshot"]
    assert [e["type"] for e in replayed] == [lost[0]["type"]]
    events = [e["seq"] for e in received if e["type"] != "snapshot"]
    final = max(events)
    assert page.evaluate("id => window.breniaJobFeed.lastSeq[id]", job_id) == final
