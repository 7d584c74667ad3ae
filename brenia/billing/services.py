"""Billing's two hooks into the job engine: admission (limits, a hold) and settlement.

Admission runs in the transaction that inserts a job. It first locks the user's row
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's IMMEDIATE transactions already
serialise writers), so two submissions of one user are checked one after the other
against committed counts: a cap of 10 admits exactly 10, however many race.

Settlement runs in the job's terminal transaction (``job_finish`` succeeds once per
job), and the ledger's unique (job, kind) makes a second settle or release
impossible even if it did not: retries, resumes and duplicate webhooks never bill
twice.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Sum
from django.utils import timezone

from brenia.billing.limits import day_window, month_window, rate_check, seconds_until
from brenia.billing.models import CLOSING_KINDS, Account, LedgerEntry, LedgerKind, Plan
from generation.jobs.admission import (
    Admission,
    LimitReached,
    RateLimited,
    job_admission_hook,
)
from generation.jobs.events import notify_job_event
from generation.jobs.lifecycle import JobFinished, job_finished_hook
from generation.models import ACTIVE_STATUSES, Job, JobStatus
from generation.providers import get_provider
from generation.providers.base import PermanentProviderError

logger = logging.getLogger(__name__)

# Concurrency refusals have no fixed reset: a job ending frees a slot. Try again then.
CONCURRENCY_RETRY_SECONDS = 10


def plan_for_user(user: Any) -> Plan:
    """The user's assigned plan, else the default plan, else an unlimited one.

    The last case (no default row, as in a test database flushed of the seed) keeps
    Brenia working with no limits rather than refusing everything.
    """
    account = Account.objects.select_related("plan").filter(user=user).first()
    if account is not None:
        return account.plan
    return Plan.objects.filter(is_default=True).first() or Plan(name="unlimited")


def high_res_images(job: Job, plan: Plan) -> int:
    """How many of the images ``job`` asks for are high-resolution under ``plan``."""
    if job.model is None:
        return 0
    try:
        sizes = get_provider(job.model).estimate_images(job.provider_arguments)
    except PermanentProviderError:
        return 0
    threshold = plan.high_res_megapixels * 1_000_000
    return sum(1 for width, height in sizes if width * height >= threshold)


def _open_holds(user: Any) -> Any:
    closed = LedgerEntry.objects.filter(job=OuterRef("job"), kind__in=CLOSING_KINDS)
    return LedgerEntry.objects.filter(user=user, kind=LedgerKind.HOLD).exclude(Exists(closed))


def high_res_used(*, user: Any, start: datetime, end: datetime) -> int:
    """High-res images held or made in [start, end): a released hold no longer counts."""
    released = LedgerEntry.objects.filter(job=OuterRef("job"), kind=LedgerKind.RELEASE)
    total = LedgerEntry.objects.filter(
        user=user, kind=LedgerKind.HOLD, created_at__gte=start, created_at__lt=end,
    ).exclude(Exists(released)).aggregate(n=Sum("high_res_images"))["n"]
    return int(total or 0)


def month_committed(*, user: Any, start: datetime, end: datetime) -> Decimal:
    """Settled this month plus open top-level holds: what the budget has used.

    A running template run counts its whole quote (the parent's hold) and, as they
    finish, its steps' settled costs too: cautious by at most one run's quote, until
    the run ends and its hold is released. Steps' own holds are never counted.
    """
    settled = LedgerEntry.objects.filter(
        user=user, kind=LedgerKind.SETTLE, created_at__gte=start, created_at__lt=end,
    ).aggregate(s=Sum("amount"))["s"] or Decimal(0)
    held = _open_holds(user).filter(
        top_level=True, created_at__gte=start, created_at__lt=end,
    ).aggregate(s=Sum("amount"))["s"] or Decimal(0)
    return Decimal(settled) + Decimal(held)


def plan_check(*, job: Job, client: str = "", now: datetime | None = None) -> None:
    """Admit ``job`` under its user's plan and hold its quote, or raise a refusal.

    Precondition: inside the transaction that inserted ``job``. A template step
    (``job.parent`` set) belongs to a run admitted as a whole: it is held and
    settled, but not refused for caps, concurrency or budget mid-run.
    """
    now = now or timezone.now()
    user = job.user
    plan = plan_for_user(user)
    if client and plan.requests_per_minute is not None:
        wait = rate_check(client=client, per_minute=plan.requests_per_minute)
        if wait is not None:
            raise RateLimited(f"More than {plan.requests_per_minute} requests a minute "
                              f"from this key; try again in {wait} s.", retry_after=wait)
    # Serialise this user's admissions: every count below sees the previous one's hold.
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    top_level = job.parent_id is None
    if job.model_id is not None and plan.pk is not None and plan.allowed_models.exists() \
            and not plan.allowed_models.filter(pk=job.model_id).exists():
        raise LimitReached(f"The model {job.model_slug!r} is not in your plan "
                           f"{plan.name!r}.", code="model_not_in_plan",
                           limit="allowed_models", value=plan.name)
    zone = user.zone
    wanted = high_res_images(job, plan)
    cap = plan.daily_high_res_cap
    if top_level and wanted and cap is not None:
        start, end = day_window(zone, now)
        used = high_res_used(user=user, start=start, end=end)
        if used + wanted > cap:
            raise LimitReached(
                f"Your plan allows {cap} high-resolution images a day; {used} are used "
                f"today. It resets at {end.isoformat()}.", code="daily_cap_reached",
                limit="daily_high_res_cap", value=cap, resets_at=end,
                retry_after=seconds_until(end, now))
    limit = plan.concurrent_jobs_per_user
    if top_level and limit is not None:
        running = Job.objects.filter(user=user, parent__isnull=True,
                                     status__in=ACTIVE_STATUSES).exclude(pk=job.pk).count()
        if running >= limit:
            raise LimitReached(
                f"Your plan allows {limit} unfinished jobs at a time; wait for one to end.",
                code="concurrency_limit", limit="concurrent_jobs_per_user", value=limit,
                retry_after=CONCURRENCY_RETRY_SECONDS)
    quote = job.estimated_cost
    hard, soft = plan.monthly_budget_hard, plan.monthly_budget_soft
    if top_level and (hard is not None or soft is not None):
        start, end = month_window(zone, now)
        committed = month_committed(user=user, start=start, end=end)
        if hard is not None and committed + quote > hard:
            raise LimitReached(
                f"This job (quote {quote} USD) would take the month's spending past your "
                f"plan's {hard} USD budget ({committed} USD used). It resets at "
                f"{end.isoformat()}.", code="budget_exceeded", limit="monthly_budget_hard",
                value=hard, resets_at=end)
        if soft is not None and committed <= soft < committed + quote:
            notify_job_event(job=job, type="budget_warning", payload={
                "status": job.status, "limit": "monthly_budget_soft", "value": str(soft),
                "committed": str(committed + quote)})
    LedgerEntry.objects.create(user=user, job=job, kind=LedgerKind.HOLD, amount=quote,
                               currency=job.currency, high_res_images=wanted,
                               top_level=top_level, created_at=now)


@job_admission_hook
def admit(admission: Admission) -> None:
    plan_check(job=admission.job, client=admission.client)


@job_finished_hook
def settle(finished: JobFinished) -> None:
    """Close the job's hold: settle a completed provider job at its actual cost,
    release anything else (failed, errored, cancelled, or a local job, whose money is
    settled on its steps). At most once per kind, by the ledger's constraint."""
    job = finished.job
    hold = LedgerEntry.objects.filter(job=job, kind=LedgerKind.HOLD).first()
    if finished.status == JobStatus.COMPLETED and job.model_id is not None:
        amount = job.cost
        if amount is None:  # the provider reported no units: bill the quote, never 0
            logger.warning("job %s completed without a cost; settling its quote", job.pk)
            amount = job.estimated_cost
        LedgerEntry.objects.get_or_create(job=job, kind=LedgerKind.SETTLE, defaults={
            "user_id": job.user_id, "amount": amount, "currency": job.currency,
            "top_level": job.parent_id is None})
    elif hold is not None:
        LedgerEntry.objects.get_or_create(job=job, kind=LedgerKind.RELEASE, defaults={
            "user_id": job.user_id, "amount": hold.amount, "currency": job.currency,
            "top_level": hold.top_level})
