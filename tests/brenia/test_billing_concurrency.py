"""Limits hold under a race: 50 submissions at once, each on its own connection.

Each thread inserts and admits a job in one transaction, as ``job_create`` does
(without dispatching it, so the jobs stay unfinished and the counts stay put). The
user's row lock serialises them on PostgreSQL; SQLite's IMMEDIATE transactions
serialise writers by themselves, so fewer threads there prove the same.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, connections

from brenia.billing.models import LedgerEntry, LedgerKind
from generation.jobs.admission import LimitReached
from tests.brenia.billing_helpers import admitted_job, assign_plan
from tests.conftest import make_persona

THREADS = 50 if connection.vendor == "postgresql" else 16
ACCEPTED = 10

pytestmark = pytest.mark.django_db(transaction=True)


def _race(user: Any) -> list[str]:
    """Submit THREADS jobs at once; each outcome: "ok" or the refusal's code."""
    barrier = threading.Barrier(THREADS)

    def submit(_: int) -> str:
        try:
            barrier.wait(timeout=60)
            admitted_job(user, quote=Decimal("1"))
            return "ok"
        except LimitReached as refused:
            return refused.code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(submit, range(THREADS)))


@pytest.fixture
def racer() -> Any:
    from generation.registry.services import registry_seed

    registry_seed()
    return make_persona("racer").user


def test_daily_cap_admits_exactly_the_remaining_images(racer: Any) -> None:
    assign_plan(racer, daily_high_res_cap=ACCEPTED + 2, high_res_megapixels=Decimal("1"))
    admitted_job(racer)
    admitted_job(racer)  # 2 used: 10 remain
    outcomes = _race(racer)
    assert outcomes.count("ok") == ACCEPTED
    assert outcomes.count("daily_cap_reached") == THREADS - ACCEPTED
    assert LedgerEntry.objects.filter(kind=LedgerKind.HOLD).count() == ACCEPTED + 2


def test_hard_budget_admits_exactly_what_it_covers(racer: Any) -> None:
    assign_plan(racer, monthly_budget_hard=Decimal(ACCEPTED))
    outcomes = _race(racer)
    assert outcomes.count("ok") == ACCEPTED
    assert outcomes.count("budget_exceeded") == THREADS - ACCEPTED
    assert LedgerEntry.objects.filter(kind=LedgerKind.HOLD).count() == ACCEPTED


def test_concurrency_limit_admits_exactly_the_limit(racer: Any) -> None:
    assign_plan(racer, concurrent_jobs_per_user=ACCEPTED)
    outcomes = _race(racer)
    assert outcomes.count("ok") == ACCEPTED
    assert outcomes.count("concurrency_limit") == THREADS - ACCEPTED
    assert LedgerEntry.objects.filter(kind=LedgerKind.HOLD).count() == ACCEPTED
