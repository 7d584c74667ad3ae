"""Which arm of a canary serves a user, how each arm is doing, and the guard.

A user's arm is a hash of the canary and the user, compared with the share: the same
user always lands in the same arm, and raising the share only moves more users to
the candidate (nobody flips back and forth). A promoted canary sends everybody to the
candidate until an admin stops it.

The guard (``canary_guard``) runs after each canary job ends and after each rating of
a canary image. Once the candidate has ``min_samples`` finished jobs (or ratings), a
failure rate above ``max_failure_rate`` or an average rating below ``min_rating``
rolls the canary back: one conditional UPDATE (only a running canary changes), a
decision row with the figures it saw, and a log line with them.
"""

from __future__ import annotations

import hashlib
import logging
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Avg, Count, F, Q, Sum
from django.utils import timezone

from generation.models import (
    AIModel,
    Canary,
    CanaryArm,
    CanaryDecision,
    CanaryStatus,
    ImageRating,
    Job,
    JobStatus,
)

logger = logging.getLogger(__name__)

LIVE = (CanaryStatus.RUNNING, CanaryStatus.PROMOTED)
FAILED = (JobStatus.FAILED, JobStatus.ERRORED)
ENDED = (JobStatus.COMPLETED, *FAILED)


def canary_live_for(model: AIModel) -> Canary | None:
    return (Canary.objects.select_related("candidate")
            .filter(model=model, status__in=LIVE).first())


def canary_arm(canary: Canary, user_id: Any) -> str:
    """The arm that serves ``user_id``: sticky, and monotonic in the share."""
    if canary.status == CanaryStatus.PROMOTED:
        return CanaryArm.CANDIDATE
    digest = hashlib.sha256(f"canary:{canary.pk}:user:{user_id}".encode()).digest()
    position = Decimal(int.from_bytes(digest[:8], "big")) / Decimal(2 ** 64)
    return CanaryArm.CANDIDATE if position < canary.share else CanaryArm.CONTROL


def canary_figures(canary: Canary) -> dict[str, dict[str, Any]]:
    """Per arm: finished jobs, failures and their rate, mean run seconds, mean cost,
    ratings and their mean. Cancelled jobs say nothing about a model: left out."""
    jobs = (Job.objects.filter(canary=canary, status__in=ENDED).values("canary_arm")
            .annotate(finished=Count("pk"), failed=Count("pk", filter=Q(status__in=FAILED)),
                      run=Avg(F("finished_at") - F("started_at")),
                      cost=Sum("cost", filter=Q(status=JobStatus.COMPLETED)),
                      completed=Count("pk", filter=Q(status=JobStatus.COMPLETED))))
    ratings = (ImageRating.objects.filter(image__job__canary=canary)
               .values("image__job__canary_arm").annotate(n=Count("pk"), mean=Avg("score")))
    figures: dict[str, dict[str, Any]] = {
        arm: {"finished": 0, "failed": 0, "failure_rate": None, "mean_seconds": None,
              "mean_cost": None, "ratings": 0, "mean_rating": None}
        for arm in (CanaryArm.CONTROL, CanaryArm.CANDIDATE)}
    for row in jobs:
        arm = figures.get(row["canary_arm"])
        if arm is None:
            continue
        arm["finished"], arm["failed"] = row["finished"], row["failed"]
        arm["failure_rate"] = round(row["failed"] / row["finished"], 4)
        if row["run"] is not None:
            arm["mean_seconds"] = round(row["run"].total_seconds(), 3)
        if row["completed"]:
            arm["mean_cost"] = str((Decimal(row["cost"] or 0) / row["completed"])
                                   .quantize(Decimal("0.000001")))
    for row in ratings:
        arm = figures.get(row["image__job__canary_arm"])
        if arm is not None:
            arm["ratings"], arm["mean_rating"] = row["n"], round(float(row["mean"]), 3)
    return figures


def _verdict(canary: Canary, candidate: dict[str, Any]) -> str:
    """Why the candidate must go, or "" if it may stay."""
    if candidate["finished"] >= canary.min_samples \
            and candidate["failure_rate"] > float(canary.max_failure_rate):
        return (f"the candidate failed {candidate['failed']} of {candidate['finished']} "
                f"jobs ({candidate['failure_rate']:.0%}), above the "
                f"{float(canary.max_failure_rate):.0%} allowed")
    if canary.min_rating is not None and candidate["ratings"] >= canary.min_samples \
            and candidate["mean_rating"] < float(canary.min_rating):
        return (f"the candidate's images average {candidate['mean_rating']:.2f} over "
                f"{candidate['ratings']} ratings, below the {canary.min_rating} required")
    return ""


def canary_end(canary: Canary, *, status: str, reason: str, by: Any = None) -> bool:
    """End a live canary (rolled back, promoted → stays live for everybody, stopped),
    recording the figures; False if somebody else ended it first."""
    frm = (CanaryStatus.RUNNING,) if status == CanaryStatus.PROMOTED else LIVE
    figures = canary_figures(canary)
    with transaction.atomic():
        ended = Canary.objects.filter(pk=canary.pk, status__in=frm).update(
            status=status, ended_at=None if status == CanaryStatus.PROMOTED
            else timezone.now())
        if not ended:
            return False
        CanaryDecision.objects.create(canary=canary, action=status, reason=reason[:300],
                                      figures=figures, by=by)
    canary.status = status
    logger.warning("canary %s (%s -> %s) %s: %s; figures %s", canary.pk, canary.model.slug,
                   canary.candidate.slug, status, reason, figures)
    return True


def canary_guard(canary_id: Any) -> str:
    """Judge the running canary ``canary_id``; roll it back if its candidate has earned
    it. Returns the reason it was rolled back, or ""."""
    canary = (Canary.objects.select_related("model", "candidate")
              .filter(pk=canary_id, status=CanaryStatus.RUNNING).first())
    if canary is None:
        return ""
    reason = _verdict(canary, canary_figures(canary)[CanaryArm.CANDIDATE])
    if reason and canary_end(canary, status=CanaryStatus.ROLLED_BACK, reason=reason):
        return reason
    return ""
