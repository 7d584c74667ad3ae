"""The ledger is exact: any interleaving of submits, retries, resumes, duplicate
finishes, step retries, failures and cancels settles exactly the completed jobs'
actual costs, and leaves no hold open.

Random sequences (hypothesis) drive the real services: ``job_create`` (with its
idempotency keys: a client's retry), the job's own transitions (a resume re-enters
in progress), ``job_finish`` (the runner, a fal webhook, or its duplicate), and
``job_cancel``. A template run is a local parent admitted as one job, with step jobs
under it; a step retry is a new step job after a failed one.
"""

from __future__ import annotations

from contextlib import suppress
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brenia.billing.models import LedgerEntry, LedgerKind
from brenia.errors import Conflict
from generation.jobs import services
from generation.jobs.admission import job_admit
from generation.jobs.lifecycle import job_finish
from generation.models import TERMINAL_STATUSES, IllegalTransition, Job, JobStatus
from tests.conftest import Persona

OPS = ("submit", "retry", "step", "step_retry", "start", "resume", "complete",
       "duplicate", "fail", "cancel")
operation = st.tuples(st.sampled_from(OPS), st.integers(0, 7),
                      st.decimals(min_value=0, max_value=5, places=3))


class Scenario:
    """One user's jobs, and the services the operations call."""

    def __init__(self, user: Any) -> None:
        self.user = user
        self.jobs: list[Job] = []
        self.keys: list[str] = []
        self.parent: Job | None = None

    def pick(self, index: int) -> Job | None:
        if not self.jobs:
            return None
        job = self.jobs[index % len(self.jobs)]
        job.refresh_from_db()
        return job

    def submit(self, key: str, parent: Job | None = None) -> None:
        job, _ = services.job_create(user=self.user, model_slug="flux-schnell",
                                     inputs={"prompt": "a stall"}, idempotency_key=key,
                                     parent=parent)
        if job not in self.jobs:
            self.jobs.append(job)

    def run_parent(self) -> Job:
        if self.parent is None:
            with transaction.atomic():
                self.parent = services.job_local_create(
                    user=self.user, label="template:test", estimated_cost=Decimal("2"))
                job_admit(job=self.parent)
        return self.parent

    def apply(self, op: str, index: int, cost: Decimal) -> None:
        job = self.pick(index)
        if op == "submit" or (op == "retry" and not self.keys):
            self.keys.append(f"k{len(self.keys)}")
            self.submit(self.keys[-1])
        elif op == "retry":  # the client sends the same request again
            self.submit(self.keys[index % len(self.keys)])
        elif op == "step":
            self.submit(f"step{len(self.jobs)}", parent=self.run_parent())
        elif op == "step_retry":
            failed = [j for j in self.jobs if j.parent_id and j.status == JobStatus.FAILED]
            if failed:
                self.submit(f"retry-of-{failed[index % len(failed)].pk}", parent=self.parent)
        elif job is None:
            return
        elif op in ("start", "resume"):  # a resumed job re-enters in progress
            with suppress(IllegalTransition):
                if job.status == JobStatus.QUEUED:
                    job.transition(JobStatus.SUBMITTED)
                job.transition(JobStatus.IN_PROGRESS)
        elif op in ("complete", "duplicate"):  # the runner, or a second webhook
            for _ in range(1 if op == "complete" else 2):
                with suppress(IllegalTransition):
                    job_finish(job=job, status=JobStatus.COMPLETED, cost=cost)
        elif op == "fail":
            with suppress(IllegalTransition):
                job_finish(job=job, status=JobStatus.FAILED, error_code="x")
        elif op == "cancel":
            with suppress(Conflict):
                services.job_cancel(user=self.user, job_id=job.pk)

    def wind_down(self) -> None:
        """Every job ends (cancelled if it had not), and so does the run."""
        for job in [*self.jobs, *([self.parent] if self.parent else [])]:
            job.refresh_from_db()
            if job.status not in TERMINAL_STATUSES:
                job_finish(job=job, status=JobStatus.CANCELLED)


def _sum(kind: str, user: Any) -> Decimal:
    return LedgerEntry.objects.filter(user=user, kind=kind).aggregate(
        s=Sum("amount"))["s"] or Decimal(0)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(operations=st.lists(operation, max_size=25))
def test_settled_total_is_the_completed_jobs_costs_and_no_hold_stays_open(
        owner: Persona, operations: list[tuple[str, int, Decimal]]) -> None:
    with transaction.atomic():
        scenario = Scenario(owner.user)
        for op, index, cost in operations:
            scenario.apply(op, index, cost)
        scenario.wind_down()
        completed = Job.objects.filter(user=owner.user, status=JobStatus.COMPLETED,
                                       model__isnull=False)
        assert _sum(LedgerKind.SETTLE, owner.user) == \
            (completed.aggregate(s=Sum("cost"))["s"] or Decimal(0))
        if scenario.parent is not None:  # a run's total is its steps' settled costs
            steps = completed.filter(parent=scenario.parent)
            assert (LedgerEntry.objects.filter(kind=LedgerKind.SETTLE, job__in=steps)
                    .aggregate(s=Sum("amount"))["s"] or Decimal(0)) == \
                (steps.aggregate(s=Sum("cost"))["s"] or Decimal(0))
        holds = LedgerEntry.objects.filter(user=owner.user, kind=LedgerKind.HOLD)
        closed = LedgerEntry.objects.filter(user=owner.user).exclude(kind=LedgerKind.HOLD)
        assert set(holds.values_list("job_id", flat=True)) <= \
            set(closed.values_list("job_id", flat=True))
        # One hold per job ever made, whatever was retried.
        assert holds.count() == Job.objects.filter(user=owner.user).count()
        transaction.set_rollback(True)
