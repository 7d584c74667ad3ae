"""Reads on templates, brand kits and runs; other people's rows are not found."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from brenia.errors import NotFound
from templates_app.models import AdTemplate, AdTemplateVersion, BrandKit, TemplateRun


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
    return BrandKit.objects.filter(owner=user)


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
    return (TemplateRun.objects.filter(user=user)
            .select_related("template", "version", "job"))


def run_get_for_user(*, user: Any, run_id: Any) -> TemplateRun:
    try:
        pk = run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(str(run_id))
    except (TypeError, ValueError, AttributeError):
        pk = None
    run = run_list_for_user(user=user).filter(pk=pk).first() if pk else None
    if run is None:
        raise NotFound("There is no such run.", code="run_not_found")
    return run
