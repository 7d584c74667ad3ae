"""A team's plan: its members' work counted together, under a race too; budget
warnings by event, mail and banner; the ledger that outlives its jobs."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.db import connection, connections, transaction
from django.test import Client

from brenia.accounts.models import Membership, Team, TeamRole
from brenia.billing.models import LedgerEntry, LedgerKind, Plan, TeamAccount
from brenia.billing.services import (
    budget_warnings_for_user,
    high_res_images,
    money_text,
    plan_check,
)
from generation.jobs.admission import LimitReached
from generation.jobs.lifecycle import job_finish
from generation.jobs.services import job_local_create
from generation.models import AIModel, Job, JobEvent, JobStatus
from tests.brenia.billing_helpers import LOW_RES, admitted_job, assign_plan
from tests.conftest import Persona, make_persona

THREADS = 50 if connection.vendor == "postgresql" else 16
ACCEPTED = 10
MEMBERS = 5


def _team(*people: Any, owner: Any = None, **limits: Any) -> Team:
    team = Team.objects.create(name="Lemon Co", slug=f"lemon-{Team.objects.count()}",
                               time_zone="America/Los_Angeles")
    for person in people:
        Membership.objects.create(team=team, user=person, role=TeamRole.MEMBER)
    if owner is not None:
        Membership.objects.create(team=team, user=owner, role=TeamRole.OWNER)
    plan = Plan.objects.create(name=f"team-plan-{team.pk}", **limits)
    TeamAccount.objects.create(team=team, plan=plan)
    return team


@pytest.mark.django_db(transaction=True)
class TestTeamLimitsUnderARace:
    """50 submissions at once from five members, each on its own connection."""

    def _race(self, team: Team, users: list[Any]) -> list[str]:
        barrier = threading.Barrier(THREADS)

        def submit(index: int) -> str:
            try:
                barrier.wait(timeout=60)
                admitted_job(users[index % len(users)], quote=Decimal("1"), team=team,
                             arguments=LOW_RES)
                return "ok"
            except LimitReached as refused:
                return f"{refused.code}:{refused.limit}"
            finally:
                connections.close_all()

        with ThreadPoolExecutor(THREADS) as pool:
            return list(pool.map(submit, range(THREADS)))

    @pytest.fixture
    def members(self) -> list[Any]:
        from generation.registry.services import registry_seed

        registry_seed()
        return [make_persona(f"member{n}").user for n in range(MEMBERS)]

    def test_team_budget_admits_exactly_what_it_covers(self, members: list[Any]) -> None:
        team = _team(*members, monthly_budget_hard=Decimal(ACCEPTED))
        outcomes = self._race(team, members)
        assert outcomes.count("ok") == ACCEPTED
        assert outcomes.count("budget_exceeded:team_monthly_budget_hard") == THREADS - ACCEPTED
        assert LedgerEntry.objects.filter(kind=LedgerKind.HOLD, team=team).count() == ACCEPTED

    def test_team_concurrency_admits_exactly_the_limit(self, members: list[Any]) -> None:
        team = _team(*members, concurrent_jobs_per_team=ACCEPTED)
        outcomes = self._race(team, members)
        assert outcomes.count("ok") == ACCEPTED
        assert outcomes.count("concurrency_limit:concurrent_jobs_per_team") == \
            THREADS - ACCEPTED


def test_team_limits_apply_only_to_work_filed_under_the_team(owner: Persona) -> None:
    team = _team(owner.user, concurrent_jobs_per_team=1)
    admitted_job(owner.user, team=team, arguments=LOW_RES)
    with pytest.raises(LimitReached) as refused:
        admitted_job(owner.user, team=team, arguments=LOW_RES)
    assert refused.value.limit == "concurrent_jobs_per_team"
    assert "Lemon Co" in refused.value.message
    admitted_job(owner.user, arguments=LOW_RES)  # personal work: the team's count is not hit


def test_a_members_own_plan_still_applies_inside_a_team(owner: Persona) -> None:
    team = _team(owner.user, monthly_budget_hard=Decimal(100))
    assign_plan(owner.user, concurrent_jobs_per_user=1)
    admitted_job(owner.user, team=team, arguments=LOW_RES)
    with pytest.raises(LimitReached) as refused:
        admitted_job(owner.user, team=team, arguments=LOW_RES)
    assert refused.value.limit == "concurrent_jobs_per_user"


def test_crossing_a_teams_soft_budget_warns_its_owners_once(owner: Persona) -> None:
    boss = make_persona("boss").user
    boss.email = "boss@example.com"
    boss.save()
    team = _team(owner.user, owner=boss, monthly_budget_soft=Decimal("1.5"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transaction, "on_commit", lambda fn, robust=False: fn())
        first = admitted_job(owner.user, team=team, quote=Decimal(1), arguments=LOW_RES)
        second = admitted_job(owner.user, team=team, quote=Decimal(1), arguments=LOW_RES)
        admitted_job(owner.user, team=team, quote=Decimal(1), arguments=LOW_RES)
    assert not JobEvent.objects.filter(job=first, type="budget_warning").exists()
    event = JobEvent.objects.get(job=second, type="budget_warning")
    assert event.payload["limit"] == "team_monthly_budget_soft"
    assert event.payload["team"] == team.slug
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["boss@example.com"]
    assert "1.5" in mail.outbox[0].subject


def test_crossing_a_users_soft_budget_mails_the_user(owner: Persona) -> None:
    owner.user.email = "owner@example.com"
    owner.user.save()
    assign_plan(owner.user, monthly_budget_soft=Decimal("0.5"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transaction, "on_commit", lambda fn, robust=False: fn())
        admitted_job(owner.user, quote=Decimal(1), arguments=LOW_RES)
    assert [m.to for m in mail.outbox] == [["owner@example.com"]]
    assert "0.5" in mail.outbox[0].body


def test_no_mail_when_budget_mails_are_off(owner: Persona, settings: Any) -> None:
    settings.BRENIA_BUDGET_EMAILS = False
    owner.user.email = "owner@example.com"
    owner.user.save()
    assign_plan(owner.user, monthly_budget_soft=Decimal("0.5"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transaction, "on_commit", lambda fn, robust=False: fn())
        job = admitted_job(owner.user, quote=Decimal(1), arguments=LOW_RES)
    assert JobEvent.objects.filter(job=job, type="budget_warning").exists()
    assert mail.outbox == []


def test_every_page_shows_the_budget_banner_past_the_soft_threshold(owner: Persona) -> None:
    team = _team(owner.user, monthly_budget_soft=Decimal("2"),
                 monthly_budget_hard=Decimal("5"))
    client = Client()
    client.force_login(owner.user)
    assert "warning" not in client.get("/templates/").content.decode()
    admitted_job(owner.user, team=team, quote=Decimal(3), arguments=LOW_RES)
    [warning] = budget_warnings_for_user(owner.user)
    assert warning.committed == Decimal(3) and warning.team == team
    page = client.get("/templates/").content.decode()
    assert "The team Lemon Co has used 3.00 USD this month" in page
    assert "beyond 5.00 USD will be refused" in page


@pytest.mark.parametrize(("amount", "text"), [
    ("3", "3.00"), ("0.003", "0.003"), ("0.0025", "0.0025"), ("0.50", "0.50"),
    ("1234.5", "1,234.50"), ("1.0049", "1.00"), ("0", "0.00")])
def test_the_banner_never_rounds_a_small_spend_to_nothing(amount: str, text: str) -> None:
    assert money_text(Decimal(amount)) == text


def test_nano_banana_sizes_count_against_the_high_res_cap(owner: Persona) -> None:
    plan = assign_plan(owner.user, daily_high_res_cap=1, high_res_megapixels=Decimal("4"))
    big = admitted_job(owner.user, slug="nano-banana-pro",
                       arguments={"prompt": "a", "image_size": "2K", "aspect_ratio": "16:9"})
    assert high_res_images(big, plan) == 1
    small = Job(user=owner.user, model=AIModel.objects.get(slug="nano-banana-pro"),
                provider_arguments={"prompt": "a", "image_size": "1K"})
    assert high_res_images(small, plan) == 0
    with pytest.raises(LimitReached) as refused:
        admitted_job(owner.user, slug="nano-banana-pro",
                     arguments={"prompt": "a", "image_size": "4K"})
    assert refused.value.code == "daily_cap_reached"
    text = Job(user=owner.user, model=AIModel.objects.get(slug="gemini-copy"),
               provider_arguments={"prompt": "a", "image_size": "4K"})
    assert high_res_images(text, plan) == 0


def test_the_ledger_outlives_its_job_and_names_what_it_was_for(owner: Persona) -> None:
    parent = job_local_create(user=owner.user, label="template:billboard", version="v1")
    step = admitted_job(owner.user, parent=parent, arguments=LOW_RES)
    step.transition(JobStatus.SUBMITTED)
    job_finish(job=step, status=JobStatus.COMPLETED, cost=Decimal("0.25"))
    settle = LedgerEntry.objects.get(kind=LedgerKind.SETTLE)
    assert (settle.username, settle.model_slug, settle.template_slug) == \
        (owner.user.username, "flux-schnell", "billboard")
    Job.objects.filter(pk=parent.pk).delete()  # the step goes with its parent
    kept = LedgerEntry.objects.order_by("kind").values_list("kind", "job_id", "amount")
    assert [(kind, job, amount) for kind, job, amount in kept] == [
        ("hold", None, Decimal("1.000000")), ("settle", None, Decimal("0.250000"))]


def test_plan_check_of_a_step_counts_no_team_limit(owner: Persona) -> None:
    team = _team(owner.user, concurrent_jobs_per_team=0)
    parent = job_local_create(user=owner.user, label="template:billboard", team=team)
    with transaction.atomic():
        step = Job.objects.create(user=owner.user, model=AIModel.objects.get(slug="flux-schnell"),
                                  model_slug="flux-schnell", parent=parent, team=team,
                                  provider_arguments=LOW_RES, estimated_cost=Decimal(1))
        plan_check(job=step)
    assert LedgerEntry.objects.get(job=step).team == team
