"""Browser pages: a quick generate form and the live job page."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from brenia.errors import DomainError, NotFound
from generation.jobs import selectors, services
from generation.jobs.presenters import job_state
from generation.registry import selectors as registry_selectors


@login_required
def home(request: HttpRequest) -> HttpResponse:
    models = list(registry_selectors.model_list_enabled().filter(kind="text-to-image"))
    if request.method == "POST":
        prompt = request.POST.get("prompt", "").strip()
        slug = request.POST.get("model", "")
        inputs: dict[str, Any] = {"prompt": prompt} if prompt else {}
        try:
            job, _ = services.job_create(user=request.user, model_slug=slug, inputs=inputs)
        except DomainError as exc:
            problems = "; ".join(f"{e.field.removeprefix('inputs.')} {e.problem}"
                                 for e in exc.errors)
            messages.error(request, f"{exc.message} {problems}".strip())
        else:
            return redirect("job_page", job_id=job.id)
    jobs = list(selectors.job_list_for_user(user=request.user)[:12])
    return render(request, "generation/home.html", {"models": models, "jobs": jobs})


@login_required
def job_page(request: HttpRequest, job_id: str) -> HttpResponse:
    try:
        job = selectors.job_get_for_user(user=request.user, job_id=job_id)
    except NotFound:
        raise Http404("There is no such job.") from None
    state = job_state(job)
    return render(request, "generation/job.html", {
        "job": job, "state": state, "prompt": job.inputs.get("prompt", ""),
    })
