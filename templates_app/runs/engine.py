"""Driving template runs: every step from start to finish, retries, and recovery.

``template_run_advance`` looks at a run's steps and their jobs and does what is due:
records finished steps, asks for copy again when it does not fit, starts the steps
whose inputs are ready, ends the run. It is idempotent and safe to run concurrently
(every step is claimed with a conditional UPDATE), so it is submitted without a key
whenever anything may have changed: when a run starts, whenever one of its jobs ends
(the job-finished hook), after a retry, and by recovery after a restart. A
composition runs as a task of its own, keyed by its step.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from brenia import background
from brenia.errors import Conflict, InvalidInput
from brenia.logs import request_id_var
from generation.jobs.lifecycle import (
    JobFinished,
    job_finish,
    job_finished_hook,
    job_reopen,
)
from generation.jobs.services import (
    job_cancel,
    job_create,
    job_local_create,
    job_local_progress,
    job_local_start,
    job_notify,
)
from generation.models import TERMINAL_STATUSES, Image, Job, JobStatus
from templates_app import copywriting
from templates_app.brands import brand_for_layout
from templates_app.models import (
    RunOutput,
    RunStatus,
    RunStep,
    StepKind,
    StepStatus,
    TemplateRun,
)
from templates_app.runs.composing import template_step_compose
from templates_app.selectors import (
    compose_step_ids_running,
    run_cost,
    run_get_for_user,
    run_ids_unfinished,
)

logger = logging.getLogger(__name__)


# -- background tasks ----------------------------------------------------------------

@background.task("templates.advance_run", queue=background.JOBS)
async def template_run_advance_task(*, run_id: str) -> None:
    await sync_to_async(template_run_advance)(run_id=run_id)


@background.task("templates.compose_step", queue=background.JOBS)
async def template_step_compose_task(*, step_id: int) -> None:
    await template_step_compose(step_id=int(step_id))


def template_run_advance_submit(run_id: Any) -> None:
    """Advance the run in the background (call after the commit that changed it)."""
    background.submit(template_run_advance_task, run_id=str(run_id))


def _compose_key(step_id: Any) -> str:
    return f"brenia-compose-{step_id}"


def template_step_compose_submit(step_id: int) -> None:
    background.submit(template_step_compose_task, key=_compose_key(step_id), step_id=step_id)


@background.recovery("templates.resume_runs")
async def resume_runs() -> None:
    """Put back compositions a dead process left unfinished, and advance every open run."""
    carried = await background.carried(template_step_compose_task, arg="step_id")
    for step_id in await sync_to_async(compose_step_ids_running)():
        if str(step_id) not in carried:
            await background.asubmit(template_step_compose_task, key=_compose_key(step_id),
                                     step_id=step_id)
    runs = await sync_to_async(run_ids_unfinished)()
    for run_id in runs:
        await background.asubmit(template_run_advance_task, run_id=str(run_id))
    if runs:
        logger.info("advancing %d unfinished template run(s)", len(runs))


# -- advancing -----------------------------------------------------------------------

def _advance_later(run_id: Any) -> None:
    template_run_advance_submit(run_id)


def _compose_later(step_id: int) -> None:
    template_step_compose_submit(step_id)


def _step_event(run: TemplateRun, step: RunStep, **extra: Any) -> None:
    job_notify(job=run.job, type="step", payload={
        "step": step.key, "label": step.label, "status": step.status,
        "job": str(step.job_id) if step.job_id else None, "attempt": step.attempts,
        **({"code": step.error_code, "message": step.error_message}
           if step.status == StepStatus.FAILED else {}),
        **extra})


def _claim(step: RunStep, *, frm: str, to: str, **fields: Any) -> bool:
    """Move ``step`` with one conditional UPDATE; False if someone else moved it first."""
    values = {"status": to, "updated_at": timezone.now(), **fields}
    if RunStep.objects.filter(pk=step.pk, status=frm).update(**values) != 1:
        return False
    for key, value in values.items():
        setattr(step, key, value)
    return True


def template_run_advance(*, run_id: Any) -> None:
    """Do what is due for the run (see the module docstring); idempotent."""
    run = TemplateRun.objects.select_related("job", "version").filter(pk=run_id).first()
    if run is None or run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
        return
    # The steps' jobs (and every line logged here) keep the request id of the call
    # that started the run, though they are made later in the background.
    token = request_id_var.set(run.job.request_id or "-")
    try:
        _advance(run)
    finally:
        request_id_var.reset(token)


def _advance(run: TemplateRun) -> None:
    if run.job.status == JobStatus.CANCELLED:
        _run_cancel_steps(run)
        return
    if run.status == RunStatus.QUEUED:
        if TemplateRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
                status=RunStatus.RUNNING) == 1:
            job_local_start(job=run.job)
        run.status = RunStatus.RUNNING
    steps = list(run.steps.select_related("job").order_by("order"))
    for step in steps:
        if step.status == StepStatus.RUNNING and step.job is not None \
                and step.job.status in TERMINAL_STATUSES:
            with transaction.atomic():
                _step_job_ended(run, step)
    by_key = {step.key: step for step in steps}
    for step in steps:
        if step.status != StepStatus.PENDING:
            continue
        if all(by_key[dep].status == StepStatus.COMPLETED for dep in step.depends_on):
            # Read before the transaction: a cut-out or a background is megabytes of
            # storage I/O that must not hold the step's row (or SQLite's write lock).
            inputs = _step_inputs(step, by_key)
            with transaction.atomic():
                _step_start(run, step, inputs)
    _run_progress(run, steps)
    _run_end_if_done(run)


def _step_job_ended(run: TemplateRun, step: RunStep) -> None:
    job = step.job
    assert job is not None
    if job.status != JobStatus.COMPLETED:
        if _claim(step, frm=StepStatus.RUNNING, to=StepStatus.FAILED,
                  error_code=job.error_code or job.status,
                  error_message=job.error_message or f"The {step.label} step was {job.status}."):
            _step_event(run, step)
        return
    if step.role == "copy":
        _copy_step_answered(run, step, job)
        return
    if step.kind == StepKind.COMPOSE:
        image = job.images.order_by("index").first()
        if image is None:
            return
        RunOutput.objects.get_or_create(run=run, format=step.key.split(":", 1)[1], defaults={
            "image": image, "provenance": job.result.get("provenance", {})})
        output: dict[str, Any] = {"image": str(image.pk)}
    else:
        image = job.images.order_by("index").first()
        if image is None:
            if _claim(step, frm=StepStatus.RUNNING, to=StepStatus.FAILED,
                      error_code="no_image", error_message="The model returned no image."):
                _step_event(run, step)
            return
        output = {"image": str(image.pk), "name": image.file.name, "width": image.width,
                  "height": image.height}
    if _claim(step, frm=StepStatus.RUNNING, to=StepStatus.COMPLETED, output=output):
        _step_event(run, step)


def _copy_step_answered(run: TemplateRun, step: RunStep, job: Job) -> None:
    spec = run.version.spec
    kind = spec["kind"]
    fields = tuple(step.inputs["response_schema"]["required"])
    copy = copywriting.parse_answer(job.result.get("text", ""), fields)
    brand = brand_for_layout(run.brand, with_logo=False)
    banned = run.brand.get("banned_words", [])
    if copy is None:
        found = [copywriting.Misfit("copy", "", 0, "The copy model did not answer with the "
                                    "JSON asked for.")]
        copy = {}
    else:
        found = copywriting.misfits(kind=kind, formats=run.formats, brand=brand,
                                    copy={**copywriting.copy_fields(kind, run.variables),
                                          **copy}, fields=fields, banned_words=banned)
    if not found:
        if _claim(step, frm=StepStatus.RUNNING, to=StepStatus.COMPLETED,
                  output={"copy": copy}):
            _step_event(run, step)
        return
    if step.reasks >= copywriting.MAX_REASKS:
        if _claim(step, frm=StepStatus.RUNNING, to=StepStatus.FAILED,
                  error_code="copy_does_not_fit", error_message=found[0].message,
                  output={"copy": copy}):
            _step_event(run, step)
        return
    limits = {name: prop["maxLength"]
              for name, prop in step.inputs["response_schema"]["properties"].items()}
    limits = copywriting.tighter_limits(limits, found, copy)
    inputs = copywriting.copy_request(
        kind=kind, variables=run.variables, brand_tone=run.brand.get("tone", ""),
        banned_words=banned, fields=fields, limits=limits)
    # Only the copy job that just answered may ask again (the claim is on it).
    if RunStep.objects.filter(pk=step.pk, status=StepStatus.RUNNING, job=job).update(
            reasks=step.reasks + 1, inputs=inputs, job=None) != 1:
        return
    step.reasks += 1
    step.inputs = inputs
    _step_model_job(run, step, reason=found[0].message)


def _step_model_job(run: TemplateRun, step: RunStep, *, inputs: dict[str, Any] | None = None,
                    reason: str = "") -> None:
    """Create the step's job (its current attempt) and record it on the step.

    ``inputs`` are the step's own, with other steps' images filled in (not stored on
    the step: the job keeps what it was given)."""
    try:
        job, _ = job_create(
            user=run.user, model_slug=step.model_slug,
            inputs=step.inputs if inputs is None else inputs, options=None,
            metadata={"template_run": str(run.pk), "step": step.key},
            idempotency_key=f"run:{run.pk}:{step.key}:{step.attempts}:{step.reasks}",
            output="text" if step.role == "copy" else "image", parent=run.job,
            routed_by=step.routed_by)
    except (InvalidInput, Conflict) as exc:
        detail = "; ".join(f"{e.field} {e.problem}" for e in getattr(exc, "errors", []))
        RunStep.objects.filter(pk=step.pk).update(
            status=StepStatus.FAILED, error_code=exc.code,
            error_message=f"{exc.message} {detail}".strip())
        step.status, step.error_code = StepStatus.FAILED, exc.code
        step.error_message = f"{exc.message} {detail}".strip()
        _step_event(run, step)
        return
    RunStep.objects.filter(pk=step.pk).update(job=job)
    step.job = job
    _step_event(run, step, **({"reason": reason} if reason else {}))


def _step_inputs(step: RunStep, by_key: dict[str, RunStep]) -> dict[str, Any]:
    """The step's model inputs, with the images of the steps it rests on filled in."""
    if step.role == "scene" and "cutout" in step.depends_on:
        return {**step.inputs, "reference_image_urls": [
            _data_uri(by_key["cutout"].output["name"])]}
    if step.role == "face_swap":
        return {**step.inputs, "base_image_url": _data_uri(
            by_key[step.depends_on[0]].output["name"])}
    return step.inputs


def _step_start(run: TemplateRun, step: RunStep, inputs: dict[str, Any]) -> None:
    if not _claim(step, frm=StepStatus.PENDING, to=StepStatus.RUNNING,
                  attempts=step.attempts + 1, error_code="", error_message=""):
        return
    if step.kind == StepKind.COMPOSE:
        job = job_local_create(user=run.user, label="brenia/compose", version="1",
                               parent=run.job, inputs={"format": step.key.split(":", 1)[1]},
                               metadata={"template_run": str(run.pk), "step": step.key})
        RunStep.objects.filter(pk=step.pk).update(job=job)
        step.job = job
        _step_event(run, step)
        step_id = step.pk
        transaction.on_commit(lambda: _compose_later(step_id))
        return
    _step_model_job(run, step, inputs=inputs)


def _data_uri(name: str) -> str:
    """A stored step image as a data URI: how the next model is given it."""
    with default_storage.open(name) as handle:
        data = handle.read()
    mime = "image/jpeg" if name.endswith((".jpg", ".jpeg")) else \
        "image/webp" if name.endswith(".webp") else "image/png"
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def _run_progress(run: TemplateRun, steps: list[RunStep]) -> None:
    done = sum(1 for step in steps if step.status == StepStatus.COMPLETED)
    progress = round(done / len(steps), 3) if steps else 1.0
    if run.job.progress != progress and run.job.status == JobStatus.IN_PROGRESS:
        job_local_progress(job=run.job, progress=progress)


def _run_end_if_done(run: TemplateRun) -> None:
    steps = list(run.steps.all())
    if any(step.status == StepStatus.RUNNING for step in steps):
        return
    failed = [step for step in steps if step.status == StepStatus.FAILED]
    ready = [step for step in steps if step.status == StepStatus.PENDING and all(
        other.status == StepStatus.COMPLETED for other in steps if other.key in step.depends_on)]
    if ready:
        return  # another advance is about to start them
    if not failed and any(step.status != StepStatus.COMPLETED for step in steps):
        return
    with transaction.atomic():
        if failed:
            first = failed[0]
            message = f"The {first.label} step failed: {first.error_message}"
            if TemplateRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
                    status=RunStatus.FAILED, error_code=first.error_code or "step_failed",
                    error_message=message, finished_at=timezone.now()) != 1:
                return
            job_finish(job=run.job, status=JobStatus.FAILED,
                       error_code=first.error_code or "step_failed", error_message=message)
        else:
            if TemplateRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
                    status=RunStatus.COMPLETED, finished_at=timezone.now()) != 1:
                return
            cost = run_cost(run)
            job_finish(job=run.job, status=JobStatus.COMPLETED, cost=cost,
                       output={"run": str(run.pk)})
            # Each output carries its share of the run (composing itself is free).
            outputs = Image.objects.filter(run_output__run=run)
            outputs.update(cost=(cost / max(1, outputs.count())).quantize(Decimal("0.000001")))


def _run_cancel_steps(run: TemplateRun) -> None:
    """The run's parent job was cancelled: stop what runs, drop what waits."""
    with transaction.atomic():
        if TemplateRun.objects.filter(pk=run.pk, status__in=(
                RunStatus.QUEUED, RunStatus.RUNNING)).update(
                status=RunStatus.CANCELLED, finished_at=timezone.now()) != 1:
            return
        for step in run.steps.select_related("job").exclude(
                status__in=(StepStatus.COMPLETED, StepStatus.FAILED)):
            RunStep.objects.filter(pk=step.pk).update(status=StepStatus.CANCELLED)
            if step.job is not None and step.job.status not in TERMINAL_STATUSES:
                with contextlib.suppress(Conflict):  # it ended meanwhile
                    job_cancel(user=run.user, job_id=step.job.pk)


# -- retrying ------------------------------------------------------------------

def template_run_retry(*, user: Any, run_id: Any) -> TemplateRun:
    """Run the failed steps again (new jobs); finished steps are kept and not re-billed."""
    run = run_get_for_user(user=user, run_id=run_id)
    with transaction.atomic():
        if TemplateRun.objects.filter(pk=run.pk, status=RunStatus.FAILED).update(
                status=RunStatus.RUNNING, error_code="", error_message="",
                finished_at=None) != 1:
            run.refresh_from_db()
            raise Conflict(f"The run is {run.status}: only a failed run can be retried.",
                           code="run_not_retryable")
        failed = list(run.steps.filter(status=StepStatus.FAILED))
        job_reopen(job=run.job, reason="Retrying: " + ", ".join(s.label for s in failed))
        for step in failed:
            RunStep.objects.filter(pk=step.pk, status=StepStatus.FAILED).update(
                status=StepStatus.PENDING, job=None, reasks=0, error_code="",
                error_message="")
            step.status, step.job = StepStatus.PENDING, None
            _step_event(run, step)
        transaction.on_commit(lambda: _advance_later(run.pk))
    run.refresh_from_db()
    return run


# -- the job-finished hook -----------------------------------------------------------

@job_finished_hook
def on_job_finished(finished: JobFinished) -> None:
    """A step's job or a run's parent job ended: advance the run after commit."""
    job = finished.job
    run_id = None
    if job.parent_id is not None and isinstance(job.metadata, dict):
        run_id = job.metadata.get("template_run")
    elif job.model_id is None and finished.status == JobStatus.CANCELLED:
        run_id = TemplateRun.objects.filter(job=job).values_list("pk", flat=True).first()
    if run_id:
        transaction.on_commit(lambda: _advance_later(run_id))
