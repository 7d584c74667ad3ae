"""A template run is admitted as one job (its whole quote held, its limits checked),
and the pages show a plan's refusal like any other."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brenia.billing.models import LedgerEntry, LedgerKind
from templates_app.services import ad_template_seed
from tests.brenia.billing_helpers import admitted_job, assign_plan
from tests.conftest import Persona
from tests.templates_app.test_runs import variables_for

RUNS = "/api/templates/discount-banner/runs"


@pytest.fixture
def templates(seeded: None) -> None:
    ad_template_seed()


def test_a_run_holds_its_whole_quote_on_its_parent_job(owner: Persona,
                                                        templates: None) -> None:
    body = {"variables": variables_for("discount-banner"), "formats": ["social-square"]}
    response = owner.api().post_json(RUNS, body)
    assert response.status_code == 202, response.json()
    run = response.json()
    hold = LedgerEntry.objects.get(job_id=run["job"])
    assert (hold.kind, str(hold.amount)) == (LedgerKind.HOLD, run["estimated_cost"])


def test_a_run_over_the_budget_or_the_concurrency_limit_is_refused(
        owner: Persona, templates: None) -> None:
    body = {"variables": variables_for("discount-banner"), "formats": ["social-square"]}
    plan = assign_plan(owner.user, monthly_budget_hard=Decimal("0.001"))
    refused = owner.api().post_json(RUNS, body)
    assert refused.status_code == 403
    assert refused.json()["code"] == "budget_exceeded"
    assert refused.json()["limit"]["resets_at"]
    plan.monthly_budget_hard = None
    plan.concurrent_jobs_per_user = 1
    plan.save()
    admitted_job(owner.user)
    busy = owner.api().post_json(RUNS, body)
    assert busy.status_code == 403 and busy.json()["code"] == "concurrency_limit"
    assert busy["Retry-After"]


def test_the_playground_page_shows_a_plan_refusal(owner: Persona) -> None:
    from django.test import Client

    assign_plan(owner.user, concurrent_jobs_per_user=0)
    browser = Client()
    browser.force_login(owner.user)
    page = browser.post("/playground/flux-schnell/", {"prompt": "a lemonade stand"})
    assert page.status_code == 422
    assert "unfinished jobs at a time" in page.content.decode()
    assert not LedgerEntry.objects.exists()


def test_runs_count_against_the_keys_rate_like_any_submission(owner: Persona,
                                                               templates: None) -> None:
    body = {"variables": variables_for("discount-banner"), "formats": ["social-square"]}
    assign_plan(owner.user, requests_per_minute=1)
    assert owner.api().post_json(RUNS, body).status_code == 202
    limited = owner.api().post_json(RUNS, body)
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert int(limited["Retry-After"]) >= 1
