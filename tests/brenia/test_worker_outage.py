"""The database away for a moment under a worker with 20 jobs in flight.

What a PostgreSQL restart or failover does to Brenia's processes: each open
connection is cut at once, and new ones are refused for a while. The worker keeps
running (procrastinate's own would exit), and each job picks up where it was: no job
ends in error for it, none is submitted to fal twice, each is charged once (found by
bench/drills.py postgres). Meanwhile the API answers 503, not 500."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from psycopg import sql

from generation.emulators.server import EmulatorThread
from generation.models import Job, JobAttempt, JobStatus
from tests.conftest import SCALEOUT, Persona, child_env, start_worker
from tests.generation.factories import make_prepared_job
from tests.test_durability import (
    all_finished,
    all_submitted,
    assert_each_finished_once,
    make_jobs,
    roomy_fal,  # noqa: F401 (a fixture)
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(not SCALEOUT, reason="workers exist in the scale-out "
                                 "profile (PostgreSQL)")]


@contextmanager
def outage() -> Iterator[None]:
    """The test database refuses new connections, and every open one is cut, until
    the block ends (what a PostgreSQL restart looks like from Brenia's processes).
    Run from a connection to another database, so that the test's own is cut too."""
    name = settings.DATABASES["default"]["NAME"]
    db = settings.DATABASES["default"]
    admin = psycopg.connect(host=db.get("HOST") or "127.0.0.1", port=db.get("PORT") or 5432,
                            user=db.get("USER") or "postgres", dbname="postgres",
                            autocommit=True)
    try:
        admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(
            sql.Identifier(name)))
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", [name])
        yield
    finally:
        admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(
            sql.Identifier(name)))
        admin.close()
        # The test's own connections were cut too: a fresh pool for this process.
        connection.close()
        connection.close_pool()


def test_worker_and_its_jobs_outlive_a_database_outage(
        owner: Persona, roomy_fal: EmulatorThread, tmp_path: Path) -> None:  # noqa: F811
    env = child_env(roomy_fal, tmp_path)
    # A job step meets the outage once it has waited this long for a connection.
    env["BRENIA_DB_POOL_TIMEOUT"] = "2"
    env["BRENIA_RECOVERY_INTERVAL"] = "1"
    log = tmp_path / "worker.log"
    worker = start_worker(env, log)
    jobs = make_jobs(owner, f"outage {uuid.uuid4()}")
    try:
        wait_until(lambda: all_submitted(jobs), timeout=30, what="all jobs submitted")
        assert not all_finished(jobs)
        with outage():
            # Until the worker itself has met the outage (fetching work, heartbeat or
            # listening) and at least one job's run has.
            wait_until(lambda: "database is unreachable" in log.read_text()
                       and "lost the database" in log.read_text(),
                       timeout=30, what="the worker and a job meeting the outage")
        wait_until(lambda: all_finished(jobs), timeout=90, what="all jobs finished")
        assert worker.poll() is None, log.read_text()[-3000:]
        # Still taking new work after the outage.
        later = make_jobs(owner, f"after the outage {uuid.uuid4()}", count=2)
        wait_until(lambda: all_finished(later), timeout=30, what="later jobs finished")
        # And still recovering: a job whose task was lost (its row committed, then the
        # database went before the task was queued) is put back by the periodic
        # recovery, whose tasks failed during the outage on a connection it broke.
        orphan = make_prepared_job(owner, inputs={"prompt": f"orphaned {uuid.uuid4()}"})
        wait_until(lambda: Job.objects.get(pk=orphan.pk).status == JobStatus.COMPLETED,
                   timeout=30, what="the recovery to run a job that has no task")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert_each_finished_once(jobs + later, roomy_fal)
    # Each job's cut attempt says why it ended; none is left looking as if it runs.
    ids = [job.pk for job, _ in jobs]
    assert not JobAttempt.objects.filter(job_id__in=ids, outcome="running").exists()
    interrupted = JobAttempt.objects.filter(job_id__in=ids, outcome="interrupted")
    assert interrupted.exists()
    assert all("database went away" in attempt.reason for attempt in interrupted)


def test_api_answers_503_while_the_database_is_away(owner: Persona) -> None:
    client = Client(headers={"Authorization": f"Bearer {owner.key}"})
    with outage():
        response = client.get("/api/jobs")
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "5"
    assert response.json()["code"] == "database_unavailable"
    assert client.get("/api/jobs").status_code == 200  # and back once it is
