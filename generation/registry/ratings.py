"""Ratings, added up: per model version, per canary arm, per template and its version.

Each rating copies the model slug and version of the image it scores, so a model's
figures need no join and survive registry edits. A template's output images come
from its composition step; their ratings reach the template through the run that
made them (``run_output``, templates_app's reverse accessor, named only as a lookup:
the engine imports no plug-in).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Avg, Count, QuerySet

from generation.models import ImageRating


def _rows(ratings: QuerySet[ImageRating], *keys: str) -> list[dict[str, Any]]:
    rows = (ratings.order_by().values(*keys)
            .annotate(ratings=Count("pk"), mean=Avg("score")).order_by(*keys))
    return [{**row, "mean": Decimal(str(row["mean"])).quantize(Decimal("0.01"))}
            for row in rows]


def ratings_by_model_version(*, model_slug: str | None = None) -> list[dict[str, Any]]:
    """``model_slug``, ``model_version``, ``ratings``, ``mean`` (1-5, two places)."""
    ratings = ImageRating.objects.all()
    if model_slug is not None:
        ratings = ratings.filter(model_slug=model_slug)
    return _rows(ratings, "model_slug", "model_version")


def ratings_by_template(*, template_slug: str | None = None) -> list[dict[str, Any]]:
    """``template``, ``version`` (number), ``ratings``, ``mean`` of templates' outputs."""
    ratings = ImageRating.objects.filter(image__run_output__isnull=False)
    if template_slug is not None:
        ratings = ratings.filter(image__run_output__run__template__slug=template_slug)
    rows = _rows(ratings, "image__run_output__run__template__slug",
                 "image__run_output__run__version__number")
    return [{"template": row.pop("image__run_output__run__template__slug"),
             "version": row.pop("image__run_output__run__version__number"), **row}
            for row in rows]


def ratings_by_arm(*, canary_id: Any) -> list[dict[str, Any]]:
    """``arm`` (control/candidate), ``ratings``, ``mean`` of one canary's images."""
    rows = _rows(ImageRating.objects.filter(image__job__canary_id=canary_id),
                 "image__job__canary_arm")
    return [{"arm": row.pop("image__job__canary_arm"), **row} for row in rows]


def ratings_summary_line(rows: list[dict[str, Any]]) -> str:
    """"4.20 (15)" per row, for an admin column; "—" with no ratings."""
    return "; ".join(f"{row['mean']} ({row['ratings']})" for row in rows) or "—"
