"""Writes on templates and runs: publishing versions, checking and starting runs, seed.

Driving a started run (its steps, retries, recovery) is ``templates_app.runs``; brand
kits are ``templates_app.brands``.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction

from brenia.errors import FieldProblem, InvalidInput, NotFound
from brenia.idempotency import replayed, request_fingerprint
from brenia.urlguard import check_public_url
from generation.jobs.admission import job_admit
from generation.jobs.services import generation_check, job_local_create
from generation.models import ModelKind, ProviderPolicy
from generation.registry.selectors import model_get
from generation.registry.validation import check_inputs
from templates_app import copywriting
from templates_app.brands import brand_for_layout, brand_snapshot
from templates_app.compose import KIND_FORMATS
from templates_app.models import (
    AdTemplate,
    AdTemplateVersion,
    BrandKit,
    RunStep,
    StepKind,
    TemplateKind,
    TemplateRun,
)
from templates_app.pipelines import PlannedStep, plan_steps
from templates_app.runs import template_run_advance_submit
from templates_app.selectors import (
    ad_template_get_enabled,
    ad_template_version_latest,
    brand_kit_get_for_user,
)
from templates_app.spec import (
    POLICY_KINDS,
    check_variables_definition,
    spec_model,
    template_spec,
    variables_schema,
)

logger = logging.getLogger(__name__)

# The model kind each role needs, checked when a template is published.
ROLE_KINDS: dict[str, tuple[str, ...]] = {
    "copy": (ModelKind.TEXT,),
    "background": (ModelKind.TEXT_TO_IMAGE,),
    "person": (ModelKind.TEXT_TO_IMAGE,),
    "cutout": (ModelKind.BACKGROUND_REMOVAL,),
    "scene": (ModelKind.TEXT_TO_IMAGE, ModelKind.IMAGE_TO_IMAGE),
    "face_swap": (ModelKind.FACE_SWAP,),
}
# The roles each kind of template cannot do without.
REQUIRED_ROLES: dict[str, tuple[str, ...]] = {
    TemplateKind.BILLBOARD: ("background",),
    TemplateKind.DISCOUNT_BANNER: ("background",),
    TemplateKind.PRODUCT_SHOT: ("cutout", "scene"),
}


# -- templates -----------------------------------------------------------------------

def ad_template_check(*, template: AdTemplate) -> list[FieldProblem]:
    problems = [FieldProblem("variables", problem)
                for problem in check_variables_definition(template.variables)]
    offered = KIND_FORMATS.get(template.kind, ())
    if not template.formats:
        problems.append(FieldProblem("formats", "must name at least one format"))
    for slug in template.formats or []:
        if slug not in offered:
            problems.append(FieldProblem("formats", f"{slug!r} is not a format of a "
                                         f"{template.kind}: choose from {', '.join(offered)}"))
    for role in REQUIRED_ROLES.get(template.kind, ()):
        kind = POLICY_KINDS[role]
        if getattr(template, f"{role}_model") is None and \
                not ProviderPolicy.objects.filter(kind=kind).exists():
            problems.append(FieldProblem(f"{role}_model", "is required for this kind (or a "
                                         f"provider policy for {kind})"))
    for role, kinds in ROLE_KINDS.items():
        model = getattr(template, f"{role}_model")
        if model is not None and model.kind not in kinds:
            problems.append(FieldProblem(f"{role}_model", f"must be a {' or '.join(kinds)} "
                                         f"model, not {model.kind}"))
    if template.person_model is not None and not template.person_model.supports_lora:
        problems.append(FieldProblem("person_model", "must be a model that takes a LoRA"))
    return problems


def ad_template_publish(*, template: AdTemplate, user: Any = None) -> AdTemplateVersion:
    """Make the template's current content its latest version (a new one if it changed)."""
    problems = ad_template_check(template=template)
    if problems:
        raise InvalidInput("The template has invalid fields.", errors=problems)
    spec = template_spec(template)
    with transaction.atomic():
        latest = (AdTemplateVersion.objects.select_for_update()
                  .filter(template=template).order_by("-number").first())
        if latest is not None and latest.spec == spec:
            return latest
        return AdTemplateVersion.objects.create(
            template=template, number=(latest.number + 1) if latest else 1, spec=spec,
            created_by=user if getattr(user, "pk", None) else None)


# -- runs: checking and starting -----------------------------------------------------

@dataclass
class RunPlan:
    template: AdTemplate
    version: AdTemplateVersion
    variables: dict[str, Any]
    formats: list[str]
    output_format: str
    brand_kit: BrandKit | None
    seed: int
    steps: list[PlannedStep]
    step_costs: dict[str, Decimal]
    currency: str

    @property
    def estimated_cost(self) -> Decimal:
        return sum(self.step_costs.values(), Decimal(0))


def template_run_check(*, user: Any, slug: str, variables: Any, brand_kit: Any = None,
                       formats: Any = None, output_format: str = "",
                       seed: int | None = None) -> RunPlan:
    """Everything a run must pass before it starts, every problem at once, and its quote.

    The dry run and ``template_run_start`` both call it.
    """
    template = ad_template_get_enabled(slug=slug)
    version = ad_template_version_latest(template=template)
    spec = version.spec
    kind = spec["kind"]
    problems: list[FieldProblem] = []
    schema = variables_schema(spec)
    try:
        checked = check_inputs(schema=schema, inputs=variables, options=None,
                               prefix="variables")
    except InvalidInput as exc:
        problems += exc.errors
        checked = {}
    offered = list(spec["formats"])
    chosen: list[str] = offered
    if formats:
        if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
            problems.append(FieldProblem("formats", "must be a list of format slugs"))
        else:
            chosen = list(dict.fromkeys(formats))
            problems += [FieldProblem("formats", f"{f!r} is not offered by this template: "
                                      f"choose from {', '.join(offered)}")
                         for f in chosen if f not in offered]
    output_format = output_format or spec.get("output_format") or "png"
    if output_format not in ("png", "jpeg", "webp"):
        problems.append(FieldProblem("output_format", "must be png, jpeg or webp"))
    kit = None
    if brand_kit not in (None, ""):
        try:
            kit = brand_kit_get_for_user(user=user, kit_id=brand_kit)
        except NotFound:  # named as the field, like any other bad value
            problems.append(FieldProblem("brand_kit", "is not one of your brand kits"))
    for name, value in checked.items():
        prop = schema["properties"].get(name, {})
        if prop.get("format") in ("uri", "image-url") and isinstance(value, str) \
                and value.lower().startswith(("http://", "https://")):
            try:
                check_public_url(value, field=f"variables.{name}", allow_unresolved=True)
            except InvalidInput as exc:
                problems += exc.errors
    if problems:
        raise InvalidInput("The request has invalid fields.", errors=problems)
    snapshot = brand_snapshot(kit)
    brand = brand_for_layout(snapshot, with_logo=False)
    to_write = copywriting.fields_to_write(kind, checked)
    if kind == TemplateKind.BILLBOARD and not checked.get("headline") and \
            not spec_model(spec, "copy"):
        problems.append(FieldProblem("variables.headline",
                                     "is required: this template has no copy model"))
    given = copywriting.copy_fields(kind, checked)
    for misfit in copywriting.misfits(kind=kind, formats=chosen, brand=brand, copy=given,
                                      banned_words=snapshot.get("banned_words", [])):
        problems.append(FieldProblem(f"variables.{misfit.field}", misfit.message))
    if problems:
        raise InvalidInput("The request has invalid fields.", errors=problems)
    copy_inputs = None
    if to_write and spec_model(spec, "copy"):
        limits = copywriting.budgets(kind=kind, formats=chosen, brand=brand, fields=to_write)
        copy_inputs = copywriting.copy_request(
            kind=kind, variables=checked, brand_tone=snapshot.get("tone", ""),
            banned_words=snapshot.get("banned_words", []), fields=to_write, limits=limits)
    run_seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
    steps = plan_steps(spec=spec, variables=checked, formats=chosen, seed=run_seed,
                       copy_needed=copy_inputs is not None, copy_inputs=copy_inputs)
    costs: dict[str, Decimal] = {}
    currency = "USD"
    for step in steps:
        if step.kind != StepKind.MODEL:
            continue
        prepared = generation_check(
            model_slug=step.model_slug, inputs=step.inputs, options=None,
            output="text" if step.role == "copy" else "image", user=user)
        costs[step.key] = prepared.estimated_cost
        currency = prepared.model.currency
    return RunPlan(template=template, version=version, variables=checked, formats=chosen,
                   output_format=output_format, brand_kit=kit, seed=run_seed, steps=steps,
                   step_costs=costs, currency=currency)


def template_run_start(*, user: Any, slug: str, variables: Any, brand_kit: Any = None,
                       formats: Any = None, output_format: str = "",
                       idempotency_key: str = "", client: str = "",
                       team: Any = None) -> tuple[TemplateRun, bool]:
    """Check, then create the run, its parent job and its steps; advance after commit.

    ``client`` names the credential the request came with (its plan's rate per key);
    ``team`` (a Team) shares the run, its steps and images with its members."""
    fingerprint = request_fingerprint(slug=slug, variables=variables, brand_kit=brand_kit,
                               formats=formats, output_format=output_format)
    if idempotency_key:
        existing = replayed(TemplateRun.objects.filter(user=user), key=idempotency_key,
                            fingerprint=fingerprint)
        if existing is not None:
            return existing, False
    plan = template_run_check(user=user, slug=slug, variables=variables, brand_kit=brand_kit,
                              formats=formats, output_format=output_format)
    try:
        with transaction.atomic():
            parent = job_local_create(
                user=user, label=f"template:{plan.template.slug}",
                version=f"v{plan.version.number}", estimated_cost=plan.estimated_cost,
                inputs={"variables": plan.variables, "formats": plan.formats}, team=team)
            # The run is admitted (limits, a hold of its whole quote) as one job.
            job_admit(job=parent, client=client)
            run = TemplateRun.objects.create(
                user=user, team=team, template=plan.template, version=plan.version,
                brand_kit=plan.brand_kit, brand=brand_snapshot(plan.brand_kit),
                variables=plan.variables, formats=plan.formats,
                output_format=plan.output_format, seed=plan.seed, job=parent,
                currency=plan.currency, estimated_cost=plan.estimated_cost,
                idempotency_key=idempotency_key, request_fingerprint=fingerprint)
            RunStep.objects.bulk_create([
                RunStep(run=run, key=step.key, role=step.role, kind=step.kind,
                        label=step.label, order=index, model_slug=step.model_slug,
                        routed_by=step.routed_by,
                        depends_on=step.depends_on, inputs=step.inputs)
                for index, step in enumerate(plan.steps)])
            transaction.on_commit(lambda: template_run_advance_submit(run.pk))
    except IntegrityError:
        existing = replayed(TemplateRun.objects.filter(user=user), key=idempotency_key,
                            fingerprint=fingerprint)
        if existing is None:
            raise
        return existing, False
    return run, True


# -- seed ----------------------------------------------------------------------------

SEED_FILE = Path(__file__).resolve().parent / "seed" / "templates.json"


def ad_template_seed() -> int:
    """Create the seed templates that do not exist yet (one of each kind); how many."""
    created = 0
    for row in json.loads(SEED_FILE.read_text()):
        if AdTemplate.objects.filter(slug=row["slug"]).exists():
            continue
        models = {f"{role}_model": model_get(slug=slug)
                  for role, slug in row["models"].items()}
        with transaction.atomic():
            template = AdTemplate.objects.create(
                slug=row["slug"], kind=row["kind"], name=row["name"],
                description=row["description"], variables=row["variables"],
                formats=row["formats"], style=row["style"],
                output_format=row["output_format"], **models)
            ad_template_publish(template=template)
        created += 1
    return created
