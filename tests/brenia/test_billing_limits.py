"""Plans refuse what they do not allow, with the limit, its value and its reset."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from brenia.accounts.services import api_key_create
from brenia.billing.models import LedgerEntry, LedgerKind
from brenia.billing.services import plan_check, plan_for_user
from generation.jobs import services
from generation.jobs.admission import LimitReached
from generation.jobs.lifecycle import job_finish
from generation.models import AIModel, Job, JobStatus
from tests.brenia.billing_helpers import HIGH_RES, LOW_RES, admitted_job, assign_plan
from tests.conftest import ApiClient, Persona, make_persona

GENERATE = "/api/images/generate"
BODY = {"model": "flux-schnell", "inputs": {"prompt": "a lemonade stand"}}


def test_users_without_an_assignment_are_on_the_unlimited_default_plan(owner: Persona) -> None:
    plan = plan_for_user(owner.user)
    assert plan.daily_high_res_cap is None and plan.monthly_budget_hard is None
    job, _ = services.job_create(user=owner.user, model_slug="flux-schnell",
                                 inputs={"prompt": "a"})
    hold = LedgerEntry.objects.get(job=job)
    assert (hold.kind, hold.amount) == (LedgerKind.HOLD, job.estimated_cost)


def test_model_outside_the_plan_is_refused_with_403_naming_the_plan(owner: Persona) -> None:
    plan = assign_plan(owner.user)
    plan.allowed_models.set([AIModel.objects.exclude(slug="flux-schnell").first()])
    response = owner.api().post_json(GENERATE, BODY)
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "model_not_in_plan"
    assert body["limit"]["name"] == "allowed_models"
    assert not LedgerEntry.objects.exists()


def test_daily_cap_refusal_says_the_cap_and_the_users_midnight(owner: Persona) -> None:
    assign_plan(owner.user, daily_high_res_cap=1, high_res_megapixels=Decimal("1"))
    admitted_job(owner.user)
    with pytest.raises(LimitReached) as refused:
        admitted_job(owner.user)
    assert refused.value.code == "daily_cap_reached"
    assert refused.value.value == 1
    assert refused.value.resets_at is not None
    assert int(refused.value.headers["Retry-After"]) > 0
    # Low-resolution images are not counted against the cap.
    admitted_job(owner.user, arguments=LOW_RES)


def test_failed_and_cancelled_jobs_give_their_high_res_images_back(owner: Persona) -> None:
    assign_plan(owner.user, daily_high_res_cap=2, high_res_megapixels=Decimal("1"))
    failed, done = admitted_job(owner.user), admitted_job(owner.user)
    failed.transition(JobStatus.SUBMITTED)
    job_finish(job=failed, status=JobStatus.FAILED, error_code="safety")
    done.transition(JobStatus.SUBMITTED)
    job_finish(job=done, status=JobStatus.COMPLETED, cost=Decimal("0.5"))
    admitted_job(owner.user)  # the failed one's image is free again
    with pytest.raises(LimitReached):  # the completed one's still counts
        admitted_job(owner.user)


def test_cap_resets_at_the_users_midnight_not_utcs(owner: Persona) -> None:
    """Los Angeles is UTC-8 in December: its day ends at 08:00 UTC."""
    owner.user.time_zone = "America/Los_Angeles"
    owner.user.save()
    assign_plan(owner.user, daily_high_res_cap=1, high_res_megapixels=Decimal("1"))
    evening = datetime(2026, 12, 2, 7, 30, tzinfo=UTC)  # 23:30 on the 1st, in LA
    first = admitted_job(owner.user)
    LedgerEntry.objects.filter(job=first).update(created_at=evening)
    model = AIModel.objects.get(slug="flux-schnell")
    late = Job.objects.create(user=owner.user, model=model, model_slug=model.slug,
                              model_version="1", provider_arguments=HIGH_RES)
    with pytest.raises(LimitReached) as refused:  # 23:59 in LA: the same day
        plan_check(job=late, now=datetime(2026, 12, 2, 7, 59, tzinfo=UTC))
    assert refused.value.resets_at == datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    # UTC's midnight (16:00 the day before, in LA) reset nothing ...
    with pytest.raises(LimitReached):
        plan_check(job=late, now=datetime(2026, 12, 2, 0, 30, tzinfo=UTC))
    # ... but LA's midnight does.
    plan_check(job=late, now=datetime(2026, 12, 2, 8, 0, tzinfo=UTC))


def test_hard_budget_refuses_and_soft_budget_warns(owner: Persona) -> None:
    assign_plan(owner.user, monthly_budget_soft=Decimal("1.5"),
                monthly_budget_hard=Decimal("3"))
    admitted_job(owner.user, quote=Decimal("1"))
    warned = admitted_job(owner.user, quote=Decimal("1"))
    assert warned.events.filter(type="budget_warning").exists()
    with pytest.raises(LimitReached) as refused:
        admitted_job(owner.user, quote=Decimal("1.5"))
    assert refused.value.code == "budget_exceeded"
    assert refused.value.resets_at is not None
    admitted_job(owner.user, quote=Decimal("1"))  # exactly the budget is allowed


def test_concurrency_limit_counts_unfinished_top_level_jobs(owner: Persona) -> None:
    assign_plan(owner.user, concurrent_jobs_per_user=1)
    job = admitted_job(owner.user)
    with pytest.raises(LimitReached) as refused:
        admitted_job(owner.user)
    assert refused.value.code == "concurrency_limit"
    services.job_cancel(user=owner.user, job_id=job.pk)
    admitted_job(owner.user)


def test_the_n_plus_first_request_in_a_minute_is_429_and_other_keys_are_not(
        owner: Persona) -> None:
    # Keys are new in every test, so their counts start at zero (no cache flush: on
    # Redis that would empty the shared database).
    assign_plan(owner.user, requests_per_minute=2)
    _, second_key = api_key_create(user=owner.user, name="second")
    api = owner.api()
    assert [api.post_json(GENERATE, BODY).status_code for _ in range(2)] == [202, 202]
    limited = api.post_json(GENERATE, BODY)
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert ApiClient(second_key).post_json(GENERATE, BODY).status_code == 202


def test_admin_edits_plans_and_lists_the_ledger_read_only(owner: Persona) -> None:
    from django.test import Client

    admin = make_persona("operator", staff=True)
    client = Client()
    client.force_login(admin.user)
    job, _ = services.job_create(user=owner.user, model_slug="flux-schnell",
                                 inputs={"prompt": "a"})
    assert client.get("/admin/billing/plan/add/").status_code == 200
    assert client.get("/admin/billing/account/add/").status_code == 200
    listing = client.get("/admin/billing/ledgerentry/")
    assert listing.status_code == 200 and str(job.estimated_cost) in listing.content.decode()
    assert client.get("/admin/billing/ledgerentry/add/").status_code == 403
