"""Render one run of every template, in every format, into a folder, with a contact sheet.

Runs through the real engine: the registry's models (the built-in emulators when
FAL_KEY / GEMINI_API_KEY are unset), the background runner, the composition engine
and Django storage. The files are then copied out by template and format.
"""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError, CommandParser
from PIL import Image, ImageDraw, ImageFont

from generation.registry.services import registry_seed
from templates_app.brands import brand_kit_save
from templates_app.compose import FORMATS
from templates_app.models import RunStatus, TemplateRun
from templates_app.services import ad_template_seed, template_run_start

FONT = Path(settings.BASE_DIR) / "static" / "fonts" / "Inter-Regular.otf"
SAMPLE_USER = "samples"


def _product_photo() -> str:
    """A plain product photo (a bottle on a light sweep) to cut out."""
    picture = Image.new("RGB", (768, 1024), (238, 236, 230))
    draw = ImageDraw.Draw(picture)
    draw.rounded_rectangle((284, 300, 484, 940), radius=60, fill=(236, 196, 40))
    draw.rounded_rectangle((334, 150, 434, 310), radius=20, fill=(40, 120, 70))
    draw.rectangle((284, 560, 484, 720), fill=(190, 40, 50))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _logo() -> bytes:
    logo = Image.new("RGBA", (480, 160), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    draw.ellipse((8, 8, 152, 152), fill=(245, 197, 24, 255))
    draw.text((176, 34), "Limonaia", fill=(20, 60, 40, 255),
              font=ImageFont.truetype(str(FONT), 72))
    buffer = io.BytesIO()
    logo.save(buffer, "PNG")
    return buffer.getvalue()


SAMPLES: dict[str, dict[str, Any]] = {
    "billboard": {"product": "Limonaia sparkling lemonade",
                  "offer": "Free delivery all summer", "audience": "city commuters",
                  "scene": "a sunlit Mediterranean terrace with lemon trees"},
    "discount-banner": {"discount": "30% OFF", "product_name": "Limonaia 1 L",
                        "cta": "Shop now",
                        "disclaimer": "Until 31 August. While stocks last."},
    "product-shot": {"product_name": "Limonaia sparkling lemonade",
                     "headline": "Squeezed this morning", "cta": "Order today"},
}


class Command(BaseCommand):
    help = "Render one run of each template in every format into OUT_DIR (+ contact sheet)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("out_dir", type=Path)
        parser.add_argument("--timeout", type=float, default=600,
                            help="Seconds to wait for the runs")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.FAL_KEY or not settings.GEMINI_API_KEY:
            self._start_emulators()
        registry_seed()
        ad_template_seed()
        user, _ = get_user_model().objects.get_or_create(username=SAMPLE_USER)
        kit = brand_kit_save(owner=user, name="Limonaia", palette=["#0b6e4f", "#f5c518"],
                             heading_font="league-spartan", body_font="inter",
                             tone="sunny, witty, warm", banned_words=["cheap"],
                             logo=_logo())
        runs = []
        for slug, variables in SAMPLES.items():
            if slug == "product-shot":
                variables = {**variables, "product_photo": _product_photo()}
            run, _ = template_run_start(user=user, slug=slug, variables=variables,
                                        brand_kit=kit.pk)
            runs.append(run)
            self.stdout.write(f"{slug}: run {run.pk} started ({len(run.formats)} formats)")
        deadline = time.monotonic() + options["timeout"]
        while TemplateRun.objects.filter(pk__in=[r.pk for r in runs],
                                         status__in=(RunStatus.QUEUED, RunStatus.RUNNING)
                                         ).exists():
            if time.monotonic() > deadline:
                raise CommandError("the runs did not finish in time")
            time.sleep(0.5)
        out: Path = options["out_dir"]
        out.mkdir(parents=True, exist_ok=True)
        written: list[tuple[str, str, Path]] = []
        for run in TemplateRun.objects.filter(pk__in=[r.pk for r in runs]) \
                .select_related("template"):
            if run.status != RunStatus.COMPLETED:
                raise CommandError(f"{run.template.slug}: {run.error_message}")
            for output in run.outputs.select_related("image"):
                extension = output.image.file.name.rsplit(".", 1)[-1]
                path = out / run.template.slug / f"{output.format}.{extension}"
                path.parent.mkdir(parents=True, exist_ok=True)
                with default_storage.open(output.image.file.name, "rb") as handle:
                    path.write_bytes(handle.read())
                written.append((run.template.slug, output.format, path))
                self.stdout.write(f"  {path}")
        sheet = out / "contact-sheet.jpg"
        contact_sheet(written).save(sheet, "JPEG", quality=85, optimize=True)
        self.stdout.write(f"contact sheet: {sheet}")

    def _start_emulators(self) -> None:
        from generation.emulators.fal import FalEmulatorConfig
        from generation.emulators.fal import create_app as create_fal
        from generation.emulators.gemini import GeminiEmulatorConfig
        from generation.emulators.gemini import create_app as create_gemini
        from generation.emulators.server import EmulatorThread

        fal = EmulatorThread(lambda: create_fal(FalEmulatorConfig(latency="fast")))
        gemini = EmulatorThread(lambda: create_gemini(GeminiEmulatorConfig(latency="fast")))
        settings.FAL_KEY, settings.FAL_QUEUE_URL = "emulator-key:emulator-secret", fal.start()
        settings.GEMINI_API_KEY, settings.GEMINI_BASE_URL = "emulator-key", gemini.start()
        self.stdout.write("no provider keys: using the built-in emulators")


def contact_sheet(items: list[tuple[str, str, Path]], *, width: int = 1800) -> Image.Image:
    """Every output on one page, a row per template, each labelled with its size."""
    label_font = ImageFont.truetype(str(FONT), 18)

    def cell_width(thumb: tuple[Image.Image, str]) -> int:
        text = max(label_font.getlength(line) for line in thumb[1].splitlines())
        return max(thumb[0].width, int(text))

    title_font = ImageFont.truetype(str(FONT), 30)
    margin, gap, cell_h = 30, 24, 300
    rows: dict[str, list[tuple[str, Path]]] = {}
    for template, fmt, path in items:
        rows.setdefault(template, []).append((fmt, path))
    layout: list[tuple[str, list[tuple[Image.Image, str]]]] = []
    for template, entries in rows.items():
        thumbs = []
        for fmt, path in sorted(entries, key=lambda e: -FORMATS[e[0]].width / FORMATS[e[0]].height):
            picture = Image.open(path).convert("RGB")
            picture.thumbnail((width - 2 * margin, cell_h))
            thumbs.append((picture, f"{FORMATS[fmt].label}\n{FORMATS[fmt].width}×"
                                    f"{FORMATS[fmt].height}"))
        layout.append((template, thumbs))
    # Flow each template's thumbnails into lines that fit the page width.
    lines: list[tuple[str | None, list[tuple[Image.Image, str]]]] = []
    for template, thumbs in layout:
        current: list[tuple[Image.Image, str]] = []
        used = margin
        lines.append((template, []))
        for thumb in thumbs:
            if current and used + cell_width(thumb) > width - margin:
                lines.append((None, current))
                current, used = [], margin
            current.append(thumb)
            used += cell_width(thumb) + gap
        lines.append((None, current))
    height = margin
    for title, line in lines:
        height += 50 if title else max(t[0].height for t in line) + 56 + gap if line else 0
    sheet = Image.new("RGB", (width, height + margin), (246, 246, 244))
    draw = ImageDraw.Draw(sheet)
    y = margin
    for title, line in lines:
        if title:
            draw.text((margin, y), title.replace("-", " ").capitalize(), fill=(20, 20, 20),
                      font=title_font)
            y += 50
            continue
        if not line:
            continue
        x = margin
        for picture, label in line:
            sheet.paste(picture, (x, y))
            draw.multiline_text((x, y + picture.height + 6), label, fill=(60, 60, 60),
                                font=label_font, spacing=4)
            x += cell_width((picture, label)) + gap
        y += max(t[0].height for t in line) + 56 + gap
    return sheet
