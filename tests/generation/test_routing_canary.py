"""Canaries through the emulator: the share holds and sticks per user, jobs record
their arm, and the guard rolls a failing or badly rated candidate back by itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model

from generation.emulators.fal import FAL_STATE
from generation.emulators.server import EmulatorThread
from generation.jobs import services
from generation.models import (
    AIModel,
    Canary,
    CanaryArm,
    CanaryDecision,
    CanaryStatus,
    Job,
    JobStatus,
)
from generation.routing.canary import canary_arm, canary_figures
from tests.conftest import Persona, run_background_work

pytestmark = pytest.mark.django_db(transaction=True)

CANDIDATE_ENDPOINT = "fal-ai/flux/dev"


@pytest.fixture
def fal(fal_emulator: EmulatorThread, settings: Any) -> Iterator[Any]:
    settings.BRENIA_POLL_INTERVAL = 0.05
    assert fal_emulator.app is not None
    state = fal_emulator.app[FAL_STATE]
    yield state
    state.set_faults(CANDIDATE_ENDPOINT, None)


def _canary(share: str, **fields: Any) -> Canary:
    return Canary.objects.create(model=AIModel.objects.get(slug="flux-schnell"),
                                 candidate=AIModel.objects.get(slug="flux-dev"),
                                 share=Decimal(share), **fields)


def _submit(user: Any, prompt: str = "") -> Job:
    job, _ = services.job_create(user=user, model_slug="flux-schnell",
                                 inputs={"prompt": prompt or f"canary {uuid.uuid4()}"},
                                 options={"width": 256, "height": 256})
    return job


def test_the_share_holds_sticks_per_user_and_only_grows(seeded: None) -> None:
    canary = _canary("0.250")
    users = range(1, 4001)
    first = {user: canary_arm(canary, user) for user in users}
    share = sum(arm == CanaryArm.CANDIDATE for arm in first.values()) / len(first)
    assert 0.22 < share < 0.28
    assert all(canary_arm(canary, user) == first[user] for user in users)  # sticky
    canary.share = Decimal("0.500")
    grown = {user: canary_arm(canary, user) for user in users}
    assert all(grown[user] == CanaryArm.CANDIDATE
               for user in users if first[user] == CanaryArm.CANDIDATE)
    assert 0.47 < sum(arm == CanaryArm.CANDIDATE for arm in grown.values()) / len(users) < 0.53


def test_jobs_record_their_arm_and_run_on_its_model(owner: Persona, fal: Any) -> None:
    canary = _canary("0.500")
    people = [get_user_model().objects.create_user(username=f"u{n}") for n in range(12)]
    jobs = [_submit(person) for person in people for _ in range(2)]
    async_to_sync(run_background_work)()
    by_user: dict[Any, set[str]] = {}
    for job in Job.objects.filter(pk__in=[j.pk for j in jobs]):
        assert job.canary_id == canary.pk and job.status == JobStatus.COMPLETED
        expected = "flux-dev" if job.canary_arm == CanaryArm.CANDIDATE else "flux-schnell"
        assert job.model_slug == expected
        by_user.setdefault(job.user_id, set()).add(job.canary_arm)
    assert all(len(arms) == 1 for arms in by_user.values())  # a user keeps their arm
    assert {arm for arms in by_user.values() for arm in arms} == \
        {CanaryArm.CONTROL, CanaryArm.CANDIDATE}
    figures = canary_figures(canary)
    assert figures[CanaryArm.CONTROL]["finished"] + figures[CanaryArm.CANDIDATE]["finished"] \
        == len(jobs)
    assert figures[CanaryArm.CANDIDATE]["failure_rate"] == 0


def test_a_failing_candidate_is_rolled_back_by_the_guard(owner: Persona, fal: Any) -> None:
    canary = _canary("1.000", min_samples=3, max_failure_rate=Decimal("0.5"))
    fal.set_faults(CANDIDATE_ENDPOINT, {"rate": {"content_policy": 1.0}})
    failed = [_submit(owner.user) for _ in range(3)]
    async_to_sync(run_background_work)()
    assert all(job.canary_arm == CanaryArm.CANDIDATE for job in failed)
    canary.refresh_from_db()
    assert canary.status == CanaryStatus.ROLLED_BACK and canary.ended_at is not None
    decision = CanaryDecision.objects.get(canary=canary)
    assert decision.action == "rolled_back" and decision.by is None
    assert "failed 3 of 3" in decision.reason
    assert decision.figures["candidate"]["failure_rate"] == 1.0
    after = _submit(owner.user)  # everybody is back on the model itself
    assert after.canary_id is None and after.model_slug == "flux-schnell"


def test_a_healthy_candidate_keeps_running(owner: Persona, fal: Any) -> None:
    canary = _canary("1.000", min_samples=2, max_failure_rate=Decimal("0.2"))
    for _ in range(3):
        _submit(owner.user)
    async_to_sync(run_background_work)()
    canary.refresh_from_db()
    assert canary.status == CanaryStatus.RUNNING
    assert not CanaryDecision.objects.filter(canary=canary).exists()


def test_low_ratings_roll_the_candidate_back(owner: Persona, fal: Any) -> None:
    canary = _canary("1.000", min_samples=2, min_rating=Decimal("3"))
    jobs = [_submit(owner.user) for _ in range(2)]
    async_to_sync(run_background_work)()
    for job in jobs:
        image = Job.objects.get(pk=job.pk).images.first()
        services.image_rate(user=owner.user, image_id=image.pk, score=1)
    canary.refresh_from_db()
    assert canary.status == CanaryStatus.ROLLED_BACK
    assert "average 1.00 over 2 ratings" in CanaryDecision.objects.get(canary=canary).reason


def test_a_promoted_canary_serves_everybody_from_the_candidate(owner: Persona,
                                                               fal: Any) -> None:
    from generation.routing.canary import canary_end

    canary = _canary("0.000")
    assert _submit(owner.user).model_slug == "flux-schnell"
    assert canary_end(canary, status=CanaryStatus.PROMOTED, reason="looks good")
    job = _submit(owner.user)
    assert (job.model_slug, job.canary_arm) == ("flux-dev", CanaryArm.CANDIDATE)
    assert canary_end(canary, status=CanaryStatus.STOPPED, reason="done")
    assert _submit(owner.user).canary_id is None
    async_to_sync(run_background_work)()


def test_the_admin_starts_shows_and_promotes_a_canary(seeded: None) -> None:
    from django.test import Client

    from tests.conftest import make_persona

    admin = make_persona("canary-admin", staff=True)
    client = Client()
    client.force_login(admin.user)
    schnell, dev = (AIModel.objects.get(slug=s) for s in ("flux-schnell", "flux-dev"))
    same = client.post("/admin/generation/canary/add/", {
        "model": schnell.pk, "candidate": schnell.pk, "share": "0.1",
        "max_failure_rate": "0.2", "min_samples": "20"})
    assert same.status_code == 200 and "must be another registry model" in same.content.decode()
    made = client.post("/admin/generation/canary/add/", {
        "model": schnell.pk, "candidate": dev.pk, "share": "0.1", "max_failure_rate": "0.2",
        "min_samples": "20", "decisions-TOTAL_FORMS": "0", "decisions-INITIAL_FORMS": "0"})
    assert made.status_code == 302, made.content.decode()[:2000]
    canary = Canary.objects.get()
    assert CanaryDecision.objects.get(canary=canary).action == "started"
    page = client.get(f"/admin/generation/canary/{canary.pk}/change/").content.decode()
    assert "Candidate (flux-dev)" in page and "Failure rate" in page
    client.post("/admin/generation/canary/", {"action": "promote",
                                              "_selected_action": [canary.pk]})
    canary.refresh_from_db()
    assert canary.status == CanaryStatus.PROMOTED
    assert canary.decisions.filter(action="promoted", by=admin.user).exists()
