"""Capture the main pages, as a marketer sees them, into a folder of PNGs.

Starts Brenia as `make run` does (``manage.py serve``: daphne, and the emulators when no
provider keys are set) on a free port, signs in a dedicated user, drives the real pages
with Playwright and Debian's chromium (a brand kit, a billboard run, a product shot) and
saves a screenshot of each page on the way.
"""

from __future__ import annotations

import io
import os
import secrets
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from PIL import Image, ImageDraw

from brenia.management.commands.serve import wait_ready
from generation.registry.services import registry_seed
from templates_app.brands import brand_kit_delete
from templates_app.models import BrandKit, TemplateRun
from templates_app.services import ad_template_seed

USER = "screenshots"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT: Any = {"width": 1280, "height": 860}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _product_photo(path: Path) -> Path:
    picture = Image.new("RGB", (768, 1024), (238, 236, 230))
    draw = ImageDraw.Draw(picture)
    draw.rounded_rectangle((284, 300, 484, 940), radius=60, fill=(236, 196, 40))
    draw.rounded_rectangle((334, 150, 434, 310), radius=20, fill=(40, 120, 70))
    draw.rectangle((284, 560, 484, 720), fill=(190, 40, 50))
    picture.save(path)
    return path


def _logo(path: Path) -> Path:
    logo = Image.new("RGBA", (320, 320), (0, 0, 0, 0))
    ImageDraw.Draw(logo).ellipse((10, 10, 310, 310), fill=(245, 197, 24, 255))
    buffer = io.BytesIO()
    logo.save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return path


class Command(BaseCommand):
    help = "Screenshot the main pages into OUT_DIR (starts its own server)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("out_dir", type=Path)
        parser.add_argument("--timeout", type=float, default=300)

    def handle(self, *args: Any, **options: Any) -> None:
        from playwright.sync_api import sync_playwright

        out: Path = options["out_dir"]
        out.mkdir(parents=True, exist_ok=True)
        registry_seed()
        ad_template_seed()
        password = secrets.token_urlsafe(16)
        user, _ = get_user_model().objects.get_or_create(username=USER)
        user.set_password(password)
        user.save()
        # Each capture starts from a clean home: no runs, no brand kits.
        TemplateRun.objects.filter(user=user).delete()
        for kit in BrandKit.objects.filter(owner=user):
            brand_kit_delete(owner=user, kit=kit)
        port = _free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        server = subprocess.Popen(  # noqa: S603 - our own argv
            [sys.executable, "manage.py", "serve", "--port", str(port), "--latency", "fast"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop on this thread
        try:
            wait_ready(base, server, seconds=90)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                     args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport=VIEWPORT)
                with tempfile.TemporaryDirectory() as scratch:
                    self._tour(page, base, password, out, options["timeout"], Path(scratch))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=20)

    def _tour(self, page: Any, base: str, password: str, out: Path, timeout: float,
              scratch: Path) -> None:
        def shot(name: str) -> None:
            page.wait_for_load_state("networkidle")
            page.wait_for_function("[...document.images].every(i => i.complete)")
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
            self.stdout.write(f"  {out / name}.png")

        page.goto(f"{base}/accounts/login/")
        page.fill("input[name=username]", USER)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        page.goto(f"{base}/brand-kits/new")
        page.fill("[name=name]", "Limonaia")
        page.set_input_files("input[type=file]", str(_logo(scratch / "logo.png")))
        page.click("button:has-text('Create brand kit')")
        page.wait_for_url(f"{base}/brand-kits/")
        page.goto(f"{base}/templates/")
        shot("template-gallery")
        page.click(".tile h3 a[href='/templates/billboard/']")
        page.fill("[name=product]", "Limonaia sparkling lemonade")
        page.fill("[name=offer]", "Free delivery all summer")
        page.fill("[name=audience]", "city commuters")
        page.locator("[data-quote-total]").wait_for()
        shot("template-form")
        page.click("button[type=submit]:has-text('Generate')")
        page.wait_for_selector("#run-steps li[data-step^='background'][data-status=running]",
                               timeout=timeout * 1000)
        shot("run-in-progress")
        page.wait_for_selector("#run-status[data-status=completed]", timeout=timeout * 1000)
        shot("run-finished")
        page.goto(f"{base}/templates/product-shot/")
        page.set_input_files("input[type=file]", str(_product_photo(scratch / "photo.png")))
        page.fill("[name=product_name]", "Limonaia lemonade")
        page.click("button[type=submit]:has-text('Generate')")
        page.wait_for_selector("#run-status[data-status=completed]", timeout=timeout * 1000)
        page.goto(f"{base}/")
        shot("home")
        page.goto(f"{base}/images/")
        shot("images")
        page.goto(f"{base}/brand-kits/")
        shot("brand-kits")
        page.goto(f"{base}/playground/flux-dev/")
        shot("playground")
        page.emulate_media(color_scheme="dark")
        page.goto(f"{base}/")
        shot("home-dark")
