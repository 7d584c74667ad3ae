"""Writes on jobs. API handlers, views, consumers and tasks call these."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from brenia import background
from brenia.errors import Conflict, FieldProblem, InvalidInput, NotPermitted
from brenia.idempotency import replayed, request_fingerprint
from brenia.inputs import clean_text, json_problems
from brenia.logs import request_id_var
from brenia.urlguard import check_public_url, check_webhook_url
from generation.jobs.admission import job_admit
from generation.jobs.events import notify_job_event
from generation.jobs.lifecycle import StoredImage, job_finish
from generation.jobs.results import CheckedImage, store_image_sync
from generation.jobs.selectors import image_get_for_user, job_get_for_user
from generation.jobs.tasks import apply_fal_webhook_task, job_cancel_dispatch, job_run_submit
from generation.models import (
    RATING_COMMENT_MAX,
    RATING_MAX,
    RATING_MIN,
    TERMINAL_STATUSES,
    AIModel,
    Canary,
    CanaryArm,
    IllegalTransition,
    ImageRating,
    Job,
    JobStatus,
    ModelKind,
    RoutedBy,
)
from generation.providers import get_provider
from generation.providers.base import PermanentProviderError
from generation.providers.fal_webhooks import parse_fal_webhook, verify_fal_webhook
from generation.registry.selectors import model_get
from generation.registry.validation import (
    check_arguments,
    check_inputs,
    nul_problems,
    url_fields,
)
from generation.routing.cache import FREE, cache_key, cached_source
from generation.routing.canary import canary_arm, canary_guard, canary_live_for
from generation.routing.policy import policy_model_for_kind

# Who may send a model ``enable_safety_checker: false``; superusers hold every permission.
DISABLE_SAFETY_CHECKER = "generation.disable_safety_checker"

logger = logging.getLogger(__name__)


def _safety_problems(user: Any, inputs: Any) -> list[FieldProblem]:
    """The safety checker stays on unless the user may turn it off. Only a value the
    user sent counts: a model whose schema defaults it off is the admin's choice."""
    if not isinstance(inputs, dict) or inputs.get("enable_safety_checker") is not False:
        return []
    if user is not None and user.has_perm(DISABLE_SAFETY_CHECKER):
        return []
    return [FieldProblem("inputs.enable_safety_checker",
                         "cannot be turned off: your account may not disable the safety "
                         "checker")]


@dataclass(frozen=True)
class PreparedRequest:
    model: AIModel
    inputs: dict[str, Any]
    options: dict[str, Any]
    provider_arguments: dict[str, Any]
    estimated_cost: Decimal


def generation_prepare(*, model_slug: str, inputs: Any, options: Any,
                       output: str = "image") -> PreparedRequest:
    """Validate against the registry row as it stands now and price the request.

    ``output`` is what the caller's endpoint produces ("image" or "text"); a model
    of the other kind is named as the wrong field rather than half-run.
    """
    model = model_get(slug=model_slug)
    if not model.enabled:
        raise Conflict(f"The model {model.slug!r} is disabled.", code="model_disabled")
    is_text = model.kind == ModelKind.TEXT
    if is_text != (output == "text"):
        endpoint = "/api/text/generate" if is_text else "/api/images/generate"
        raise InvalidInput("The model does not fit this endpoint.", errors=[FieldProblem(
            "model", f"is a {'text' if is_text else 'image'} model: use {endpoint}")])
    checked = check_inputs(schema=model.input_schema, inputs=inputs, options=options)
    # Providers fetch these addresses on the user's behalf: never internal ones.
    problems = []
    for field, url in url_fields(model.input_schema, checked):
        try:
            check_public_url(url, field=field, allow_unresolved=True)
        except InvalidInput as exc:
            problems += exc.errors
    if problems:
        raise InvalidInput("The request has invalid fields.", errors=problems)
    options = dict(options or {})
    try:
        provider = get_provider(model)
    except PermanentProviderError:  # a registry row pointing at no allowed provider
        raise Conflict(f"The model {model.slug!r} is unavailable: its provider is not "
                       "configured.", code="provider_unavailable") from None
    arguments = provider.build_arguments(model=model, inputs=checked, options=options)
    problems = check_arguments(arguments=arguments, options=options)
    if problems:
        raise InvalidInput("The request has invalid fields.", errors=problems)
    estimate = provider.estimate(model, arguments).quantize(Decimal("0.000001"))
    return PreparedRequest(model=model, inputs=checked, options=options,
                           provider_arguments=arguments, estimated_cost=estimate)


def model_for_request(*, model_slug: str = "", kind: str = "",
                      output: str = "image") -> tuple[str, str]:
    """The slug a request runs on and how it was chosen (``RoutedBy``).

    A request names a model, or a kind that the provider policy resolves (the model
    operators point it at today); exactly one of the two. ``output`` is the endpoint's.
    """
    if model_slug and kind:
        raise InvalidInput("The request has invalid fields.", errors=[FieldProblem(
            "kind", "name a model or a kind, not both")])
    if not kind:
        if not model_slug:
            raise InvalidInput("The request has invalid fields.", errors=[FieldProblem(
                "model", "is required unless the request names a kind")])
        return model_slug, RoutedBy.EXPLICIT
    if (kind == ModelKind.TEXT) != (output == "text"):
        endpoint = "/api/text/generate" if kind == ModelKind.TEXT else "/api/images/generate"
        raise InvalidInput("The request has invalid fields.", errors=[FieldProblem(
            "kind", f"{kind} is served by {endpoint}")])
    return policy_model_for_kind(kind=kind).slug, RoutedBy.POLICY


def generation_check(*, model_slug: str, inputs: Any, options: Any, metadata: Any = None,
                     webhook_url: str = "", output: str = "image",
                     user: Any = None) -> PreparedRequest:
    """Everything a request must pass before a job is made, every problem at once.

    ``job_create`` and the API's dry run both call it, so a quote never says
    ``valid`` for a body the real request would refuse. ``user`` is who asks: turning
    the safety checker off takes a permission, and without it a request that is
    otherwise valid is a 403 (NotPermitted) naming the field.
    """
    problems = json_problems(metadata, "metadata")
    if problems:  # the walks below recurse: not through deeper JSON than the limit
        raise InvalidInput("The request is beyond Brenia's input limits.", errors=problems,
                           code="input_limits")
    problems = nul_problems(metadata, "metadata")
    if metadata is not None and not isinstance(metadata, dict):
        problems.append(FieldProblem("metadata", "must be an object"))
    if webhook_url:
        # The same guard as every user-supplied address: no internal targets.
        try:
            check_webhook_url(webhook_url)
        except InvalidInput as exc:
            problems += exc.errors
    locked = _safety_problems(user, inputs)
    try:
        prepared = generation_prepare(model_slug=model_slug, inputs=inputs, options=options,
                                      output=output)
    except InvalidInput as exc:  # report the other problems in the same answer
        raise InvalidInput(exc.message, errors=problems + exc.errors + locked,
                           code=exc.code) from None
    if problems:
        raise InvalidInput("The request has invalid fields.", errors=problems + locked)
    if locked:
        raise NotPermitted("Your account may not turn the safety checker off.",
                           errors=locked)
    return prepared


def _canary_choice(*, user: Any, prepared: PreparedRequest, inputs: Any, options: Any,
                   output: str) -> tuple[Canary | None, str, PreparedRequest]:
    """The live canary of the requested model, the user's arm, and the request prepared
    for the model that arm names. A candidate that refuses these inputs (another
    schema, disabled) leaves the user on the control, for this request."""
    canary = canary_live_for(prepared.model)
    if canary is None:
        return None, "", prepared
    arm = canary_arm(canary, user.pk)
    if arm == CanaryArm.CANDIDATE:
        try:
            return canary, arm, generation_prepare(
                model_slug=canary.candidate.slug, inputs=inputs, options=options,
                output=output)
        except InvalidInput as exc:
            logger.warning("canary %s: the candidate %s refused a request (%s); the "
                           "control serves it", canary.pk, canary.candidate.slug, exc.message)
    return canary, CanaryArm.CONTROL, prepared


def job_create(*, user: Any, model_slug: str = "", inputs: Any, options: Any = None,
               metadata: Any = None, idempotency_key: str = "", webhook_url: str = "",
               output: str = "image", parent: Job | None = None,
               client: str = "", team: Any = None,
               use_cache: bool = True, kind: str = "",
               routed_by: str = RoutedBy.EXPLICIT) -> tuple[Job, bool]:
    """Validate, create a queued job and dispatch it after commit.

    Returns ``(job, created)``. With an idempotency key, the same key and body
    return the job made the first time; the same key with another body is a 409.
    The admission hooks (plans, limits, a cost hold) run in the inserting
    transaction; ``client`` names the credential the request came with. ``team``
    (a Team) shares the job with its members; a step shares its parent's. A seeded
    request made before (``generation.routing.cache``) is completed at once from that
    result, at no cost, unless ``use_cache`` is False. A request naming a ``kind``
    instead of a model runs on the model the provider policy names for it now
    (``routed_by = "policy"``); a caller that resolved a policy itself (a template
    step) says so with ``routed_by``.
    """
    # The request as asked: a replay of "any text-to-image model" is that, whatever
    # model the policy names by then.
    fingerprint = request_fingerprint(model=model_slug or f"kind:{kind}", inputs=inputs,
                                      options=options or {},
                                      metadata=[metadata, webhook_url])
    if idempotency_key:
        existing = replayed(Job.objects.filter(user=user), key=idempotency_key,
                            fingerprint=fingerprint)
        if existing is not None:
            return existing, False
    if kind or not model_slug:
        model_slug, routed_by = model_for_request(model_slug=model_slug, kind=kind,
                                                  output=output)
    prepared = generation_check(model_slug=model_slug, inputs=inputs, options=options,
                                metadata=metadata, webhook_url=webhook_url, output=output,
                                user=user)
    canary, arm, prepared = _canary_choice(user=user, prepared=prepared, inputs=inputs,
                                           options=options, output=output)
    key = cache_key(model=prepared.model, arguments=prepared.provider_arguments,
                    output=output)
    try:
        with transaction.atomic():
            source = cached_source(key) if use_cache else None
            job = Job.objects.create(
                user=user,
                model=prepared.model,
                model_slug=prepared.model.slug,
                model_version=prepared.model.version_label,
                inputs=prepared.inputs,
                options=prepared.options,
                metadata=metadata or {},
                webhook_url=webhook_url,
                provider_arguments=prepared.provider_arguments,
                currency=prepared.model.currency,
                estimated_cost=FREE if source is not None else prepared.estimated_cost,
                cache_key=key,
                cached_from=source,
                canary=canary,
                canary_arm=arm,
                routed_by=routed_by,
                idempotency_key=idempotency_key,
                request_fingerprint=fingerprint,
                request_id=request_id_var.get(),
                parent=parent,
                team_id=parent.team_id if parent is not None else getattr(team, "pk", None),
            )
            job_admit(job=job, client=client)
            notify_job_event(job=job, type="queued", payload={"status": job.status,
                                                              "position": None})
            if source is not None and parent is None:
                cache_complete(job=job, source=source)
            elif source is not None:  # a step: its run records it first, then it ends
                transaction.on_commit(lambda: cache_complete_later(job.pk))
            else:
                transaction.on_commit(lambda: job_run_submit(job.pk))
    except IntegrityError:
        # A concurrent request with the same idempotency key won the race.
        existing = replayed(Job.objects.filter(user=user), key=idempotency_key,
                            fingerprint=fingerprint)
        if existing is None:
            raise
        return existing, False
    return job, True


def cache_complete(*, job: Job, source: Job) -> None:
    """Finish the new ``job`` with ``source``'s result (a result-cache hit), at no cost.

    Precondition: inside the transaction that created ``job`` (queued, with
    ``cached_from=source``). The images are the same stored files under new rows:
    deleting either job never takes the other's files, which are removed only when no
    row refers to them.
    """
    images = [StoredImage(name=image.file.name, sha256=image.sha256, width=image.width,
                          height=image.height, format=image.format, bytes=image.bytes,
                          seed=image.seed)
              for image in source.images.order_by("index")]
    job.transition(JobStatus.SUBMITTED, submitted_at=timezone.now())
    job_finish(job=job, status=JobStatus.COMPLETED, cost=FREE,
               output=source.result or {}, images=images)


def cache_complete_later(job_id: Any) -> None:
    """``cache_complete`` in a transaction of its own, once the creating one committed
    (a template step: its run records the job before the job may end)."""
    with transaction.atomic():
        job = Job.objects.select_related("cached_from").filter(
            pk=job_id, status=JobStatus.QUEUED).first()
        if job is None:
            return
        if job.cached_from is not None:
            cache_complete(job=job, source=job.cached_from)
        else:  # the source was deleted meanwhile: make the result after all
            transaction.on_commit(lambda: job_run_submit(job.pk))


def job_cancel(*, user: Any, job_id: Any) -> Job:
    """Cancel a job that has not finished; a finished job is a 409."""
    job = job_get_for_user(user=user, job_id=job_id)
    with transaction.atomic():
        try:
            job_finish(job=job, status=JobStatus.CANCELLED, error_code="cancelled",
                       error_message="Cancelled by the user.")
        except IllegalTransition:
            job.refresh_from_db()
            raise Conflict(f"The job is already {job.status} and cannot be cancelled.",
                           code="job_not_cancellable") from None
        transaction.on_commit(lambda: job_cancel_dispatch(job.pk))
    return job


async def fal_webhook_receive(*, headers: dict[str, str], body: bytes) -> str:
    """Verify one fal completion webhook and hand it to the background runner.

    Answers at once (fal times out slow receivers); the images are fetched by the
    task. Returns what happened: ``accepted``, ``already_final`` or ``unknown_request``.
    """
    await verify_fal_webhook(headers=headers, body=body)
    event = parse_fal_webhook(body)
    status = await Job.objects.filter(provider_request_id=event["request_id"]).values_list(
        "status", flat=True).afirst()
    if status is None:
        return "unknown_request"
    if status in TERMINAL_STATUSES:
        return "already_final"
    await background.asubmit(apply_fal_webhook_task, event=event)
    return "accepted"


# Local jobs: work Brenia does itself (a template run's parent stream, a composition
# step). They have no model and never reach the runner; their owner (templates_app)
# starts and finishes them through these services and ``job_finish``.

def job_local_create(*, user: Any, label: str, version: str = "", parent: Job | None = None,
                     inputs: dict[str, Any] | None = None,
                     metadata: dict[str, Any] | None = None,
                     estimated_cost: Decimal = Decimal(0), team: Any = None) -> Job:
    """A queued job without a model, its ``queued`` event sent on commit. It is
    shared with ``team``, or with its parent's."""
    with transaction.atomic():
        job = Job.objects.create(
            user=user, model=None, model_slug=label, model_version=version, parent=parent,
            team_id=parent.team_id if parent is not None else getattr(team, "pk", None),
            inputs=inputs or {}, metadata=metadata or {}, estimated_cost=estimated_cost,
            request_id=request_id_var.get())
        notify_job_event(job=job, type="queued", payload={"status": job.status,
                                                          "position": None})
    return job


def job_local_start(*, job: Job) -> bool:
    """Move a local job to in progress; False if it had already started or ended."""
    with transaction.atomic():
        try:
            if job.status == JobStatus.QUEUED:
                job.transition(JobStatus.SUBMITTED, submitted_at=timezone.now())
            job.transition(JobStatus.IN_PROGRESS, started_at=job.started_at or timezone.now())
        except IllegalTransition:
            return False
        notify_job_event(job=job, type="in_progress", payload={
            "status": job.status, "progress": job.progress, "logs": []})
    return True


def job_local_progress(*, job: Job, progress: float, logs: list[str] | None = None) -> None:
    """Report progress (0-1) of a running local job; nothing if it has ended."""
    with transaction.atomic():
        try:
            job.transition(JobStatus.IN_PROGRESS, progress=progress)
        except IllegalTransition:
            return
        notify_job_event(job=job, type="in_progress", payload={
            "status": job.status, "progress": progress, "logs": logs or []})


def job_notify(*, job: Job, type: str, payload: dict[str, Any]) -> None:
    """Record an event on ``job``'s stream (e.g. a template run's ``step``), sent on commit."""
    notify_job_event(job=job, type=type, payload=payload)


def image_store(*, data: bytes, width: int, height: int, format: str,
                seed: int | None = None) -> StoredImage:
    """Save an image Brenia made itself, content-addressed; ready for ``job_finish``."""
    checked = CheckedImage(data=data, sha256=hashlib.sha256(data).hexdigest(), width=width,
                           height=height, format=format.upper())
    name = store_image_sync(checked)
    return StoredImage(name=name, sha256=checked.sha256, width=width, height=height,
                       format=checked.format, bytes=len(data), seed=seed)


# Ratings: a user scores each of their images once (1-5); rating again replaces it.

def _rating_problems(score: Any, comment: Any) -> list[FieldProblem]:
    problems = []
    if isinstance(score, bool) or not isinstance(score, int) \
            or not RATING_MIN <= score <= RATING_MAX:
        problems.append(FieldProblem(
            "score", f"must be a whole number from {RATING_MIN} to {RATING_MAX}"))
    if not isinstance(comment, str):
        problems.append(FieldProblem("comment", "must be a string"))
    elif len(comment) > RATING_COMMENT_MAX:
        problems.append(FieldProblem(
            "comment", f"must be at most {RATING_COMMENT_MAX} characters"))
    elif "\x00" in comment:  # no database stores NUL
        problems.append(FieldProblem("comment", "has characters that are not allowed"))
    else:
        try:
            comment.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate, which JSON can carry
            problems.append(FieldProblem("comment", "has characters that are not allowed"))
    return problems


def image_rate(*, user: Any, image_id: Any, score: int, comment: str = "") -> ImageRating:
    """Rate one of ``user``'s images, or change their rating of it (one row per pair).

    Another user's image is not found (404), and nothing is written. The model slug
    and version are copied from the image, for ratings per model version.
    """
    image = image_get_for_user(user=user, image_id=image_id)
    problems = _rating_problems(score, comment)
    if problems:
        raise InvalidInput("The rating has invalid fields.", errors=problems)
    comment = clean_text(comment)
    # update_or_create locks the row; two first ratings racing end as one (the
    # unique constraint makes the loser read the winner's row, then update it).
    rating, _created = ImageRating.objects.update_or_create(
        image=image, user=user,
        defaults={"score": score, "comment": comment, "model_slug": image.model_slug,
                  "model_version": image.model_version})
    canary_id = Job.objects.filter(pk=image.job_id).values_list("canary_id", flat=True).first()
    if canary_id is not None:  # a rating can tip a canary's guard
        transaction.on_commit(partial(canary_guard, canary_id))
    return rating


def image_rating_delete(*, user: Any, image_id: Any) -> None:
    """Take back ``user``'s rating of one of their images; nothing if it was unrated."""
    image = image_get_for_user(user=user, image_id=image_id)
    ImageRating.objects.filter(image=image, user=user).delete()
