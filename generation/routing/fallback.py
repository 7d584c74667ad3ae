"""Fallback chains: by the class of a failure, whether a job moves on to another model.

A registry model may name a ``fallback`` (which may name its own: a chain). When a job's
model fails with an error that says "this endpoint, now" rather than "this request",
the job runs on the next model of the chain instead of failing:

- falls back: ``quota`` (429, quota or concurrency spent), ``server`` (5xx, a runner
  crash), ``timeout`` (the attempt ran out of time), ``unreachable`` (no connection),
  ``breaker_open`` (the endpoint's breaker refused the call before sending anything);
- never falls back: ``invalid_input`` and ``safety`` (a content-policy refusal, a
  blocked prompt, an NSFW result): another model must not be used to route around a
  refusal, and bad input stays bad; nor ``malformed`` answers or ``internal`` errors,
  which are bugs to look at, not outages.

The fallback gets the job's inputs checked against its own input schema and its own
provider arguments built; a fallback the inputs do not fit is skipped (and says so). The
chain is followed at most ``MAX_CHAIN`` models deep and never visits a model twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from brenia.errors import InvalidInput
from generation.models import AIModel, Job
from generation.providers import get_provider
from generation.providers.base import (
    MalformedResponse,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from generation.registry.validation import check_arguments, check_inputs
from generation.routing.breaker import BreakerOpen

MAX_CHAIN = 4
FALLBACK_KINDS = frozenset({"quota", "server", "timeout", "unreachable", "breaker_open"})

QUOTA_CODES = frozenset({"concurrent_requests_limit", "rate_limited", "rate_limit_exceeded",
                         "resource_exhausted", "too_many_requests", "quota_exceeded",
                         "http_429"})
SAFETY_CODES = frozenset({"content_policy_violation", "nsfw_content", "prompt_blocked",
                          "image_safety", "safety", "blocked", "prohibited_content"})
INVALID_CODES = frozenset({"invalid_input", "invalid_argument", "http_400", "http_422",
                           "failed_precondition", "url_not_allowed",
                           "reference_image_unavailable"})


def error_kind(exc: BaseException | None) -> str:
    """The routing class of a failed attempt (``timeout`` when it ran out of time)."""
    if exc is None or isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, BreakerOpen):
        return "breaker_open"
    if isinstance(exc, MalformedResponse):
        return "malformed"
    if not isinstance(exc, ProviderError):
        return "internal"
    code = (exc.code or "").lower()
    if isinstance(exc, TransientProviderError):
        if code in QUOTA_CODES or "429" in code or "quota" in code:
            return "quota"
        if code == "provider_unreachable":
            return "unreachable"
        if "timeout" in code:
            return "timeout"
        return "server"
    if isinstance(exc, PermanentProviderError) or exc.permanent:
        if code in SAFETY_CODES or "safety" in code or "policy" in code or "nsfw" in code:
            return "safety"
        if code in INVALID_CODES or code.startswith("invalid"):
            return "invalid_input"
        return "permanent"
    return "server"


def falls_back(kind: str) -> bool:
    return kind in FALLBACK_KINDS


@dataclass
class FallbackChoice:
    """The model a job moves on to, its arguments, and the fallbacks skipped on the way."""

    model: AIModel | None
    arguments: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _sent_inputs(job: Job, original: AIModel) -> dict[str, Any]:
    """The job's inputs without the values the original model's schema filled in as
    defaults: those were never the user's, and another model may not accept them."""
    props = (original.input_schema or {}).get("properties") or {}
    return {key: value for key, value in (job.inputs or {}).items()
            if not (isinstance(props.get(key), dict) and "default" in props[key]
                    and props[key]["default"] == value)}


def fallback_arguments(*, model: AIModel, inputs: dict[str, Any],
                       options: dict[str, Any]) -> dict[str, Any]:
    """The provider arguments ``model`` gets for these inputs; InvalidInput if they do
    not fit its schema."""
    checked = check_inputs(schema=model.input_schema, inputs=inputs, options=options)
    arguments = get_provider(model).build_arguments(model=model, inputs=checked,
                                                    options=dict(options))
    problems = check_arguments(arguments=arguments, options=options)
    if problems:
        raise InvalidInput("The request has invalid fields.", errors=problems)
    return arguments


def fallback_choose(*, job: Job, tried: set[int]) -> FallbackChoice:
    """The next model of the chain of ``job``'s current model that is enabled, not yet
    tried and fits the job's inputs (sync: reads the registry)."""
    original = job.called_model
    inputs = _sent_inputs(job, original)
    skipped: list[str] = []
    current: AIModel | None = original
    for _ in range(MAX_CHAIN):
        current = (AIModel.objects.filter(pk=current.fallback_id).first()
                   if current is not None and current.fallback_id else None)
        if current is None or current.pk in tried:
            break
        if not current.enabled:
            skipped.append(f"{current.slug} is disabled")
            continue
        try:
            arguments = fallback_arguments(model=current, inputs=inputs,
                                           options=dict(job.options or {}))
        except (InvalidInput, PermanentProviderError) as exc:
            fields = ", ".join(p.field for p in getattr(exc, "errors", [])) or str(exc)
            skipped.append(f"{current.slug} does not accept the inputs ({fields})")
            continue
        return FallbackChoice(model=current, arguments=arguments, skipped=skipped)
    return FallbackChoice(model=None, skipped=skipped)
