"""generation's pages: the live job page, the model playground, image thumbnails."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render

from brenia.accounts.forms import add_team_field, team_chosen
from brenia.errors import DomainError, NotFound
from generation.jobs import selectors, services
from generation.jobs.presenters import job_state
from generation.jobs.results import thumbnail_sync
from generation.models import ModelKind
from generation.registry import selectors as registry_selectors
from generation.registry.forms import SchemaForm

PLAYGROUND_JOBS = 10


@login_required
def job_page(request: HttpRequest, job_id: str) -> HttpResponse:
    try:
        job = selectors.job_get_for_user(user=request.user, job_id=job_id)
    except NotFound:
        raise Http404("There is no such job.") from None
    return render(request, "generation/job.html", {
        "job": job, "state": job_state(job), "prompt": job.inputs.get("prompt", ""),
    })


@login_required
def playground(request: HttpRequest) -> HttpResponse:
    by_kind: dict[str, list[Any]] = defaultdict(list)
    for model in registry_selectors.model_list_enabled().order_by("display_name"):
        by_kind[ModelKind(model.kind).label].append(model)
    jobs = list(selectors.job_list_for_user(user=request.user)
                .filter(parent__isnull=True, model__isnull=False)[:PLAYGROUND_JOBS])
    return render(request, "generation/playground.html", {
        "groups": sorted(by_kind.items()), "jobs": jobs})


@login_required
def playground_model(request: HttpRequest, slug: str) -> HttpResponse:
    """Any enabled model, its form generated from its input schema; runs go to the job page."""
    model = registry_selectors.model_list_enabled().filter(slug=slug).first()
    if model is None:
        raise Http404("There is no such model.")
    data = request.POST if request.method == "POST" else None
    form = SchemaForm(model.input_schema, data, request.FILES or None)
    if not request.user.has_perm(services.DISABLE_SAFETY_CHECKER):
        _lock_safety_checker(form)
    sharing = TeamForm(data, user=request.user, prefix="job")
    problems: list[Any] = []
    if request.method == "POST" and all([form.is_valid(), sharing.is_valid()]):
        try:
            job, _ = services.job_create(user=request.user, model_slug=model.slug,
                                         inputs=form.inputs(),
                                         team=team_chosen(sharing, request.user))
        except DomainError as exc:
            problems = form.add_problems(exc.errors, prefix="inputs")
            if not exc.errors:
                problems = [exc]
        else:
            return redirect("job_page", job_id=job.id)
    return render(request, "generation/playground_model.html", {
        "model": model, "form": form, "sharing": sharing, "problems": problems,
    }, status=422 if request.method == "POST" else 200)


class TeamForm(forms.Form):
    """Whom the job is shared with: a "Team" choice, for people in a team, else nothing."""

    def __init__(self, data: Any = None, *, user: Any, prefix: str) -> None:
        super().__init__(data, prefix=prefix, label_suffix="")
        add_team_field(self, user)


def _lock_safety_checker(form: SchemaForm) -> None:
    """The safety checker box, ticked and disabled: this user may not turn it off
    (``job_create`` refuses it anyway), so the page does not offer to."""
    box = form.fields.get("enable_safety_checker")
    if box is not None:
        box.disabled, box.initial = True, True
        box.help_text = "Your account cannot turn the safety checker off."


@login_required
def image_thumbnail(request: HttpRequest, image_id: str) -> HttpResponseBase:
    """A small WebP of one of the user's images, for galleries (others' images: 404).

    Synchronous: the lookup, the storage reads and the first-time resize all block, and
    Django runs a sync view in a worker thread, off the server's event loop.
    """
    try:
        image = selectors.image_get_for_user(user=request.user, image_id=image_id)
    except NotFound:
        raise Http404("There is no such image.") from None
    name = thumbnail_sync(image)
    response = FileResponse(default_storage.open(name, "rb"), content_type="image/webp")
    response["Cache-Control"] = "private, max-age=86400"
    return response
