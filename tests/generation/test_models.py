"""Job state only moves forward, through one conditional UPDATE per change."""

from __future__ import annotations

import pytest

from generation.models import IllegalTransition, Job, JobStatus
from tests.conftest import Persona
from tests.generation.factories import make_job


def test_queued_job_moves_to_submitted(owner: Persona) -> None:
    job = make_job(owner)
    job.transition(JobStatus.SUBMITTED, provider_request_id="r1")
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUBMITTED


def test_completed_job_never_moves_backwards(owner: Persona) -> None:
    job = make_job(owner, status=JobStatus.COMPLETED)
    for target in (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS, JobStatus.CANCELLED,
                   JobStatus.FAILED):
        with pytest.raises(IllegalTransition):
            job.transition(target)
    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED


def test_a_stale_instance_cannot_overwrite_a_newer_state(owner: Persona) -> None:
    job = make_job(owner, status=JobStatus.SUBMITTED)
    stale = Job.objects.get(pk=job.pk)
    job.transition(JobStatus.CANCELLED)
    with pytest.raises(IllegalTransition):
        stale.transition(JobStatus.COMPLETED)
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED


def test_terminal_transition_stamps_finish_time(owner: Persona) -> None:
    job = make_job(owner, status=JobStatus.IN_PROGRESS)
    job.transition(JobStatus.FAILED, error_code="x", error_message="y")
    stored = Job.objects.get(pk=job.pk)
    assert stored.finished_at is not None
    assert stored.error_code == "x"
