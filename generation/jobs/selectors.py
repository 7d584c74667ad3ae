"""Reads. A permission-checked fetch raises NotFound for other people's rows."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from brenia.accounts.selectors import visible_to
from brenia.errors import NotFound
from generation.models import Image, ImageRating, Job, JobEvent

# Where ``image_rating_prefetch`` puts the viewer's rating (a list of zero or one)
# on each image; ``presenters.image_state`` reads it from there.
VIEWER_RATINGS = "viewer_ratings"


def _parse_uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def image_rating_prefetch(*, user: Any, through: str = "") -> Prefetch:
    """Prefetch ``user``'s rating of each image, one query for a whole list.

    ``through`` is the lookup from the listed rows to their images, ending in ``__``
    (``"images__"`` from jobs, ``"outputs__image__"`` from template runs; empty for
    images themselves).
    """
    return Prefetch(f"{through}ratings", queryset=ImageRating.objects.filter(user=user),
                    to_attr=VIEWER_RATINGS)


def job_list_for_user(*, user: Any) -> QuerySet[Job]:
    return (Job.objects.filter(visible_to(user)).select_related("model", "team")
            .prefetch_related("images", image_rating_prefetch(user=user, through="images__")))


def job_get_for_user(*, user: Any, job_id: Any) -> Job:
    pk = _parse_uuid(job_id)
    job = job_list_for_user(user=user).filter(pk=pk).first() if pk else None
    if job is None:
        raise NotFound("There is no such job.", code="job_not_found")
    return job


def image_get_for_user(*, user: Any, image_id: Any) -> Image:
    pk = _parse_uuid(image_id)
    image = (Image.objects.filter(visible_to(user, owner="job__user", team="job__team"), pk=pk)
             .first() if pk else None)
    if image is None:
        raise NotFound("There is no such image.", code="image_not_found")
    return image


def image_list_for_user(*, user: Any) -> QuerySet[Image]:
    """The user's and their teams' finished deliverables, newest first, each with the
    viewer's rating prefetched.

    A deliverable is an image of a job the user asked for directly (a top-level job)
    or a template run's output; a run's intermediate images (backgrounds, cut-outs)
    are not. ``run_output`` is templates_app's reverse accessor, named here only as a
    lookup: the job engine imports no plug-in.
    """
    return (Image.objects.filter(visible_to(user, owner="job__user", team="job__team"))
            .filter(Q(job__parent__isnull=True) | Q(run_output__isnull=False))
            .select_related("job")
            .prefetch_related(image_rating_prefetch(user=user))
            .order_by("-created_at", "-pk"))


def image_rating_get_for_user(*, user: Any, image_id: Any) -> ImageRating:
    """``user``'s rating of one of their images; not found if unrated (or not theirs)."""
    image = image_get_for_user(user=user, image_id=image_id)
    rating = ImageRating.objects.filter(image=image, user=user).first()
    if rating is None:
        raise NotFound("You have not rated this image.")
    return rating


def job_events_after(*, job: Job, after: int) -> QuerySet[JobEvent]:
    return JobEvent.objects.filter(job=job, seq__gt=after).order_by("seq")
