"""Plain-JSON views of templates, brand kits and runs (the API and the pages)."""

from __future__ import annotations

from typing import Any

from django.core.files.storage import default_storage
from django.urls import reverse

from generation.jobs.presenters import image_state
from generation.jobs.selectors import image_rating_prefetch
from templates_app.compose import FORMATS
from templates_app.models import AdTemplate, AdTemplateVersion, BrandKit, TemplateRun
from templates_app.selectors import run_cost
from templates_app.spec import variables_schema


def format_state(slug: str) -> dict[str, Any]:
    fmt = FORMATS[slug]
    return {"slug": fmt.slug, "label": fmt.label, "width": fmt.width, "height": fmt.height,
            "channel": fmt.channel, "family": fmt.family}


def template_state(template: AdTemplate, version: AdTemplateVersion) -> dict[str, Any]:
    spec = version.spec
    return {
        "slug": template.slug, "kind": spec["kind"], "name": spec["name"],
        "description": spec["description"], "version": version.number,
        "preview_url": template.preview_image.url if template.preview_image else None,
        "formats": [format_state(slug) for slug in spec["formats"]],
        "links": {"self": reverse("api:template_get", kwargs={"slug": template.slug}),
                  "runs": reverse("api:template_run_start", kwargs={"slug": template.slug})},
    }


def template_detail(template: AdTemplate, version: AdTemplateVersion,
                    models: dict[str, Any]) -> dict[str, Any]:
    spec = version.spec
    return {
        **template_state(template, version),
        "variables": variables_schema(spec),
        "style": spec.get("style", ""),
        "output_format": spec.get("output_format", "png"),
        "models": {role: entry for role, entry in (spec.get("models") or {}).items() if entry},
        "price_rules": [{"role": role, **price} for role, price in models.items()],
    }


def brand_kit_state(kit: BrandKit) -> dict[str, Any]:
    return {"id": kit.pk, "name": kit.name, "palette": kit.palette,
            "heading_font": kit.heading_font, "body_font": kit.body_font, "tone": kit.tone,
            "banned_words": kit.banned_words,
            "logo_url": default_storage.url(kit.logo.name) if kit.logo else None,
            "team": kit.team.slug if kit.team_id and kit.team else None}


def run_state(run: TemplateRun) -> dict[str, Any]:
    steps = list(run.steps.select_related("job").order_by("order"))
    outputs = {o.format: o for o in run.outputs.select_related("image").prefetch_related(
        image_rating_prefetch(user=run.user_id, through="image__"))}
    cost = run_cost(run)
    return {
        "id": str(run.pk),
        "status": run.status,
        "template": {"slug": run.template.slug, "version": run.version.number,
                     "kind": run.version.spec["kind"], "name": run.version.spec["name"]},
        "brand_kit": run.brand.get("id"),
        "variables": {k: (v if not (isinstance(v, str) and v.startswith("data:")) else
                          f"data URI, {len(v)} characters") for k, v in run.variables.items()},
        "formats": run.formats,
        "output_format": run.output_format,
        "steps": [{
            "key": step.key, "label": step.label, "role": step.role, "status": step.status,
            "model": step.job.model_slug if step.job else step.model_slug or "brenia/compose",
            "job": str(step.job_id) if step.job_id else None,
            "attempts": step.attempts, "reasks": step.reasks,
            "progress": step.job.progress if step.job else None,
            "queue_position": step.job.queue_position if step.job else None,
            "cost": (str(step.job.cost) if step.job and step.job.cost is not None else None),
            "error": ({"code": step.error_code, "message": step.error_message}
                      if step.error_code else None),
        } for step in steps],
        "outputs": [{
            **format_state(slug),
            "image": image_state(outputs[slug].image),
        } for slug in run.formats if slug in outputs],
        "copy": next((step.output.get("copy") for step in steps
                      if step.role == "copy" and step.output.get("copy")), None),
        "currency": run.currency,
        "estimated_cost": str(run.estimated_cost),
        "cost": str(cost),
        "error": ({"code": run.error_code, "message": run.error_message}
                  if run.error_code else None),
        "job": str(run.job_id),
        "last_event_seq": run.job.last_event_seq,
        "team": run.team.slug if run.team_id and run.team else None,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "links": {"self": reverse("api:run_get", kwargs={"run_id": run.pk}),
                  "retry": reverse("api:run_retry", kwargs={"run_id": run.pk}),
                  "events": f"/ws/jobs/?job={run.job_id}"},
    }
