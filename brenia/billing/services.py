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
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, OuterRef, Sum
from django.utils import timezone

from brenia.accounts.models import Team, TeamRole
from brenia.billing.limits import day_window, month_window, rate_check, seconds_until
from brenia.billing.models import (
    CLOSING_KINDS,
    Account,
    LedgerEntry,
    LedgerKind,
    Plan,
    TeamAccount,
)
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
        sizes = get_provider(job.model).estimate_images(job.provider_arguments, job.model)
    except PermanentProviderError:
        return 0
    threshold = plan.high_res_megapixels * 1_000_000
    return sum(1 for width, height in sizes if width * height >= threshold)


def _open_holds(**owner: Any) -> Any:
    closed = LedgerEntry.objects.filter(job=OuterRef("job"), kind__in=CLOSING_KINDS)
    return LedgerEntry.objects.filter(kind=LedgerKind.HOLD, **owner).exclude(Exists(closed))


def high_res_used(*, user: Any, start: datetime, end: datetime) -> int:
    """High-res images held or made in [start, end): a released hold no longer counts."""
    released = LedgerEntry.objects.filter(job=OuterRef("job"), kind=LedgerKind.RELEASE)
    total = LedgerEntry.objects.filter(
        user=user, kind=LedgerKind.HOLD, created_at__gte=start, created_at__lt=end,
    ).exclude(Exists(released)).aggregate(n=Sum("high_res_images"))["n"]
    return int(total or 0)


def month_committed(*, start: datetime, end: datetime, **owner: Any) -> Decimal:
    """Settled this month plus open top-level holds: what the budget has used.

    ``owner`` is ``user=…`` or ``team=…``. A running template run counts its whole
    quote (the parent's hold) and, as they finish, its steps' settled costs too:
    cautious by at most one run's quote, until the run ends and its hold is released.
    Steps' own holds are never counted.
    """
    settled = LedgerEntry.objects.filter(
        kind=LedgerKind.SETTLE, created_at__gte=start, created_at__lt=end, **owner,
    ).aggregate(s=Sum("amount"))["s"] or Decimal(0)
    held = _open_holds(**owner).filter(
        top_level=True, created_at__gte=start, created_at__lt=end,
    ).aggregate(s=Sum("amount"))["s"] or Decimal(0)
    return Decimal(settled) + Decimal(held)


def team_plan(team: Any) -> Plan | None:
    """The team's own plan, if an admin gave it one (else it has no limits of its own)."""
    if team is None:
        return None
    account = TeamAccount.objects.select_related("plan").filter(team=team).first()
    return account.plan if account is not None else None


@dataclass(frozen=True)
class Payer:
    """Whose limits a check is against: the user's, or their team's (``team`` set)."""

    plan: Plan
    zone: ZoneInfo
    owner: dict[str, Any]
    team: Any = None

    @property
    def prefix(self) -> str:
        return "team_" if self.team is not None else ""

    @property
    def whose(self) -> str:
        """Whose plan, to finish a sentence: "your plan", "the plan of the team X"."""
        return f"the plan of the team {self.team.name}" if self.team is not None \
            else "your plan"


def _concurrency_check(job: Job, payer: Payer, limit: int | None) -> None:
    if limit is None:
        return
    running = Job.objects.filter(parent__isnull=True, status__in=ACTIVE_STATUSES,
                                 **payer.owner).exclude(pk=job.pk).count()
    if running >= limit:
        name = "concurrent_jobs_per_team" if payer.team is not None else \
            "concurrent_jobs_per_user"
        raise LimitReached(
            f"{payer.whose[0].upper()}{payer.whose[1:]} allows {limit} unfinished jobs at a "
            f"time; wait for one to end.", code="concurrency_limit", limit=name, value=limit,
            retry_after=CONCURRENCY_RETRY_SECONDS)


def _budget_check(job: Job, payer: Payer, now: datetime) -> None:
    """Refuse past the hard budget; warn (event, e-mail) on crossing the soft one."""
    quote = job.estimated_cost
    hard, soft = payer.plan.monthly_budget_hard, payer.plan.monthly_budget_soft
    if hard is None and soft is None:
        return
    start, end = month_window(payer.zone, now)
    committed = month_committed(start=start, end=end, **payer.owner)
    if hard is not None and committed + quote > hard:
        raise LimitReached(
            f"This job (quote {quote} USD) would take the month's spending past the "
            f"{hard} USD budget of {payer.whose} ({committed} USD used). It resets at "
            f"{end.isoformat()}.", code="budget_exceeded",
            limit=f"{payer.prefix}monthly_budget_hard", value=hard, resets_at=end)
    if soft is not None and committed <= soft < committed + quote:
        limit = f"{payer.prefix}monthly_budget_soft"
        notify_job_event(job=job, type="budget_warning", payload={
            "status": job.status, "limit": limit, "value": str(soft),
            "committed": str(committed + quote),
            "team": payer.team.slug if payer.team is not None else None})
        budget_warning_mail(job=job, payer=payer, soft=soft, committed=committed + quote,
                            resets_at=end)


def budget_warning_mail(*, job: Job, payer: Payer, soft: Decimal, committed: Decimal,
                        resets_at: datetime) -> None:
    """E-mail the user (or the team's owners) that the soft budget is crossed, once
    the job is committed. Off with ``BRENIA_BUDGET_EMAILS=0``; nobody without an
    address is written to."""
    if not settings.BRENIA_BUDGET_EMAILS:
        return
    if payer.team is not None:
        recipients = list(payer.team.memberships.filter(role=TeamRole.OWNER)
                          .exclude(user__email="").values_list("user__email", flat=True))
    else:
        recipients = [job.user.email] if job.user.email else []
    if not recipients:
        return
    subject = f"Brenia: the monthly budget warning of {payer.whose} ({soft} USD) is crossed"
    body = (f"{committed} USD of this month's budget is used or held, past the warning "
            f"threshold of {soft} USD set by the plan {payer.plan.name!r}.\n"
            f"Job {job.pk} ({job.model_slug}) crossed it. The month resets at "
            f"{resets_at.isoformat()}.\n")
    transaction.on_commit(
        lambda: send_mail(subject, body, None, recipients, fail_silently=False), robust=True)


def money_text(amount: Decimal) -> str:
    """An amount as people read it: cents, unless it is less than a unit and needs more
    (a month of 0.003 USD is not "0.00 USD")."""
    cents = amount.quantize(Decimal("0.01"))
    if cents == amount or abs(amount) >= 1:
        return f"{cents:,}"
    return f"{amount:f}".rstrip("0")


@dataclass(frozen=True)
class BudgetWarning:
    """A budget whose month has passed its soft threshold, for the page banner."""

    team: Any
    committed: Decimal
    soft: Decimal
    hard: Decimal | None
    resets_at: datetime

    @property
    def texts(self) -> dict[str, str]:
        return {"committed": money_text(self.committed), "soft": money_text(self.soft),
                "hard": "" if self.hard is None else money_text(self.hard)}


def budget_warnings_for_user(user: Any, now: datetime | None = None) -> list[BudgetWarning]:
    """The user's own budget, and each of their teams', once past the soft threshold."""
    now = now or timezone.now()
    payers = [Payer(plan=plan_for_user(user), zone=user.zone, owner={"user": user})]
    for account in TeamAccount.objects.select_related("team", "plan").filter(
            team__memberships__user=user):
        payers.append(Payer(plan=account.plan, zone=account.team.zone,
                            owner={"team": account.team}, team=account.team))
    warnings = []
    for payer in payers:
        soft = payer.plan.monthly_budget_soft
        if soft is None:
            continue
        start, end = month_window(payer.zone, now)
        committed = month_committed(start=start, end=end, **payer.owner)
        if committed > soft:
            warnings.append(BudgetWarning(team=payer.team, committed=committed, soft=soft,
                                          hard=payer.plan.monthly_budget_hard, resets_at=end))
    return warnings


def _counts(plan: Plan) -> bool:
    """Whether admitting under ``plan`` counts earlier work (a cap, a concurrency limit,
    a budget), so that admissions must be checked one after the other."""
    return any(value is not None for value in (
        plan.daily_high_res_cap, plan.concurrent_jobs_per_user,
        plan.monthly_budget_soft, plan.monthly_budget_hard))


def _team_lock(team: Any) -> None:
    # After the user's lock, always in that order: two members never deadlock.
    Team.objects.select_for_update().filter(pk=team.pk).first()


def plan_check(*, job: Job, client: str = "", now: datetime | None = None) -> None:
    """Admit ``job`` under its user's plan (and its team's, if it is filed under a
    team with a plan) and hold its quote, or raise a refusal.

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
    # A plan that counts nothing needs no order, and the lock (held until commit) would
    # queue every submission of a busy key behind the one before it.
    if _counts(plan):
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
    team = job.team if job.team_id is not None else None
    if top_level:
        payers = [Payer(plan=plan, zone=zone, owner={"user": user})]
        shared = team_plan(team)
        if team is not None and shared is not None:
            _team_lock(team)
            payers.append(Payer(plan=shared, zone=team.zone, owner={"team": team}, team=team))
        for payer in payers:
            _concurrency_check(job, payer, payer.plan.concurrent_jobs_per_team
                               if payer.team is not None
                               else payer.plan.concurrent_jobs_per_user)
        for payer in payers:
            _budget_check(job, payer, now)
    LedgerEntry.objects.create(
        user=user, team=team, job=job, kind=LedgerKind.HOLD, amount=job.estimated_cost,
        currency=job.currency, high_res_images=wanted, top_level=top_level, created_at=now,
        **ledger_names(job))


def ledger_names(job: Job) -> dict[str, str]:
    """What usage reports group by, copied onto each entry: who, which model, which
    template (a run's parent job is labelled ``template:<slug>``; its steps too)."""
    label = job.model_slug if job.model_id is None else ""
    if job.parent_id is not None:
        label = Job.objects.filter(pk=job.parent_id).values_list("model_slug", flat=True) \
            .first() or ""
    template = label.removeprefix("template:") if label.startswith("template:") else ""
    return {"username": job.user.username,
            "model_slug": job.model_slug if job.model_id is not None else "",
            "template_slug": template}


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
        names = _names_of(hold) if hold is not None else ledger_names(job)
        LedgerEntry.objects.get_or_create(job=job, kind=LedgerKind.SETTLE, defaults={
            "user_id": job.user_id, "team_id": job.team_id, "amount": amount,
            "currency": job.currency, "top_level": job.parent_id is None, **names})
    elif hold is not None:
        LedgerEntry.objects.get_or_create(job=job, kind=LedgerKind.RELEASE, defaults={
            "user_id": job.user_id, "team_id": hold.team_id, "amount": hold.amount,
            "currency": job.currency, "top_level": hold.top_level, **_names_of(hold)})


def _names_of(entry: LedgerEntry) -> dict[str, str]:
    return {"username": entry.username, "model_slug": entry.model_slug,
            "template_slug": entry.template_slug}
