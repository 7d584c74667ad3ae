"""Home, the template gallery, a template's form and its live price quote.

The form is generated from the template version's variables (the same JSON Schema the
API publishes) by ``SchemaForm``; run options (brand kit, formats, file type) are a
small form of their own. Both the quote and the run go through the services the API
uses, so the page and the API can never disagree on what is valid or what it costs.
"""

from __future__ import annotations

import base64
import math
import uuid
from collections import defaultdict
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from brenia.accounts.forms import add_team_field, team_chosen
from brenia.errors import FieldProblem, InvalidInput, NotFound
from generation.registry.forms import SchemaForm
from templates_app import selectors, services
from templates_app.compose import FORMATS
from templates_app.models import AdTemplate, AdTemplateVersion, BrandKit, TemplateRun
from templates_app.presenters import format_state
from templates_app.spec import variables_schema

# The price does not depend on the product photo's pixels, so a page can price the form
# before (and without) uploading it: a missing required image is priced as this 1×1 PNG.
# (An optional one left empty stays empty: it would add a step, a face swap, to the price.)
QUOTE_PLACEHOLDER_IMAGE = "data:image/png;base64," + base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360606060000000050001a5f645400000000049454e44ae426082"
)).decode()
OUTPUT_FORMATS = [("png", "PNG (lossless)"), ("jpeg", "JPEG (smallest)"), ("webp", "WebP")]
HOME_RUNS = 8


@login_required
def home(request: HttpRequest) -> HttpResponse:
    runs = list(selectors.run_list_for_user(user=request.user)
                .prefetch_related("outputs__image").order_by("-created_at")[:HOME_RUNS])
    return render(request, "templates_app/home.html", {
        "runs": [_run_tile(run) for run in runs],
        "templates": _template_cards(),
    })


@login_required
def gallery(request: HttpRequest) -> HttpResponse:
    return render(request, "templates_app/gallery.html", {"templates": _template_cards()})


class RunOptionsForm(forms.Form):
    """What a run needs beside the template's own variables."""

    brand_kit = forms.ModelChoiceField(queryset=BrandKit.objects.none(), required=False,
                                       empty_label="No brand kit (house style)")
    formats = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple,
                                        error_messages={"required": "Choose at least one format."})
    output_format = forms.ChoiceField(choices=OUTPUT_FORMATS, label="File type")
    # One run per form shown: a double click or a resubmitted POST replays, never re-runs.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, required=False, max_length=200)

    def __init__(self, *args: Any, user: Any, spec: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kits = selectors.brand_kit_list_for_user(user=user)
        self.fields["brand_kit"].queryset = kits  # type: ignore[attr-defined]
        self.fields["formats"].choices = [  # type: ignore[attr-defined]
            (slug, FORMATS[slug].label) for slug in spec["formats"]]
        self.fields["formats"].initial = list(spec["formats"])
        self.fields["output_format"].initial = spec.get("output_format") or "png"
        self.fields["idempotency_key"].initial = uuid.uuid4().hex
        if len(kits) == 1:
            self.fields["brand_kit"].initial = kits[0].pk
        add_team_field(self, user)

    def add_problems(self, problems: list[FieldProblem]) -> list[FieldProblem]:
        """Attach the service's problems about run options to their fields; the rest back."""
        left = []
        for problem in problems:
            if problem.field in self.fields:
                self.add_error(problem.field, problem.problem)
            else:
                left.append(problem)
        return left

    def format_groups(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """The offered formats by channel, each with whether it is ticked and a thumbnail box."""
        chosen = set(self["formats"].value() or [])
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for slug, _label in self.fields["formats"].choices:  # type: ignore[attr-defined]
            state = format_state(str(slug))
            scale = 44 / max(state["width"], state["height"])
            groups[state["channel"]].append({
                **state, "checked": str(slug) in chosen,
                "box_w": max(2, round(state["width"] * scale)),
                "box_h": max(2, round(state["height"] * scale))})
        return list(groups.items())


@login_required
def template_form(request: HttpRequest, slug: str) -> HttpResponse:
    template, version = _template_or_404(slug)
    spec = version.spec
    data = request.POST if request.method == "POST" else None
    variables = SchemaForm(variables_schema(spec), data, request.FILES or None)
    options = RunOptionsForm(data, user=request.user, spec=spec, prefix="run")
    problems: list[FieldProblem] = []
    # Both forms are checked, so every problem shows at once.
    if request.method == "POST" and all([variables.is_valid(), options.is_valid()]):
        try:
            run = _start(request.user, template, variables, options)
        except InvalidInput as exc:
            problems = options.add_problems(
                variables.add_problems(exc.errors, prefix="variables"))
        else:
            return redirect("run_page", run_id=run.pk)
    return render(request, "templates_app/template_form.html", {
        "template": template, "version": version, "spec": spec, "form": variables,
        "options": options, "problems": problems,
    }, status=422 if request.method == "POST" else 200)


@login_required
@require_POST
def template_quote(request: HttpRequest, slug: str) -> HttpResponse:
    """The price of the form as it stands (the API's dry run), as a fragment for htmx."""
    template, version = _template_or_404(slug)
    spec = version.spec
    schema = variables_schema(spec)
    data = _with_placeholder_images(request.POST, schema)
    variables = SchemaForm(schema, data)
    options = RunOptionsForm(data, user=request.user, spec=spec, prefix="run")
    context: dict[str, Any] = {"template": template}
    if not all([variables.is_valid(), options.is_valid()]):
        context["problems"] = _form_problems(variables) + _form_problems(options)
        return render(request, "templates_app/_quote.html", context)
    try:
        plan = services.template_run_check(user=request.user, slug=template.slug,
                                           **_run_arguments(variables, options))
    except InvalidInput as exc:
        context["problems"] = [(p.field.removeprefix("variables."), p.problem)
                               for p in exc.errors]
    else:
        context["plan"] = plan
        context["lines"] = [{"label": step.label, "model": step.model_slug,
                             "cost": plan.step_costs[step.key]}
                            for step in plan.steps if step.key in plan.step_costs]
    return render(request, "templates_app/_quote.html", context)


# -- helpers ---------------------------------------------------------------------------

def _template_or_404(slug: str) -> tuple[AdTemplate, AdTemplateVersion]:
    try:
        template = selectors.ad_template_get_enabled(slug=slug)
        return template, selectors.ad_template_version_latest(template=template)
    except NotFound:
        raise Http404("There is no such template.") from None


def _run_arguments(variables: SchemaForm, options: RunOptionsForm) -> dict[str, Any]:
    kit = options.cleaned_data.get("brand_kit")
    return {"variables": variables.inputs(), "brand_kit": kit.pk if kit else None,
            "formats": options.cleaned_data["formats"],
            "output_format": options.cleaned_data["output_format"]}


def _start(user: Any, template: AdTemplate, variables: SchemaForm,
           options: RunOptionsForm) -> TemplateRun:
    run, _created = services.template_run_start(
        user=user, slug=template.slug, **_run_arguments(variables, options),
        idempotency_key=options.cleaned_data.get("idempotency_key") or "",
        team=team_chosen(options, user))
    return run


def _with_placeholder_images(data: QueryDict, schema: dict[str, Any]) -> QueryDict:
    data = data.copy()
    for name in schema["required"]:
        prop = schema["properties"][name]
        if prop.get("format") == "image-url" and not data.get(name):
            data[name] = QUOTE_PLACEHOLDER_IMAGE
    return data


def _form_problems(form: forms.Form) -> list[tuple[str, str]]:
    problems = []
    for name, errors in form.errors.items():
        label = str(form.fields[name].label or name) if name in form.fields else ""
        problems += [(label, str(error)) for error in errors]
    return problems


def _template_cards() -> list[dict[str, Any]]:
    cards = []
    for template in selectors.ad_template_list_enabled().order_by("name"):
        version = selectors.ad_template_version_latest(template=template)
        spec = version.spec
        channels = list(dict.fromkeys(FORMATS[slug].channel for slug in spec["formats"]))
        cards.append({
            "slug": template.slug, "name": spec["name"], "description": spec["description"],
            "kind": spec["kind"], "formats": len(spec["formats"]), "channels": channels,
            "preview": (reverse("template_preview", args=[template.slug])
                        if template.preview_image else None),
        })
    return cards


def _run_tile(run: TemplateRun) -> dict[str, Any]:
    outputs = list(run.outputs.all())
    # The format whose shape is closest to the tile's (4:3) shows the run best.
    cover = min((o.image for o in outputs), default=None,
                key=lambda image: abs(math.log(image.width / image.height / (4 / 3))))
    return {"run": run, "name": run.version.spec["name"], "cover": cover,
            "formats": len(run.formats), "done": len(outputs)}
