"""Admission locks the user's row only when the plan counts earlier work.

The lock (held until the job's transaction commits) is what makes a cap of 10 admit
exactly 10 under a race (test_billing_concurrency.py); a plan with nothing to count
needs no order, and the lock would only queue a busy key's submissions one behind
the other.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from brenia.billing.models import LedgerEntry, LedgerKind
from tests.brenia.billing_helpers import admitted_job, assign_plan
from tests.conftest import Persona


def _user_locks(user: Any, **limits: Any) -> int:
    """Admit one job on a plan with ``limits``; how many times the user's row was locked."""
    assign_plan(user, **limits)
    with CaptureQueriesContext(connection) as queries:
        job = admitted_job(user, quote=Decimal("0.5"))
    assert LedgerEntry.objects.filter(job=job, kind=LedgerKind.HOLD).count() == 1
    table = user._meta.db_table
    return sum(1 for q in queries.captured_queries
               if table in q["sql"] and "FOR UPDATE" in q["sql"].upper())


@pytest.mark.skipif(not connection.features.has_select_for_update,
                    reason="SQLite serialises writers with IMMEDIATE transactions instead")
@pytest.mark.parametrize("limits", [
    {"daily_high_res_cap": 5},
    {"concurrent_jobs_per_user": 5},
    {"monthly_budget_soft": Decimal("100")},
    {"monthly_budget_hard": Decimal("100")},
])
def test_a_plan_that_counts_locks_the_user(owner: Persona, limits: dict[str, Any]) -> None:
    assert _user_locks(owner.user, **limits) == 1


def test_an_unlimited_plan_takes_no_lock(owner: Persona) -> None:
    # Only a per-key rate (counted in the cache, atomically) and a model list: no counts.
    assert _user_locks(owner.user, requests_per_minute=1000) == 0
