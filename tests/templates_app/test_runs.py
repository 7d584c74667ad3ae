"""Template runs end to end: every template, every format, through the emulators.

The stock fal-client and google-genai talk to the emulators over HTTP; the run's
steps are real jobs run by the background runner; outputs are real files in Django
storage, decoded here and checked.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.files.storage import default_storage
from PIL import Image as PILImage
from PIL import ImageDraw

from brenia.errors import InvalidInput
from generation.emulators.fal import FAL_STATE
from generation.emulators.gemini import GEMINI_STATE
from generation.emulators.server import EmulatorThread
from generation.models import Job, JobStatus
from templates_app.brands import brand_kit_save
from templates_app.compose import FORMATS
from templates_app.models import AdTemplate, RunStatus, StepStatus, TemplateRun
from templates_app.runs import template_run_recompose, template_run_retry
from templates_app.services import ad_template_publish, ad_template_seed, template_run_start
from tests.conftest import SCALEOUT, Persona, run_background_work

pytestmark = pytest.mark.django_db(transaction=True)

COPY_MODEL = "gemini-2.5-flash"
BACKGROUND_ENDPOINT = "fal-ai/flux/schnell"


@pytest.fixture
def templates(seeded: None) -> None:
    ad_template_seed()


@pytest.fixture
def emulators(fal_emulator: EmulatorThread, gemini_emulator: EmulatorThread,
              settings: Any) -> Iterator[tuple[Any, Any]]:
    settings.BRENIA_POLL_INTERVAL = 0.05
    assert fal_emulator.app is not None and gemini_emulator.app is not None
    fal, gemini = fal_emulator.app[FAL_STATE], gemini_emulator.app[GEMINI_STATE]
    yield fal, gemini
    fal.set_faults(BACKGROUND_ENDPOINT, None)
    gemini.set_faults({})


def product_photo() -> str:
    """A red bottle on a white sweep, as a marketer's phone would take it."""
    picture = PILImage.new("RGB", (600, 800), (245, 245, 240))
    draw = ImageDraw.Draw(picture)
    draw.rounded_rectangle((220, 200, 380, 720), radius=40, fill=(200, 30, 40))
    draw.rectangle((270, 120, 330, 210), fill=(40, 40, 40))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


VARIABLES: dict[str, dict[str, Any]] = {
    "billboard": {"product": "Sicilian lemonade", "offer": "Free delivery this week",
                  "audience": "city commuters"},
    "discount-banner": {"discount": "30% OFF", "product_name": "Lemonade 1 L",
                        "disclaimer": "Until 31 December. While stocks last."},
    "product-shot": {"product_name": "Sicilian Lemonade", "headline": "Squeezed today"},
}


def variables_for(slug: str) -> dict[str, Any]:
    variables = dict(VARIABLES[slug])
    if slug == "product-shot":
        variables["product_photo"] = product_photo()
    return variables


async def start(persona: Persona, slug: str, **kwargs: Any) -> TemplateRun:
    kwargs.setdefault("variables", variables_for(slug))
    run, _ = await sync_to_async(template_run_start)(user=persona.user, slug=slug, **kwargs)
    await run_background_work()
    return await TemplateRun.objects.select_related("job", "version").aget(pk=run.pk)


def stored(name: str) -> PILImage.Image:
    with default_storage.open(name, "rb") as handle:
        picture = PILImage.open(io.BytesIO(handle.read()))
        picture.load()
    return picture


def steps_of(run: TemplateRun) -> dict[str, Any]:
    return {step.key: step for step in run.steps.select_related("job")}


def inside(inner: list[int], outer: list[int]) -> bool:
    return (inner[0] >= outer[0] and inner[1] >= outer[1] and inner[2] <= outer[2]
            and inner[3] <= outer[3])


@pytest.mark.parametrize("slug", ["billboard", "discount-banner", "product-shot"])
async def test_every_template_renders_every_format(owner: Persona, templates: None,
                                                   emulators: Any, slug: str) -> None:
    run = await start(owner, slug)
    steps = await sync_to_async(steps_of)(run)
    failed = {k: (s.error_code, s.error_message) for k, s in steps.items()
              if s.status != StepStatus.COMPLETED}
    assert run.status == RunStatus.COMPLETED, (run.error_message, failed)
    assert run.job.status == JobStatus.COMPLETED
    outputs = [o async for o in run.outputs.select_related("image", "image__job")]
    assert sorted(o.format for o in outputs) == sorted(run.formats)
    assert run.formats == run.version.spec["formats"]
    for output in outputs:
        fmt = FORMATS[output.format]
        picture = await sync_to_async(stored)(output.image.file.name)
        assert picture.size == (fmt.width, fmt.height), output.format
        assert picture.format == "PNG"
        layout = output.image.job.result["layout"]
        for box in layout["boxes"]:
            assert inside(box["rect"], layout["safe_area"]), (output.format, box)
            assert inside(box["text"], box["rect"]), (output.format, box)  # no overflow
            assert box["contrast"] >= box["threshold"], (output.format, box)
        if slug != "product-shot":
            assert layout["boxes"], output.format
        provenance = output.provenance
        assert provenance["template"] == slug
        assert provenance["template_version"] == run.version.number
        assert provenance["seed"] == run.seed
        assert provenance["copy"]
        image_steps = [m for k, m in provenance["models"].items() if k != "copy"]
        assert image_steps and all(m["job"] and m["version"] for m in image_steps)
        # The provenance travels inside the file too.
        assert json.loads(picture.info["brenia:provenance"])["run"] == str(run.pk)


async def test_billboard_copy_is_written_by_the_copy_model_to_fit(
        owner: Persona, templates: None, emulators: Any) -> None:
    run = await start(owner, "billboard", formats=["digital-portrait"])
    steps = await sync_to_async(steps_of)(run)
    copy = steps["copy"]
    assert copy.status == StepStatus.COMPLETED and copy.reasks == 0
    schema = copy.inputs["response_schema"]
    assert set(schema["required"]) == {"headline", "subline", "cta"}
    assert all(prop["maxLength"] > 0 for prop in schema["properties"].values())
    assert copy.job.model_slug == "gemini-copy" and copy.job.cost > 0
    assert set(copy.output["copy"]) == {"headline", "subline", "cta"}


async def test_background_is_painted_once_per_aspect_family(
        owner: Persona, templates: None, emulators: Any) -> None:
    run = await start(owner, "discount-banner")
    steps = await sync_to_async(steps_of)(run)
    backgrounds = [key for key in steps if key.startswith("background:")]
    families = {FORMATS[slug].family for slug in run.formats}
    assert len(run.formats) == 9
    assert sorted(backgrounds) == sorted(f"background:{family}" for family in families)
    assert len(backgrounds) < len(run.formats)
    model_jobs = await Job.objects.filter(parent=run.job, model__isnull=False).acount()
    assert model_jobs == len(backgrounds)


async def test_copy_that_answers_too_long_is_asked_again(
        owner: Persona, templates: None, emulators: Any) -> None:
    _fal, gemini = emulators
    gemini.set_faults({COPY_MODEL: ["verbose", "ok"]})
    run = await start(owner, "billboard", formats=["digital-landscape"])
    steps = await sync_to_async(steps_of)(run)
    copy = steps["copy"]
    assert run.status == RunStatus.COMPLETED, run.error_message
    assert copy.reasks == 1
    jobs = [j async for j in Job.objects.filter(parent=run.job, model_slug="gemini-copy")
            .order_by("created_at")]
    assert len(jobs) == 2
    first = json.loads(jobs[0].result["text"])
    limits = copy.inputs["response_schema"]["properties"]
    # The second ask carried the measured budget, tighter than what came back first.
    assert any(limits[name]["maxLength"] < len(first[name]) for name in limits)
    for name, text in copy.output["copy"].items():
        assert len(text) <= limits[name]["maxLength"]


async def test_copy_that_never_fits_fails_the_step_naming_the_box(
        owner: Persona, templates: None, emulators: Any) -> None:
    _fal, gemini = emulators
    gemini.set_faults({COPY_MODEL: ["verbose", "verbose", "verbose"]})
    run = await start(owner, "billboard", formats=["digital-landscape"])
    steps = await sync_to_async(steps_of)(run)
    copy = steps["copy"]
    assert copy.status == StepStatus.FAILED
    assert copy.reasks == 2
    assert copy.error_code == "copy_does_not_fit"
    assert "does not fit its box in 1920×1080" in copy.error_message
    assert any(box in copy.error_message for box in ("headline", "subline", "call to action"))
    assert run.status == RunStatus.FAILED and run.job.status == JobStatus.FAILED
    assert "Copy" in run.error_message
    assert steps["compose:digital-landscape"].status == StepStatus.PENDING
    assert not [o async for o in run.outputs.all()]


async def test_failed_background_is_retried_alone_and_copy_is_not_billed_again(
        owner: Persona, templates: None, emulators: Any) -> None:
    fal, _gemini = emulators
    fal.set_faults(BACKGROUND_ENDPOINT, {"sequence": ["content_policy"]})
    run = await start(owner, "billboard", formats=["48-sheet"])
    steps = await sync_to_async(steps_of)(run)
    assert run.status == RunStatus.FAILED
    assert steps["background:wide"].status == StepStatus.FAILED
    assert steps["copy"].status == StepStatus.COMPLETED
    copy_job = steps["copy"].job
    cost_before = copy_job.cost

    await sync_to_async(template_run_retry)(user=owner.user, run_id=run.pk)
    await run_background_work()
    run = await TemplateRun.objects.select_related("job").aget(pk=run.pk)
    steps = await sync_to_async(steps_of)(run)
    assert run.status == RunStatus.COMPLETED, run.error_message
    assert run.job.status == JobStatus.COMPLETED
    assert steps["background:wide"].attempts == 2
    assert steps["copy"].attempts == 1 and steps["copy"].job_id == copy_job.pk
    copy_jobs = await Job.objects.filter(parent=run.job, model_slug="gemini-copy").acount()
    assert copy_jobs == 1
    background_jobs = [j async for j in Job.objects.filter(parent=run.job,
                                                           model_slug="flux-schnell")]
    assert sorted(j.status for j in background_jobs) == [JobStatus.COMPLETED, JobStatus.FAILED]
    assert (await Job.objects.aget(pk=copy_job.pk)).cost == cost_before
    paid = sum((j.cost or Decimal(0) for j in background_jobs), Decimal(0))
    assert run.job.cost == cost_before + paid
    assert [o.format async for o in run.outputs.all()] == ["48-sheet"]


async def test_a_finished_run_re_renders_identically(owner: Persona, templates: None,
                                                     emulators: Any) -> None:
    run = await start(owner, "discount-banner", formats=["medium-rectangle"])
    output = await run.outputs.select_related("image").aget()
    with default_storage.open(output.image.file.name, "rb") as handle:
        original = handle.read()
    # The template changes afterwards: the old run still renders from its version.
    template = await AdTemplate.objects.aget(slug="discount-banner")
    template.style = "dark moody noir"
    await sync_to_async(template.save)()
    await sync_to_async(ad_template_publish)(template=template)
    again = await sync_to_async(template_run_recompose)(run=run, format="medium-rectangle")
    assert again == original


async def test_changing_the_background_model_changes_new_runs_only(
        owner: Persona, templates: None, emulators: Any) -> None:
    first = await start(owner, "discount-banner", formats=["social-square"])
    template = await AdTemplate.objects.aget(slug="discount-banner")
    from generation.models import AIModel
    template.background_model = await AIModel.objects.aget(slug="flux-dev")
    await sync_to_async(template.save)()
    version = await sync_to_async(ad_template_publish)(template=template)
    assert version.number == 2
    second = await start(owner, "discount-banner", formats=["social-square"])
    assert second.version_id == version.pk and first.version_id != version.pk
    models = [j.model_slug async for j in Job.objects.filter(parent=second.job,
                                                             model__isnull=False)]
    assert models == ["flux-dev"]
    old = [j.model_slug async for j in Job.objects.filter(parent=first.job,
                                                          model__isnull=False)]
    assert old == ["flux-schnell"]


async def test_the_brand_kit_sets_logo_palette_and_fonts(owner: Persona, templates: None,
                                                         emulators: Any) -> None:
    logo = PILImage.new("RGBA", (400, 200), (0, 0, 0, 0))
    ImageDraw.Draw(logo).rectangle((20, 20, 380, 180), fill=(0, 200, 90, 255))
    buffer = io.BytesIO()
    logo.save(buffer, "PNG")
    kit = await sync_to_async(brand_kit_save)(
        owner=owner.user, name="Lemon Co", palette=["#0b6e4f", "#f5c518"],
        heading_font="league-spartan", body_font="lato", tone="playful",
        banned_words=["cheap"], logo=buffer.getvalue())
    run = await start(owner, "discount-banner", formats=["social-square"], brand_kit=kit.pk)
    assert run.status == RunStatus.COMPLETED, run.error_message
    assert run.brand["heading_font"] == "league-spartan" and run.brand["logo"]
    output = await run.outputs.select_related("image", "image__job").aget()
    layout = output.image.job.result["layout"]
    assert layout["logo"]
    picture = (await sync_to_async(stored)(output.image.file.name)).convert("RGB")
    x0, y0, x1, y1 = layout["logo"]
    centre = picture.getpixel(((x0 + x1) // 2, (y0 + y1) // 2))
    assert abs(centre[0] - 0) < 40 and abs(centre[1] - 200) < 40 and abs(centre[2] - 90) < 40


async def test_given_copy_that_cannot_fit_is_refused_before_anything_runs(
        owner: Persona, templates: None, emulators: Any) -> None:
    variables = {**variables_for("discount-banner"),
                 "product_name": "Freshly squeezed Sicilian lemonade with mint and honey"}
    with pytest.raises(InvalidInput) as caught:
        await sync_to_async(template_run_start)(
            user=owner.user, slug="discount-banner", variables=variables,
            formats=["mobile-banner"])
    fields = {problem.field: problem.problem for problem in caught.value.errors}
    assert "variables.product_name" in fields
    assert "320×50" in fields["variables.product_name"]
    assert await TemplateRun.objects.acount() == 0
    assert await Job.objects.acount() == 0


async def test_run_steps_stream_on_the_runs_websocket(owner: Persona, outsider: Persona,
                                                      templates: None, emulators: Any) -> None:
    from tests.generation.test_consumers import connect

    run = await start(owner, "discount-banner", formats=["social-square"])
    # Replayed from the start (after=0 replays nothing, so ask from seq 1 on).
    ws = await connect(f"/ws/jobs/?job={run.job_id}&after=1", owner)
    events = []
    while True:
        event = await ws.receive_json_from(timeout=5)
        if event["type"] == "snapshot":
            break
        events.append(event)
    await ws.disconnect()
    steps = [(e["step"], e["status"]) for e in events if e["type"] == "step"]
    assert ("background:square", "running") in steps
    assert ("background:square", "completed") in steps
    assert steps.index(("background:square", "completed")) < steps.index(
        ("compose:social-square", "running"))
    assert steps[-1] == ("compose:social-square", "completed")
    assert events[-1]["type"] == "completed" and event["job"]["status"] == "completed"
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    theirs = await connect(f"/ws/jobs/?job={run.job_id}", outsider)
    assert (await theirs.receive_json_from())["code"] == "job_not_found"


@pytest.mark.skipif(SCALEOUT, reason="the command waits on the in-process runner; in "
                    "scale-out it needs worker processes, which this test does not start")
def test_render_samples_writes_every_format_and_a_contact_sheet(
        templates: None, emulators: Any, tmp_path: Any) -> None:
    from django.core.management import call_command

    call_command("render_samples", str(tmp_path / "out"), stdout=io.StringIO())
    written = sorted((tmp_path / "out").glob("*/*.png"))
    expected = {(t, f) for t, formats in (
        ("billboard", ("48-sheet", "bulletin", "digital-landscape", "digital-portrait")),
        ("discount-banner", ("leaderboard", "medium-rectangle", "wide-skyscraper",
                             "mobile-banner", "half-page", "billboard-970",
                             "social-landscape", "social-square", "social-story")),
        ("product-shot", ("square", "portrait-4x5", "landscape-16x9", "story-9x16")))
        for f in formats}
    assert {(p.parent.name, p.stem) for p in written} == expected
    for path in written:
        with PILImage.open(path) as picture:
            assert picture.size == (FORMATS[path.stem].width, FORMATS[path.stem].height)
    with PILImage.open(tmp_path / "out" / "contact-sheet.jpg") as sheet:
        assert sheet.width == 1800 and sheet.height > 1000


async def test_a_face_photo_is_swapped_onto_the_background_before_composing(
        owner: Persona, templates: None, emulators: Any) -> None:
    face = product_photo()
    run = await start(owner, "billboard", formats=["digital-landscape"],
                      variables={**variables_for("billboard"), "face_photo": face,
                                 "headline": "Fresh every morning"})
    steps = await sync_to_async(steps_of)(run)
    assert run.status == RunStatus.COMPLETED, run.error_message
    assert "copy" not in steps  # the headline was given
    swap = steps["face:landscape"]
    assert swap.job.model_slug == "face-swap" and swap.status == StepStatus.COMPLETED
    sent = swap.job.inputs  # what the face-swap model was given
    assert sent["swap_image_url"] == face
    assert sent["base_image_url"].startswith("data:image/png;base64,")
    assert sent["base_image_url"] != face  # the painted background
    assert steps["compose:digital-landscape"].depends_on == ["face:landscape"]
    output = await run.outputs.aget()
    assert set(output.provenance["models"]) == {"background:landscape", "face:landscape"}
