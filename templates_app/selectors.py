"""Reads on templates, brand kits and runs; other people's rows are not found."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet, Sum

from brenia.accounts.models import Membership, TeamRole
from brenia.accounts.selectors import visible_to
from brenia.errors import NotFound
from generation.models import Job, JobEvent, JobStatus
from templates_app import copywriting
from templates_app.models import (
    AdTemplate,
    AdTemplateVersion,
    BrandKit,
    RunStatus,
    RunStep,
    StepKind,
    StepStatus,
    TemplateRun,
)


def ad_template_list_enabled() -> QuerySet[AdTemplate]:
    return AdTemplate.objects.filter(enabled=True, versions__isnull=False).distinct()


def ad_template_get_enabled(*, slug: str) -> AdTemplate:
    template = ad_template_list_enabled().filter(slug=slug).first()
    if template is None:
        raise NotFound("There is no such template.", code="template_not_found")
    return template


def ad_template_version_latest(*, template: AdTemplate) -> AdTemplateVersion:
    version = template.versions.order_by("-number").first()
    if version is None:
        raise NotFound("There is no such template.", code="template_not_found")
    return version


def brand_kit_list_for_user(*, user: Any) -> QuerySet[BrandKit]:
    return BrandKit.objects.filter(visible_to(user, owner="owner")).select_related("team")


def brand_kit_editable_ids(*, user: Any) -> QuerySet[BrandKit, Any]:
    """The kits ``user`` may change or delete: their own, and those of the teams they
    own. A team's other members may use its kits in runs, not change them."""
    owned_teams = Membership.objects.filter(user=user, role=TeamRole.OWNER).values("team_id")
    return BrandKit.objects.filter(Q(owner=user) | Q(team__in=owned_teams)).values("pk")


def brand_kit_get_editable_for_user(*, user: Any, kit_id: Any) -> BrandKit:
    """A kit ``user`` may edit or delete; any other is not found, even one they may use."""
    kit = brand_kit_get_for_user(user=user, kit_id=kit_id)
    if not brand_kit_editable_ids(user=user).filter(pk=kit.pk).exists():
        raise NotFound("There is no such brand kit.", code="brand_kit_not_found")
    return kit


def brand_kit_get_for_user(*, user: Any, kit_id: Any) -> BrandKit:
    try:
        pk = int(kit_id)
    except (TypeError, ValueError):
        pk = None
    kit = brand_kit_list_for_user(user=user).filter(pk=pk).first() if pk else None
    if kit is None:
        raise NotFound("There is no such brand kit.", code="brand_kit_not_found")
    return kit


def run_list_for_user(*, user: Any) -> QuerySet[TemplateRun]:
    return (TemplateRun.objects.filter(visible_to(user))
            .select_related("template", "version", "job", "team"))


def run_get_for_user(*, user: Any, run_id: Any) -> TemplateRun:
    try:
        pk = run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(str(run_id))
    except (TypeError, ValueError, AttributeError):
        pk = None
    run = run_list_for_user(user=user).filter(pk=pk).first() if pk else None
    if run is None:
        raise NotFound("There is no such run.", code="run_not_found")
    return run


def run_cost(run: TemplateRun) -> Decimal:
    """What every job of the run has cost so far (failed attempts included)."""
    return run_costs(job_ids={run.job_id}).get(run.job_id, Decimal("0.000000"))


def run_costs(*, job_ids: set[Any]) -> dict[Any, Decimal]:
    """``run_cost`` of many runs in one query, keyed by each run's (parent) job id."""
    rows = (Job.objects.filter(parent_id__in=job_ids).order_by().values("parent_id")
            .annotate(total=Sum("cost")))
    return {row["parent_id"]: Decimal(row["total"] or 0).quantize(Decimal("0.000001"))
            for row in rows}


def run_copy(run: TemplateRun) -> dict[str, str]:
    """The copy the layout sets: the form's, completed by the copy step's."""
    kind = run.version.spec["kind"]
    copy = copywriting.copy_fields(kind, run.variables)
    step = run.steps.filter(role="copy", status=StepStatus.COMPLETED).first()
    if step is not None:
        copy.update(step.output.get("copy", {}))
    return copy


def run_ids_unfinished() -> list[Any]:
    return list(TemplateRun.objects.filter(status__in=(RunStatus.QUEUED, RunStatus.RUNNING))
                .values_list("pk", flat=True))


def compose_step_ids_running() -> list[int]:
    """Composition steps whose job has not ended: what recovery puts back."""
    return list(RunStep.objects.filter(
        kind=StepKind.COMPOSE, status=StepStatus.RUNNING,
        job__status__in=(JobStatus.QUEUED, JobStatus.SUBMITTED, JobStatus.IN_PROGRESS))
        .values_list("pk", flat=True))


LOG_LINES_SHOWN = 200


def run_step_activity(run: TemplateRun) -> dict[str, dict[str, Any]]:
    """What each step's job has said: its log lines and its last queue ETA, by job id."""
    activity: dict[str, dict[str, Any]] = {}
    events = (JobEvent.objects.filter(job__parent=run.job, type__in=("queued", "in_progress"))
              .order_by("job_id", "seq").values_list("job_id", "type", "payload"))
    for job_id, kind, payload in events:
        entry = activity.setdefault(str(job_id), {"logs": [], "eta_seconds": None})
        if kind == "queued":
            entry["eta_seconds"] = payload.get("eta_seconds")
        entry["logs"] += [str(line) for line in payload.get("logs") or []]
    for entry in activity.values():
        entry["logs"] = entry["logs"][-LOG_LINES_SHOWN:]
    return activity
