"""Composing one format of a run: what it is made from, read from the database as plain
values, then rendered in a thread of its own that never touches the database.

The same inputs re-render an old run to the same bytes (``template_run_recompose``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from generation.jobs.lifecycle import (
    StoredImage,
    job_finish,
)
from generation.jobs.services import (
    image_store,
    job_local_start,
)
from generation.models import TERMINAL_STATUSES, IllegalTransition, Job, JobStatus
from templates_app.brands import brand_for_layout
from templates_app.compose import FORMATS, Composition, CopyDoesNotFit, compose
from templates_app.models import (
    RunStep,
    StepKind,
    TemplateRun,
)
from templates_app.selectors import run_copy, run_cost

logger = logging.getLogger(__name__)


def _open_image(name: str) -> PILImage.Image:
    with default_storage.open(name) as handle:
        image = PILImage.open(io.BytesIO(handle.read()))
        image.load()
    return image


def _provenance(run: TemplateRun, step: RunStep, copy: dict[str, str]) -> dict[str, Any]:
    models: dict[str, Any] = {}
    steps = {other.key: other for other in run.steps.select_related("job")}
    needed, todo = set(), list(step.depends_on)
    while todo:  # every step this one rests on, directly or not
        key = todo.pop()
        if key not in needed and key in steps:
            needed.add(key)
            todo += steps[key].depends_on
    for other in steps.values():
        if other.kind == StepKind.MODEL and (other.key in needed or other.role == "copy"):
            job = other.job
            models[other.key] = {
                "model": job.model_slug if job else other.model_slug,
                "version": job.model_version if job else "",
                "job": str(job.pk) if job else None,
                "seed": other.inputs.get("seed"), "prompt": other.inputs.get("prompt", ""),
                "cost": str(job.cost) if job and job.cost is not None else None}
    return {"run": str(run.pk), "template": run.template.slug,
            "template_version": run.version.number, "format": step.key.split(":", 1)[1],
            "seed": run.seed, "models": models, "copy": copy,
            "brand_kit": run.brand.get("name", ""), "cost": str(run_cost(run)),
            "currency": run.currency}


@dataclass(frozen=True)
class ComposeOrder:
    """What one composition needs, read from the database as plain values, so that
    rendering runs in a thread of its own that never touches the database."""

    kind: str
    format: str
    brand: dict[str, Any]
    copy: dict[str, str]
    background: str  # storage names
    cutout: str
    output_format: str
    provenance: dict[str, Any]


def compose_order(run: TemplateRun, step: RunStep) -> ComposeOrder:
    """Everything one format is composed from: the same for a re-render."""
    by_key = {other.key: other for other in run.steps.all()}
    image_key = next(dep for dep in step.depends_on
                     if dep.startswith(("background:", "scene:", "face:")))
    cutout = by_key.get("cutout")
    copy = run_copy(run)
    return ComposeOrder(
        kind=run.version.spec["kind"], format=step.key.split(":", 1)[1], brand=run.brand,
        copy=copy, background=by_key[image_key].output["name"],
        cutout=cutout.output["name"] if cutout else "", output_format=run.output_format,
        provenance=_provenance(run, step, copy))


def compose_render(order: ComposeOrder, *,
                   provenance: dict[str, Any] | None = None) -> Composition:
    """Read the pictures from storage and compose (no database: any thread will do)."""
    return compose(
        kind=order.kind, fmt=FORMATS[order.format], brand=brand_for_layout(order.brand),
        copy=order.copy, background=_open_image(order.background),
        cutout=_open_image(order.cutout).convert("RGBA") if order.cutout else None,
        output_format=order.output_format,
        provenance=order.provenance if provenance is None else provenance)


def template_step_compose_start(*, step_id: int) -> tuple[Job, ComposeOrder] | None:
    """Start a composition step's job; None if there is nothing (left) to compose."""
    step = RunStep.objects.select_related("run__version", "run__template", "job").filter(
        pk=step_id).first()
    if step is None or step.job is None or step.job.status in TERMINAL_STATUSES:
        return None
    order = compose_order(step.run, step)
    job_local_start(job=step.job)
    return step.job, order


def template_step_compose_fail(*, job: Job, code: str, message: str,
                               errored: bool = False) -> None:
    with contextlib.suppress(IllegalTransition):  # cancelled meanwhile
        job_finish(job=job, status=JobStatus.ERRORED if errored else JobStatus.FAILED,
                   error_code=code, error_message=message)


def template_step_compose_finish(*, job: Job, order: ComposeOrder, made: Composition,
                                 stored: StoredImage) -> None:
    """End the step's job with its image and layout report (the hook advances the run)."""
    with contextlib.suppress(IllegalTransition):  # cancelled meanwhile
        job_finish(job=job, status=JobStatus.COMPLETED, cost=Decimal(0), images=[stored],
                   output={"provenance": order.provenance, "layout": {
                       "safe_area": list(made.safe_area),
                       "boxes": [{"name": box.name, "rect": list(box.rect),
                                  "text": list(box.text_bbox), "size": box.size,
                                  "contrast": round(box.contrast, 2),
                                  "threshold": box.threshold, "treatment": box.treatment}
                                 for box in made.boxes],
                       "logo": list(made.logo_rect) if made.logo_rect else None}})


def _render_and_store(order: ComposeOrder) -> tuple[Composition, StoredImage]:
    made = compose_render(order)
    stored = image_store(data=made.data, width=made.width, height=made.height,
                         format=made.format)
    return made, stored


async def template_step_compose(*, step_id: int) -> None:
    """Compose one format: database work on the shared thread, Pillow on its own."""
    started = await sync_to_async(template_step_compose_start)(step_id=step_id)
    if started is None:
        return
    job, order = started
    try:
        made, stored = await asyncio.to_thread(_render_and_store, order)
    except CopyDoesNotFit as exc:
        await sync_to_async(template_step_compose_fail)(
            job=job, code="copy_does_not_fit", message=str(exc))
        return
    except Exception as exc:  # we broke: logged with its traceback, the run says so
        logger.exception("composition of %s for run job %s failed", order.format, job.pk)
        await sync_to_async(template_step_compose_fail)(
            job=job, code="composition_error", message=f"The composition failed: {exc}",
            errored=True)
        return
    await sync_to_async(template_step_compose_finish)(job=job, order=order, made=made,
                                                      stored=stored)


def template_run_recompose(*, run: TemplateRun, format: str) -> bytes:
    """Render one format of a finished run again from what it pinned: the same bytes."""
    step = run.steps.get(key=f"compose:{format}")
    output = run.outputs.get(format=format)
    return compose_render(compose_order(run, step), provenance=output.provenance).data
