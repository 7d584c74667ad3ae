"""Plain-JSON views of jobs, shared by the API, events and the job page."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from typing_extensions import TypedDict  # pydantic reads only this one on Python 3.11

from generation.jobs.selectors import VIEWER_RATINGS
from generation.models import Image, ImageRating, Job


class RatingState(TypedDict):
    """A rating as an image shows it: the score (1-5) and the comment."""

    score: int
    comment: str


def rating_state(rating: ImageRating | None) -> RatingState | None:
    return None if rating is None else {"score": rating.score, "comment": rating.comment}


def _viewer_rating(image: Image) -> ImageRating | None:
    """The rating of whoever is looking: prefetched by lists, one query per image else.

    Lists prefetch the requesting user's (``selectors.image_rating_prefetch``). Without
    it, the image's owner's: only the owner may see or rate an image, so they are the
    same person.
    """
    prefetched: list[ImageRating] | None = getattr(image, VIEWER_RATINGS, None)
    if prefetched is not None:
        return prefetched[0] if prefetched else None
    return ImageRating.objects.filter(image_id=image.pk, user__jobs=image.job_id).first()


def image_state(image: Image, *, new: bool = False) -> dict[str, Any]:
    """``new``: the image was made just now, so nobody has rated it (no query asks)."""
    return {
        "id": str(image.id),
        "url": reverse("api:image_content", kwargs={"image_id": image.id}),
        "width": image.width,
        "height": image.height,
        "format": image.format.lower(),
        "bytes": image.bytes,
        "sha256": image.sha256,
        "seed": image.seed,
        "cost": None if image.cost is None else str(image.cost),
        "rating": None if new else rating_state(_viewer_rating(image)),
    }


def job_state(job: Job, images: list[Image] | None = None) -> dict[str, Any]:
    """Everything a client needs to draw a job, as plain JSON."""
    if images is None:
        images = list(job.images.all())
    return {
        "id": str(job.id),
        "status": job.status,
        "model": job.model_slug,
        "model_version": job.model_version,
        "queue_position": job.queue_position,
        "progress": job.progress,
        "error": (
            {"code": job.error_code, "message": job.error_message} if job.error_code else None
        ),
        "currency": job.currency,
        "estimated_cost": str(job.estimated_cost),
        "cost": None if job.cost is None else str(job.cost),
        "cache_hit": job.cached_from_id is not None,
        "routed_by": job.routed_by,
        "images": [image_state(image) for image in images],
        "text": job.result.get("text", ""),
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "last_event_seq": job.last_event_seq,
        "team": job.team.slug if job.team_id and job.team else None,
        "links": job_links(job),
    }


def job_links(job: Job) -> dict[str, str]:
    return {
        "self": reverse("api:job_get", kwargs={"job_id": job.id}),
        "cancel": reverse("api:job_cancel", kwargs={"job_id": job.id}),
        "page": reverse("job_page", kwargs={"job_id": job.id}),
        "events": f"/ws/jobs/?job={job.id}",
    }
