"""Reads. A permission-checked fetch raises NotFound for other people's rows."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from brenia.errors import NotFound
from generation.models import Image, Job, JobEvent


def _parse_uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def job_list_for_user(*, user: Any) -> QuerySet[Job]:
    return Job.objects.filter(user=user).select_related("model").prefetch_related("images")


def job_get_for_user(*, user: Any, job_id: Any) -> Job:
    pk = _parse_uuid(job_id)
    job = job_list_for_user(user=user).filter(pk=pk).first() if pk else None
    if job is None:
        raise NotFound("There is no such job.", code="job_not_found")
    return job


def image_get_for_user(*, user: Any, image_id: Any) -> Image:
    pk = _parse_uuid(image_id)
    image = Image.objects.filter(pk=pk, job__user=user).first() if pk else None
    if image is None:
        raise NotFound("There is no such image.", code="image_not_found")
    return image


def job_events_after(*, job: Job, after: int) -> QuerySet[JobEvent]:
    return JobEvent.objects.filter(job=job, seq__gt=after).order_by("seq")
