"""A run's page (live steps and results), its retry, and the zip of every format.

The page is rendered by one Django template; the browser follows the run's stream on
the WebSocket and, on each event, asks for the page's live parts again (``?part=live``)
rather than drawing runs in JavaScript a second time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from zipstream import ZIP_STORED, ZipStream

from brenia.errors import DomainError, NotFound
from templates_app import runs, selectors
from templates_app.models import RunStatus, TemplateRun
from templates_app.presenters import run_state

ZIP_CHUNK = 64 * 1024


def _run_or_404(request: HttpRequest, run_id: Any) -> TemplateRun:
    try:
        return selectors.run_get_for_user(user=request.user, run_id=run_id)
    except NotFound:
        raise Http404("There is no such run.") from None


@login_required
def run_page(request: HttpRequest, run_id: Any) -> HttpResponse:
    run = _run_or_404(request, run_id)
    context = _live_context(run)
    if request.GET.get("part") == "live":
        return render(request, "templates_app/_run_live.html", context)
    return render(request, "templates_app/run.html", context)


@login_required
@require_POST
def run_retry(request: HttpRequest, run_id: Any) -> HttpResponse:
    run = _run_or_404(request, run_id)
    try:
        runs.template_run_retry(user=request.user, run_id=run.pk)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Retrying the failed steps; the finished ones are kept.")
    return redirect("run_page", run_id=run.pk)


@login_required
def run_zip(request: HttpRequest, run_id: Any) -> HttpResponseBase:
    """Every finished format in one zip, streamed as it is built (never whole in memory)."""
    run = _run_or_404(request, run_id)
    outputs = list(run.outputs.select_related("image").order_by("format"))
    if not outputs:
        raise Http404("This run has no finished image yet.")
    stream = ZipStream(compress_type=ZIP_STORED, sized=True)  # images are compressed already
    for output in outputs:
        image = output.image
        extension = "jpg" if image.format.lower() == "jpeg" else image.format.lower()
        stream.add(_file_chunks(image.file.name), size=image.bytes,
                   arcname=f"{output.format}-{image.width}x{image.height}.{extension}")
    response = StreamingHttpResponse(_async_chunks(iter(stream)), content_type="application/zip")
    response["Content-Length"] = str(len(stream))
    name = f"brenia-{run.template.slug}-{str(run.pk)[:8]}.zip"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _file_chunks(name: str) -> Iterator[bytes]:
    with default_storage.open(name, "rb") as handle:
        while chunk := handle.read(ZIP_CHUNK):
            yield chunk


async def _async_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Pull the zip a chunk at a time in a worker thread (storage reads block).

    Under ASGI Django would otherwise read a synchronous iterator to the end before
    sending the first byte.
    """
    def pull() -> bytes | None:
        return next(chunks, None)

    while (chunk := await sync_to_async(pull, thread_sensitive=False)()) is not None:
        yield chunk


def _live_context(run: TemplateRun) -> dict[str, Any]:
    state = run_state(run)
    activity = selectors.run_step_activity(run)
    steps = [{**step, **activity.get(step["job"] or "", {})} for step in state["steps"]]
    finished = sum(1 for s in steps if s["status"] in ("completed", "skipped"))
    return {
        "run": run, "state": state, "steps": steps,
        "progress": round(100 * finished / len(steps)) if steps else 0,
        "active": run.status in (RunStatus.QUEUED, RunStatus.RUNNING),
        "failed_steps": any(s["status"] == "failed" for s in steps),
        "step_jobs": [s["job"] for s in steps if s["job"]],
    }
