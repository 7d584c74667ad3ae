"""Factories for generation rows."""

from __future__ import annotations

from typing import Any

from generation.models import AIModel, Job, JobStatus
from tests.conftest import Persona


def make_job(persona: Persona, *, status: str = JobStatus.QUEUED, slug: str = "flux-schnell",
             **fields: Any) -> Job:
    model = AIModel.objects.get(slug=slug)
    return Job.objects.create(
        user=persona.user, model=model, model_slug=model.slug,
        model_version=model.version_label, status=status,
        inputs={"prompt": "a lemonade stand"}, provider_arguments={"prompt": "a lemonade stand"},
        **fields)


def make_prepared_job(persona: Persona, *, slug: str = "flux-schnell",
                      inputs: dict[str, Any], options: dict[str, Any] | None = None) -> Job:
    """A queued job built as the API builds it, but not dispatched: the test runs it."""
    from generation.jobs.services import generation_prepare

    kind = AIModel.objects.get(slug=slug).kind
    prepared = generation_prepare(model_slug=slug, inputs=inputs, options=options,
                                  output="text" if kind == "text" else "image")
    return Job.objects.create(
        user=persona.user, model=prepared.model, model_slug=prepared.model.slug,
        model_version=prepared.model.version_label, inputs=prepared.inputs,
        options=prepared.options, provider_arguments=prepared.provider_arguments,
        estimated_cost=prepared.estimated_cost, currency=prepared.model.currency)
