"""The generation API: thin handlers that parse, call one service or selector, answer."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpRequest, HttpResponseRedirect
from django.http.response import HttpResponseBase
from ninja import Field, Header, Query, Router, Schema, Status
from pydantic import AfterValidator, BeforeValidator, StrictBool, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

from brenia.accounts.services import team_for_submission
from brenia.errors import NotFound
from brenia.schemas import ErrorOut, auth_user, request_client, team_in, team_out
from generation.jobs import selectors, services
from generation.jobs.events import await_job_end
from generation.jobs.presenters import RatingState, job_links, job_state
from generation.models import (
    RATING_COMMENT_MAX,
    RATING_MAX,
    RATING_MIN,
    TERMINAL_STATUSES,
    AIModel,
    ImageRating,
    Job,
    JobStatus,
)
from generation.registry import selectors as registry_selectors
from generation.registry.documents import NUL_FREE
from generation.registry.validation import HTTP_URL_REGEX, anchored

router = Router(tags=["generation"])
SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

# Besides its own statuses, every operation may answer 401 (no or a bad key) and 500
# (logged; the body says nothing more); every POST 403 (a browser session without
# its CSRF token) and 413 (a body over DATA_UPLOAD_MAX_MEMORY_SIZE); a JSON body
# 400 (not JSON at all) and 422 (a field is wrong). All in the one ErrorOut shape.


def _check_webhook_url(value: str) -> str:
    if value and re.fullmatch(HTTP_URL_REGEX, value) is None:
        raise PydanticCustomError("url_syntax", "must be an http or https URL")
    return value


# Checked here, before the service resolves the host: what cannot be a URL is a 422
# naming the field, never a crash in the resolver.
WebhookUrl = Annotated[
    str,
    StringConstraints(max_length=2000),
    AfterValidator(_check_webhook_url),
    WithJsonSchema({"anyOf": [
        {"type": "string", "maxLength": 2000, "pattern": anchored(HTTP_URL_REGEX)},
        {"type": "string", "maxLength": 0, "description": "No webhook"},
    ]}),
]

# RFC 3339 only: pydantic alone would also read "0.5" as seconds since 1970. An
# offset-less time is still accepted and read as UTC, as it always was.
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}"
                      r"(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})?")


def _check_rfc3339(value: Any) -> Any:
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise PydanticCustomError("datetime_format",
                                  "must be an RFC 3339 date-time, like 2026-01-31T09:30:00Z")
    # Python keeps microseconds, RFC 3339 allows any number of digits: drop the rest.
    fraction = match.group(1) or ""
    return value.replace(fraction, fraction[:7], 1).upper() if fraction else value.upper()


Timestamp = Annotated[
    datetime,
    BeforeValidator(_check_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time",
                    "description": "RFC 3339; a time without an offset is read as UTC"}),
]


ImageKind = Literal["text-to-image", "image-to-image", "face-swap", "background-removal"]
KIND_DESCRIPTION = ("Instead of a model: the kind of model wanted; the provider policy "
                    "operators keep for it picks the model (recorded as routed_by)")


class GenerateIn(Schema):
    model_config = {"extra": "forbid"}

    model: str | None = Field(None, min_length=1, max_length=80, pattern=SLUG_PATTERN,
                              description="Registry model slug (or give kind)")
    kind: ImageKind | None = Field(None, description=KIND_DESCRIPTION)
    inputs: dict[str, Any] = Field(..., description="The model's own inputs (see /api/models)")
    options: dict[str, Any] | None = Field(
        None, description="width, height, num_images, seed, output_format")
    metadata: dict[str, Any] | None = Field(None, description="Kept with the job, echoed back")
    webhook_url: WebhookUrl | None = Field(
        None, description="POSTed the finished job, signed with your webhook secret; "
                          "the host must be public")
    team: str | None = team_in("job")
    cache: StrictBool = Field(True, description="Answer a seeded request made before from its "
                                          "result, at no cost; false always runs the model")


class ImageOut(Schema):
    id: str
    url: str
    width: int
    height: int
    format: str
    bytes: int
    sha256: str
    seed: int | None
    cost: str | None = Field(..., description="This image's share of its job's cost (a "
                                               "template output: of its run's)")
    rating: RatingState | None = Field(..., description="Your rating of the image, if any")


class JobError(Schema):
    code: str
    message: str


class JobOut(Schema):
    id: str
    status: str
    model: str
    model_version: str
    queue_position: int | None
    progress: float | None
    error: JobError | None
    currency: str
    estimated_cost: str
    cost: str | None
    cache_hit: bool = Field(..., description="Answered from an identical seeded request's "
                                             "result, at no cost")
    routed_by: Literal["explicit", "policy", "fallback"] = Field(
        ..., description="How the model was chosen: named by the request, by the provider "
                         "policy for the requested kind, or by a fallback from another model")
    images: list[ImageOut]
    text: str = Field("", description="Output of text models (copy)")
    created_at: str
    finished_at: str | None
    last_event_seq: int
    team: str | None = team_out("job")
    links: dict[str, str]


class AcceptedOut(Schema):
    id: str
    status: str
    estimated_cost: str
    currency: str
    links: dict[str, str]


class QuoteOut(Schema):
    model: str
    valid: bool
    estimated_cost: str
    currency: str
    provider_arguments: dict[str, Any]


class JobPage(Schema):
    items: list[JobOut]
    count: int
    limit: int
    offset: int


class ModelOut(Schema):
    slug: str
    display_name: str
    description: str
    kind: str
    provider: str
    version: str
    currency: str
    price_per_image: str
    price_per_megapixel: str
    price_per_million_tokens: str
    supports_lora: bool
    input_schema: dict[str, Any]


def _model_out(model: AIModel) -> dict[str, Any]:
    return {
        "slug": model.slug, "display_name": model.display_name,
        "description": model.description, "kind": model.kind, "provider": model.provider,
        "version": model.version_label, "currency": model.currency,
        "price_per_image": str(model.price_per_image),
        "price_per_megapixel": str(model.price_per_megapixel),
        "price_per_million_tokens": str(model.price_per_million_tokens),
        "supports_lora": model.supports_lora, "input_schema": model.input_schema,
    }


def _job_state_sync(user: Any, job_id: Any) -> dict[str, Any]:
    return job_state(selectors.job_get_for_user(user=user, job_id=job_id))


# What both generate endpoints answer: the finished job (?wait=) or a quote (?dry_run=),
# the accepted job, or the one error shape.
GENERATE_RESPONSES: dict[int, Any] = {
    200: JobOut | QuoteOut, 202: AcceptedOut, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut,
    404: ErrorOut, 409: ErrorOut, 413: ErrorOut, 422: ErrorOut, 429: ErrorOut, 500: ErrorOut}
# 403 also answers a plan's refusal (model_not_in_plan, daily_cap_reached,
# concurrency_limit, budget_exceeded: the body's ``limit`` names it, its value and
# reset); 429 (rate_limited, with Retry-After) more submissions a minute than the
# plan allows one key.


@router.post(
    "/images/generate",
    response=GENERATE_RESPONSES,
    summary="Generate images with a registry model",
)
async def generate_images(
    request: HttpRequest,
    payload: GenerateIn,
    wait: int = Query(0, ge=0, description="Seconds to wait for completion (capped)"),
    dry_run: bool = Query(False, description="Validate and quote; create nothing"),
    idempotency_key: str = Header("", alias="Idempotency-Key", max_length=200),
) -> Any:
    return await _generate(request, model=payload.model or "", kind=payload.kind or "",
                           inputs=payload.inputs,
                           options=payload.options, metadata=payload.metadata,
                           webhook_url=payload.webhook_url, wait=wait,
                           dry_run=dry_run, idempotency_key=idempotency_key, output="image",
                           team=payload.team, cache=payload.cache)


class TextGenerateIn(Schema):
    model_config = {"extra": "forbid"}

    model: str | None = Field(None, min_length=1, max_length=80, pattern=SLUG_PATTERN,
                              description="A text model's slug (or give kind)")
    kind: Literal["text"] | None = Field(None, description=KIND_DESCRIPTION)
    inputs: dict[str, Any] = Field(..., description="prompt, system, response_schema …")
    metadata: dict[str, Any] | None = Field(None, description="Kept with the job, echoed back")
    webhook_url: WebhookUrl | None = Field(
        None, description="POSTed the finished job, signed with your webhook secret; "
                          "the host must be public")
    team: str | None = team_in("job")
    cache: StrictBool = Field(True, description="Answer a seeded request made before from its "
                                          "result, at no cost; false always runs the model")


@router.post(
    "/text/generate",
    response=GENERATE_RESPONSES,
    summary="Write copy with a registry text model",
)
async def generate_text(
    request: HttpRequest,
    payload: TextGenerateIn,
    wait: int = Query(0, ge=0, description="Seconds to wait for completion (capped)"),
    dry_run: bool = Query(False, description="Validate and quote; create nothing"),
    idempotency_key: str = Header("", alias="Idempotency-Key", max_length=200),
) -> Any:
    return await _generate(request, model=payload.model or "", kind=payload.kind or "",
                           inputs=payload.inputs, options=None,
                           metadata=payload.metadata, webhook_url=payload.webhook_url,
                           wait=wait, dry_run=dry_run,
                           idempotency_key=idempotency_key, output="text", team=payload.team,
                           cache=payload.cache)


async def _generate(request: HttpRequest, *, model: str, kind: str, inputs: dict[str, Any],
                    options: dict[str, Any] | None, metadata: dict[str, Any] | None,
                    webhook_url: str | None, wait: int,
                    dry_run: bool, idempotency_key: str, output: str,
                    team: str | None = None, cache: bool = True) -> Any:
    user = auth_user(request)
    if dry_run:
        if kind or not model:
            model, _ = await sync_to_async(services.model_for_request)(
                model_slug=model, kind=kind, output=output)
        # Resolved on a dry run too: a quote never says valid for a team the run would
        # refuse.
        await sync_to_async(team_for_submission)(user=user, team=team)
        prepared = await sync_to_async(services.generation_check)(
            model_slug=model, inputs=inputs, options=options, metadata=metadata,
            webhook_url=webhook_url or "", output=output, user=user)
        return Status(200, {"model": prepared.model.slug, "valid": True,
                     "estimated_cost": str(prepared.estimated_cost),
                     "currency": prepared.model.currency,
                     "provider_arguments": prepared.provider_arguments})

    def submit() -> Job:
        # One trip to the request's sync thread for both: each trip is a thread handoff
        # that waits for the GIL, which a busy server pays for in latency.
        chosen = team_for_submission(user=user, team=team)
        job, _created = services.job_create(
            user=user, model_slug=model, kind=kind, inputs=inputs, options=options,
            metadata=metadata, webhook_url=webhook_url or "", idempotency_key=idempotency_key,
            output=output, client=request_client(request), team=chosen, use_cache=cache)
        return job

    job = await sync_to_async(submit)()
    deadline = min(wait, settings.BRENIA_MAX_WAIT)
    if deadline and job.status in TERMINAL_STATUSES:  # a cache hit: finished already
        return Status(200, await sync_to_async(_job_state_sync)(user, job.pk))
    if deadline:
        state = await _wait_for_terminal(user, job.pk, deadline)
        if state["status"] in TERMINAL_STATUSES:
            return Status(200, state)
    return Status(202, {"id": str(job.id), "status": job.status,
                 "estimated_cost": str(job.estimated_cost), "currency": job.currency,
                 "links": job_links(job)})


async def _wait_for_terminal(user: Any, job_id: Any, seconds: float) -> dict[str, Any]:
    """The job's state once it has ended, or after ``seconds``: woken by its events."""

    async def ended() -> bool:
        state = await sync_to_async(_job_state_sync)(user, job_id)
        return state["status"] in TERMINAL_STATUSES

    await await_job_end(job_id=job_id, seconds=seconds, ended=ended)
    return await sync_to_async(_job_state_sync)(user, job_id)


@router.get("/jobs", response={200: JobPage, 401: ErrorOut, 422: ErrorOut, 500: ErrorOut})
def list_jobs(
    request: HttpRequest,
    status: JobStatus | None = None,
    model: str | None = Query(None, pattern=SLUG_PATTERN),
    created_after: Timestamp | None = None,
    created_before: Timestamp | None = None,
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0, le=1_000_000_000),
) -> Any:
    jobs = selectors.job_list_for_user(user=auth_user(request))
    if status:
        jobs = jobs.filter(status=status)
    if model:
        jobs = jobs.filter(model_slug=model)
    if created_after:
        jobs = jobs.filter(created_at__gte=_utc(created_after))
    if created_before:
        jobs = jobs.filter(created_at__lt=_utc(created_before))
    page = list(jobs[offset:offset + limit])
    return {"items": [job_state(job) for job in page], "count": jobs.count(),
            "limit": limit, "offset": offset}


def _utc(value: datetime) -> datetime:
    """In UTC (databases refuse odd offsets such as -17:35); naive means UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # A valid time whose UTC reading leaves years 1-9999 (9999-12-31T23:59-17:35)
        # lies beyond every job: the nearest instant Python holds filters the same.
        edge = datetime.max if value.year == datetime.max.year else datetime.min
        return edge.replace(tzinfo=UTC)


@router.get("/jobs/{job_id}",
            response={200: JobOut, 401: ErrorOut, 404: ErrorOut, 500: ErrorOut},
            url_name="job_get")
def get_job(request: HttpRequest, job_id: str) -> Any:
    return job_state(selectors.job_get_for_user(user=auth_user(request), job_id=job_id))


@router.post("/jobs/{job_id}/cancel",
             response={200: JobOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut,
                       409: ErrorOut, 413: ErrorOut, 500: ErrorOut},
             url_name="job_cancel")
def cancel_job(request: HttpRequest, job_id: str) -> Any:
    return job_state(services.job_cancel(user=auth_user(request), job_id=job_id))


IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif",
               "application/octet-stream")


@router.get(
    "/images/{image_id}/content",
    response={200: None, 302: None, 401: ErrorOut, 404: ErrorOut, 500: ErrorOut},
    url_name="image_content", summary="Download an image (owner only)",
    openapi_extra={"responses": {
        200: {"description": "The image file",
              "content": {media: {"schema": {"type": "string", "format": "binary"}}
                          for media in IMAGE_TYPES}},
        302: {"description": "A short-lived signed link to the image (remote storage)",
              "headers": {"Location": {"required": True, "schema": {"type": "string"}}}},
    }},
)
def image_content(request: HttpRequest, image_id: str) -> HttpResponseBase:
    image = selectors.image_get_for_user(user=auth_user(request), image_id=image_id)
    name = image.file.name
    try:
        default_storage.path(name)
    except NotImplementedError:
        # Remote storage: a short-lived signed link to the object.
        return HttpResponseRedirect(default_storage.url(name))
    response = FileResponse(default_storage.open(name, "rb"), content_type=image.content_type)
    response["Content-Length"] = str(image.bytes)
    response["Cache-Control"] = "private, max-age=3600"
    ext = name.rsplit(".", 1)[-1]
    response["Content-Disposition"] = f'inline; filename="{image.job_id}-{image.index}.{ext}"'
    return response


def _check_whole_number(value: Any) -> Any:
    # As JSON Schema reads "integer": 4.0 is 4; true, "4" and 4.5 are not integers
    # (pydantic alone would take the first two).
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or (isinstance(value, float) and not value.is_integer()):
        raise PydanticCustomError("int_type", "must be an integer")
    return value


class RatingIn(Schema):
    model_config = {"extra": "forbid"}

    score: Annotated[int, BeforeValidator(_check_whole_number)] = Field(
        ..., ge=RATING_MIN, le=RATING_MAX, description="1 (worst) to 5 (best)")
    comment: str = Field("", max_length=RATING_COMMENT_MAX, pattern=NUL_FREE)


class RatingOut(Schema):
    image: str
    score: int
    comment: str
    updated_at: str


def _rating_out(rating: ImageRating) -> dict[str, Any]:
    return {"image": str(rating.image_id), "score": rating.score, "comment": rating.comment,
            "updated_at": rating.updated_at.isoformat()}


@router.get("/images/{image_id}/rating", url_name="image_rating",
            response={200: RatingOut, 401: ErrorOut, 404: ErrorOut, 500: ErrorOut},
            summary="Your rating of an image (404 if you have not rated it)")
def get_image_rating(request: HttpRequest, image_id: str) -> Any:
    return _rating_out(selectors.image_rating_get_for_user(user=auth_user(request),
                                                           image_id=image_id))


@router.put("/images/{image_id}/rating", url_name="image_rating",
            response={200: RatingOut, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut,
                      404: ErrorOut, 413: ErrorOut, 422: ErrorOut, 500: ErrorOut},
            summary="Rate an image 1-5, or change your rating of it")
def put_image_rating(request: HttpRequest, image_id: str, payload: RatingIn) -> Any:
    return _rating_out(services.image_rate(user=auth_user(request), image_id=image_id,
                                           score=payload.score, comment=payload.comment))


@router.delete("/images/{image_id}/rating", url_name="image_rating",
               response={204: None, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut,
                         500: ErrorOut},
               summary="Take back your rating of an image")
def delete_image_rating(request: HttpRequest, image_id: str) -> Any:
    services.image_rating_delete(user=auth_user(request), image_id=image_id)
    return Status(204, None)


class WebhookAck(Schema):
    status: str


@router.post("/webhooks/fal", auth=None, response={200: WebhookAck, 401: ErrorOut},
             summary="fal completion webhook (signed by fal)", include_in_schema=False)
async def fal_webhook(request: HttpRequest) -> Any:
    headers = {name.lower(): value for name, value in request.headers.items()}
    outcome = await services.fal_webhook_receive(headers=headers, body=request.body)
    return {"status": outcome}


@router.get("/models", response={200: list[ModelOut], 401: ErrorOut, 500: ErrorOut})
def list_models(request: HttpRequest) -> Any:
    return [_model_out(model) for model in registry_selectors.model_list_enabled()]


@router.get("/models/{slug}",
            response={200: ModelOut, 401: ErrorOut, 404: ErrorOut, 500: ErrorOut})
def get_model(request: HttpRequest, slug: str) -> Any:
    model = registry_selectors.model_get(slug=slug)
    if not model.enabled:
        raise NotFound(f"There is no model {slug!r}.", code="unknown_model")
    return _model_out(model)
