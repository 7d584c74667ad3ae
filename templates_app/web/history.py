"""The results gallery: every finished image of the user's, searched, filtered and rated.

An image is a deliverable (``image_list_for_user``): a template run's output, shown
with its template and its run's total cost and linking to the run, or the image of a
job the user asked for directly, shown with its model and its job's cost and linking to
the job. A page of 24 takes the same handful of queries as a page of one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import django_filters
from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from generation.jobs.presenters import image_state
from generation.jobs.selectors import image_list_for_user
from generation.models import Image, ImageRating, ModelKind
from generation.registry.selectors import model_list_enabled
from templates_app.models import RunOutput
from templates_app.selectors import ad_template_list_enabled, run_costs

PER_PAGE = 24
# The form variables the search reads (product names and copy), never the whole form:
# image variables hold data URIs, whose base64 would match almost any word.
SEARCHED_VARIABLES = ("product", "product_name", "headline", "offer", "discount")
RATING_CHOICES = [("unrated", "Not rated yet"), ("5", "5 stars")] + [
    (str(n), f"{n} star{'s' if n > 1 else ''} or more") for n in range(4, 0, -1)]


class ImageHistoryFilter(django_filters.FilterSet):
    """The gallery's filters; ``request`` (whose user's ratings) is required."""

    q = django_filters.CharFilter(
        label="Search", method="filter_text", max_length=200,
        help_text="Prompt, template or product name")
    template = django_filters.ChoiceFilter(
        label="Template", field_name="run_output__run__template__slug",
        empty_label="Any template")
    model = django_filters.ChoiceFilter(label="Model", method="filter_model",
                                        empty_label="Any model")
    date_from = django_filters.DateFilter(
        label="From", field_name="created_at", lookup_expr="date__gte",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    date_to = django_filters.DateFilter(
        label="To", field_name="created_at", lookup_expr="date__lte",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    rating = django_filters.ChoiceFilter(label="Your rating", method="filter_rating",
                                         choices=RATING_CHOICES, empty_label="Any rating")

    class Meta:
        model = Image
        fields: list[str] = []

    def __init__(self, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(*args, request=request, **kwargs)
        # Choices read once here: a callable would be read again for every use.
        self.filters["template"].extra["choices"] = [
            (t.slug, t.name) for t in ad_template_list_enabled().order_by("name")]
        self.filters["model"].extra["choices"] = [
            (m.slug, m.display_name or m.slug)
            for m in model_list_enabled().exclude(kind=ModelKind.TEXT).order_by("display_name")]
        self.form.label_suffix = ""  # built here, once the choices are in

    def filter_text(self, queryset: QuerySet[Image], name: str, value: str) -> QuerySet[Image]:
        value = value.strip()
        if not value:
            return queryset
        run = "run_output__run__"
        match = (Q(prompt__icontains=value) | Q(**{f"{run}template__name__icontains": value})
                 | Q(**{f"{run}version__spec__name__icontains": value}))
        for variable in SEARCHED_VARIABLES:
            match |= Q(**{f"{run}variables__{variable}__icontains": value})
        return queryset.filter(match)

    def filter_model(self, queryset: QuerySet[Image], name: str, value: str) -> QuerySet[Image]:
        # A run's output is composed by Brenia ("brenia/compose"); the models that
        # painted it are in its provenance, each as {"model": "<slug>", ...}.
        return queryset.filter(
            Q(model_slug=value)
            | Q(run_output__provenance__models__icontains=json.dumps(value)))

    def filter_rating(self, queryset: QuerySet[Image], name: str, value: str) -> QuerySet[Image]:
        ratings = ImageRating.objects.filter(image=OuterRef("pk"), user=self.request.user)
        if value == "unrated":
            return queryset.filter(~Exists(ratings))
        return queryset.filter(Exists(ratings.filter(score__gte=int(value))))


@dataclass(frozen=True)
class HistoryTile:
    image: dict[str, Any]  # image_state: id, url, rating …
    title: str
    alt: str
    model: str
    created_at: datetime
    # A run's output shows the run's total (every format and step), labelled so.
    cost: str
    link: str  # the run's page, or the job's
    team: str = ""  # the name of the team it is shared with, if any


def _money(value: Decimal | None, currency: str) -> str:
    """0.003000 as "0.003 USD", 1.5 as "1.50 USD": every digit that is not a trailing 0."""
    if value is None:
        return "pending"
    text = format(value.normalize(), "f")
    whole, _, cents = text.partition(".")
    return f"{whole}.{cents.ljust(2, '0')} {currency}"


def _models_of(output: RunOutput) -> str:
    models = output.provenance.get("models") or {}
    painted = [entry.get("model", "") for key, entry in models.items()
               if isinstance(entry, dict) and not key.startswith("copy")]
    return ", ".join(dict.fromkeys(slug for slug in painted if slug)) or "Brenia composition"


def _team_name(image: Image) -> str:
    # A run's steps are filed under the run's team, so the image's job tells either way.
    team = image.job.team
    return team.name if team is not None else ""


def _tiles(images: list[Image]) -> list[HistoryTile]:
    outputs = {image.pk: getattr(image, "run_output", None) for image in images}
    costs = run_costs(job_ids={o.run.job_id for o in outputs.values() if o is not None})
    tiles = []
    for image in images:
        output = outputs[image.pk]
        if output is not None:
            run = output.run
            name = run.version.spec.get("name") or run.template.name
            headline = (output.provenance.get("copy") or {}).get("headline", "")
            tiles.append(HistoryTile(
                image=image_state(image), title=name,
                alt=f"{name}, {output.format} format" + (f": {headline}" if headline else ""),
                model=_models_of(output), created_at=image.created_at,
                cost="Run total " + _money(costs.get(run.job_id, Decimal(0)), run.currency),
                link=reverse("run_page", args=[run.pk]), team=_team_name(image)))
        else:
            job, prompt = image.job, image.prompt
            tiles.append(HistoryTile(
                image=image_state(image), title=prompt or image.model_slug,
                alt=f"Made with {image.model_slug}" + (f": {prompt[:200]}" if prompt else ""),
                model=image.model_slug, created_at=image.created_at,
                cost="Cost " + _money(job.cost, job.currency),
                link=reverse("job_page", args=[job.pk]), team=_team_name(image)))
    return tiles


@login_required
def image_history(request: HttpRequest) -> HttpResponse:
    images = (image_list_for_user(user=request.user)
              .select_related("run_output__run__template", "run_output__run__version",
                              "job__team")
              # Forms and requests may hold photos as data URIs: megabytes no tile shows.
              .defer("run_output__run__variables", "run_output__run__brand", "job__inputs",
                     "job__provider_arguments", "job__result", "job__error_traceback"))
    filters = ImageHistoryFilter(request.GET or None, queryset=images, request=request)
    problems = filters.errors if filters.is_bound else {}
    # Bad values are reported and left out; the valid filters still apply.
    page = Paginator(filters.qs, PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "templates_app/history.html", {
        "filter": filters,
        "problems": [(filters.form[name].label, errors) for name, errors in problems.items()],
        "page": page,
        "tiles": _tiles(list(page.object_list)),
        "filtered": any(value for key, value in request.GET.items() if key != "page"),
    })
