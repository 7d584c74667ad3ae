"""The API keys page in a real browser: create a key (shown once, copied with the
button), use it, revoke it; axe-core on the page."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser.conftest import assert_accessible, log_in
from tests.conftest import LiveBrenia, Persona

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_create_copy_use_and_revoke_a_key(live_brenia: LiveBrenia, owner: Persona,
                                          page: Page) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"],
                                   origin=live_brenia.url)
    log_in(page, live_brenia, owner)
    page.get_by_role("link", name="API keys").click()
    page.wait_for_url(f"{live_brenia.url}/account/keys/")
    assert_accessible(page)

    page.get_by_label("Name").fill("Shop sync")
    page.get_by_label("Generate: start, cancel and retry work, rate images").uncheck()
    page.get_by_label("Expires").select_option("30")
    page.get_by_role("button", name="Create key").click()
    raw = page.locator("#new-key-value").input_value()
    assert raw.startswith("brn_")
    page.get_by_role("button", name="Copy").click()
    page.get_by_text("Copied.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == raw
    assert_accessible(page)

    api = httpx.Client(base_url=live_brenia.url, headers={"Authorization": f"Bearer {raw}"})
    assert api.get("/api/jobs").status_code == 200
    assert api.post("/api/images/generate?dry_run=true", json={
        "model": "flux-schnell", "inputs": {"prompt": "x"}}).json()["code"] == "insufficient_scope"

    page.get_by_role("button", name=f"Revoke Shop sync ({raw[:10]}…)").click()
    page.get_by_text("revoked.", exact=False).first.wait_for()
    assert raw not in page.content()
    assert api.get("/api/jobs").status_code == 401
