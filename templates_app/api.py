"""The business-template API: templates, runs of them, and brand kits. Thin handlers."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal, get_args

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Field, Header, Query, Router, Schema, Status
from pydantic import StringConstraints

from brenia.accounts.auth import admin_auth
from brenia.accounts.services import team_for_submission
from brenia.errors import FieldProblem, InvalidInput, NotFound
from brenia.schemas import ErrorOut, auth_user, request_client, team_in, team_out
from generation.jobs.presenters import RatingState
from generation.registry.documents import NUL_FREE
from generation.registry.selectors import model_get
from templates_app import brands, runs, selectors, services
from templates_app.compose import FONTS
from templates_app.presenters import brand_kit_state, run_state, template_detail, template_state

# by_alias: a run shows its "copy" (a name pydantic keeps for a method of its own).
router = Router(tags=["templates"], by_alias=True)
SLUG = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"


class FormatOut(Schema):
    slug: str
    label: str
    width: int
    height: int
    channel: str
    family: str


class TemplateOut(Schema):
    slug: str
    kind: str
    name: str
    description: str
    version: int
    preview_url: str | None
    formats: list[FormatOut]
    links: dict[str, str]


class PriceRule(Schema):
    role: str
    model: str
    currency: str
    price_per_image: str
    price_per_megapixel: str
    price_per_million_tokens: str
    per: str = Field(..., description="run, or aspect_family: paid once per aspect family")


class TemplateDetailOut(TemplateOut):
    variables: dict[str, Any] = Field(..., description="The form, as a JSON Schema")
    style: str
    output_format: str
    models: dict[str, Any]
    price_rules: list[PriceRule]


class RunIn(Schema):
    model_config = {"extra": "forbid"}

    variables: dict[str, Any] = Field(..., description="The template's form (see variables)")
    brand_kit: int | None = Field(None, description="One of your brand kits")
    formats: list[str] | None = Field(None, max_length=40,
                                      description="Format slugs; all the template's if absent")
    output_format: str | None = Field(None, pattern="^(png|jpeg|webp)$")
    team: str | None = team_in("run")


class StepQuote(Schema):
    key: str
    label: str
    model: str
    estimated_cost: str


class RunQuoteOut(Schema):
    template: str
    version: int
    valid: bool
    formats: list[str]
    estimated_cost: str
    currency: str
    steps: list[StepQuote]


class StepOut(Schema):
    key: str
    label: str
    role: str
    status: str
    model: str
    job: str | None
    attempts: int
    reasks: int
    progress: float | None
    queue_position: int | None
    cost: str | None
    error: dict[str, str] | None


class RunImageOut(Schema):
    id: str
    url: str
    width: int
    height: int
    format: str
    bytes: int
    sha256: str
    rating: RatingState | None = Field(..., description="Your rating of the image, if any")


class RunOutputOut(FormatOut):
    image: RunImageOut


class RunOut(Schema):
    id: str
    status: str
    template: dict[str, Any]
    brand_kit: int | None
    variables: dict[str, Any]
    formats: list[str]
    output_format: str
    steps: list[StepOut]
    outputs: list[RunOutputOut] = Field(..., description="One per finished format")
    copy_: dict[str, str] | None = Field(None, alias="copy")
    currency: str
    estimated_cost: str
    cost: str
    error: dict[str, str] | None
    job: str = Field(..., description="The run's stream: /ws/jobs/?job=<job>")
    last_event_seq: int
    team: str | None = team_out("run")
    created_at: str
    finished_at: str | None
    links: dict[str, str]


class RunPage(Schema):
    items: list[RunOut]
    count: int
    limit: int
    offset: int


Colour = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]
# No database stores NUL: refused (422) in every text, and the document says so.
BannedWord = Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=NUL_FREE)]
FontKey = Literal["inter", "league-spartan", "bebas-neue", "lato", "open-sans"]
# The API's font names are the engine's, checked at import.
assert set(get_args(FontKey)) == set(FONTS), "FontKey must list exactly the bundled fonts"
LOGO_PATTERN = r"^data:image/(png|jpeg|webp|gif);base64,[A-Za-z0-9+/]+={0,2}$"


class BrandKitIn(Schema):
    model_config = {"extra": "forbid"}

    name: str = Field(..., min_length=1, max_length=120,
                      pattern=r"^[^\x00]*[^\x00\s][^\x00]*$")
    palette: list[Colour] = Field(default_factory=list, max_length=8,
                                  description="Hex colours: primary, secondary, others")
    heading_font: FontKey = "inter"
    body_font: FontKey = "inter"
    tone: str = Field("", max_length=2000, pattern=NUL_FREE)
    banned_words: list[BannedWord] = Field(default_factory=list, max_length=200)
    logo: str | None = Field(None, max_length=8_000_000, pattern=LOGO_PATTERN,
                             description="A base64 data URI of a PNG, JPEG, WebP or GIF")
    team: str | None = team_in("kit")


class BrandKitOut(Schema):
    id: int
    name: str
    palette: list[str]
    heading_font: str
    body_font: str
    tone: str
    banned_words: list[str]
    logo_url: str | None
    team: str | None = team_out("kit")


RUN_RESPONSES: dict[int, Any] = {
    200: RunQuoteOut, 202: RunOut, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut,
    404: ErrorOut, 409: ErrorOut, 413: ErrorOut, 422: ErrorOut, 429: ErrorOut, 500: ErrorOut}
# 403 also answers a plan's refusal of the run, 429 more runs a minute than the plan
# allows one key (see generation's GENERATE_RESPONSES).


def _price_rules(version: Any) -> dict[str, Any]:
    rules = {}
    for role, entry in (version.spec.get("models") or {}).items():
        if not entry:
            continue
        try:
            model = model_get(slug=entry["slug"])
        except NotFound:
            continue
        rules[role] = {"model": model.slug, "currency": model.currency,
                       "price_per_image": str(model.price_per_image),
                       "price_per_megapixel": str(model.price_per_megapixel),
                       "price_per_million_tokens": str(model.price_per_million_tokens),
                       "per": "aspect_family" if role in ("background", "person", "scene")
                       else "run"}
    return rules


@router.get("/templates", response={200: list[TemplateOut], 401: ErrorOut, 500: ErrorOut})
def list_templates(request: HttpRequest) -> Any:
    auth_user(request)
    return [template_state(t, selectors.ad_template_version_latest(template=t))
            for t in selectors.ad_template_list_enabled()]


@router.get("/templates/{slug}", url_name="template_get",
            response={200: TemplateDetailOut, 401: ErrorOut, 404: ErrorOut, 500: ErrorOut})
def get_template(request: HttpRequest, slug: str) -> Any:
    auth_user(request)
    template = selectors.ad_template_get_enabled(slug=slug)
    version = selectors.ad_template_version_latest(template=template)
    return template_detail(template, version, _price_rules(version))


def _start(user: Any, slug: str, payload: RunIn, dry_run: bool, key: str,
           client: str) -> Any:
    team = team_for_submission(user=user, team=payload.team)
    arguments = {"user": user, "slug": slug, "variables": payload.variables,
                 "brand_kit": payload.brand_kit, "formats": payload.formats,
                 "output_format": payload.output_format or ""}
    if dry_run:
        plan = services.template_run_check(**arguments)
        return Status(200, {
            "template": plan.template.slug, "version": plan.version.number, "valid": True,
            "formats": plan.formats, "estimated_cost": str(plan.estimated_cost),
            "currency": plan.currency,
            "steps": [{"key": step.key, "label": step.label,
                       "model": step.model_slug or "brenia/compose",
                       "estimated_cost": str(plan.step_costs.get(step.key, "0"))}
                      for step in plan.steps]})
    run, _created = services.template_run_start(**arguments, idempotency_key=key,
                                                 client=client, team=team)
    return Status(202, run_state(run))


@router.post("/templates/{slug}/runs", response=RUN_RESPONSES, url_name="template_run_start",
             summary="Run a template: every format, composed and checked")
async def start_run(
    request: HttpRequest, slug: str, payload: RunIn,
    dry_run: bool = Query(False, description="Validate and quote; create nothing"),
    idempotency_key: str = Header("", alias="Idempotency-Key", max_length=200),
) -> Any:
    user = auth_user(request)
    return await sync_to_async(_start)(user, slug, payload, dry_run, idempotency_key,
                                       request_client(request))


@router.get("/runs", response={200: RunPage, 401: ErrorOut, 422: ErrorOut, 500: ErrorOut})
def list_runs(request: HttpRequest, limit: int = Query(20, ge=1, le=100),
              offset: int = Query(0, ge=0, le=1_000_000_000)) -> Any:
    runs = selectors.run_list_for_user(user=auth_user(request))
    return {"items": [run_state(run) for run in runs[offset:offset + limit]],
            "count": runs.count(), "limit": limit, "offset": offset}


@router.get("/runs/{run_id}", url_name="run_get",
            response={200: RunOut, 401: ErrorOut, 404: ErrorOut, 500: ErrorOut})
def get_run(request: HttpRequest, run_id: str) -> Any:
    return run_state(selectors.run_get_for_user(user=auth_user(request), run_id=run_id))


@router.post("/runs/{run_id}/retry", url_name="run_retry",
             response={200: RunOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut,
                       409: ErrorOut, 413: ErrorOut, 500: ErrorOut},
             summary="Run a failed run's failed steps again")
def retry_run(request: HttpRequest, run_id: str) -> Any:
    return run_state(runs.template_run_retry(user=auth_user(request), run_id=run_id))


def _logo_bytes(logo: str | None) -> bytes | None:
    if not logo:
        return None
    header, _, data = logo.partition(",")
    if not header.startswith("data:") or ";base64" not in header:
        raise InvalidInput("The brand kit has invalid fields.", errors=[FieldProblem(
            "logo", "must be a base64 data URI, like data:image/png;base64,…")])
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("The brand kit has invalid fields.", errors=[FieldProblem(
            "logo", "is not valid base64")]) from None


@router.get("/brand-kits", response={200: list[BrandKitOut], 401: ErrorOut, 500: ErrorOut})
def list_brand_kits(request: HttpRequest) -> Any:
    return [brand_kit_state(kit)
            for kit in selectors.brand_kit_list_for_user(user=auth_user(request))]


@router.post("/brand-kits", auth=admin_auth,  # brand kit writes are account management
             response={201: BrandKitOut, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut,
                       413: ErrorOut, 422: ErrorOut, 500: ErrorOut})
def create_brand_kit(request: HttpRequest, payload: BrandKitIn) -> Any:
    user = auth_user(request)
    kit = brands.brand_kit_save(
        owner=user, name=payload.name, palette=payload.palette,
        heading_font=payload.heading_font, body_font=payload.body_font, tone=payload.tone,
        banned_words=payload.banned_words, logo=_logo_bytes(payload.logo),
        team=team_for_submission(user=user, team=payload.team))
    return Status(201, brand_kit_state(kit))


@router.get("/brand-kits/{kit_id}",
            response={200: BrandKitOut, 401: ErrorOut, 404: ErrorOut, 500: ErrorOut})
def get_brand_kit(request: HttpRequest, kit_id: str) -> Any:
    return brand_kit_state(selectors.brand_kit_get_for_user(user=auth_user(request),
                                                             kit_id=kit_id))
