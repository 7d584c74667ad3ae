"""Real-browser fixtures: Playwright driving Debian's chromium, axe-core for accessibility."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from generation.emulators.server import EmulatorThread
from tests.conftest import LiveBrenia, Persona

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
# Vendored with its licence (MPL-2.0); the tests inject it into each page they check.
AXE = Path(__file__).resolve().parent.parent / "vendor" / "axe-core" / "axe-4.11.1.min.js"
BLOCKING_IMPACTS = ("serious", "critical")


@pytest.fixture
def live_fal() -> Iterator[EmulatorThread]:
    """An emulator whose jobs wait and run for a human-sized moment, so pages are seen
    in progress (queue, steps), not only finished."""
    from generation.emulators.fal import FalEmulatorConfig, create_app

    server = EmulatorThread(lambda: create_app(FalEmulatorConfig(
        latency="fast", dispatch_s=1.0, inference_s=1.2)))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop on this thread, which Django's
    # async-safety check mistakes for async code; the tests themselves are synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; the test fails if the Content-Security-Policy blocked anything on it."""
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text)
            if "Content Security Policy" in message.text else None)
    yield page
    context.close()
    assert not blocked, blocked


def log_in(page: Page, live: LiveBrenia, persona: Persona) -> None:
    page.goto(f"{live.url}/accounts/login/")
    page.fill("input[name=username]", persona.user.username)
    page.fill("input[name=password]", persona.password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(live.url) + r"/$"))


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated by the browser's debugging protocol, which the page's CSP does not
        # govern (a <script> tag would be refused, as it should be).
        page.evaluate(AXE.read_text())
    results: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in results["violations"] if v["impact"] in BLOCKING_IMPACTS
    ]


def assert_accessible(page: Page, *, dark: bool = True) -> None:
    """No serious or critical axe violation, in light mode and (by default) dark mode."""
    schemes = ("light", "dark") if dark else ("light",)
    for scheme in schemes:
        page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
        violations = axe_violations(page)
        assert not violations, f"{page.url} ({scheme}): {violations}"
    page.emulate_media(color_scheme="light")
