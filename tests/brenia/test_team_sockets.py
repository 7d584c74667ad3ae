"""Leaving a team ends what one sees of it live: open sockets drop its jobs at once."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from brenia.accounts.models import Membership, Team
from generation.jobs.events import anotify_job_event
from generation.models import JobStatus
from tests.brenia.test_teams import _socket, make_team, teammate  # noqa: F401 - fixture
from tests.conftest import Persona
from tests.generation.factories import make_job

pytestmark = pytest.mark.django_db(transaction=True)

DONE = JobStatus.COMPLETED


async def test_a_removed_member_stops_following_the_teams_job(
        owner: Persona, teammate: Persona) -> None:  # noqa: F811
    squad: Team = await database_sync_to_async(make_team)("lemon-squad", owner, teammate)
    # Finished jobs: nothing resumes them, so the only traffic is what the test sends.
    team_job = await database_sync_to_async(make_job)(owner, team=squad, status=DONE)
    own_job = await database_sync_to_async(make_job)(teammate, status=DONE)
    following = _socket(f"/ws/jobs/?job={team_job.pk}", teammate)
    mine = _socket(f"/ws/jobs/?job={own_job.pk}", teammate)
    for socket in (following, mine):
        assert (await socket.connect())[0]
        assert (await socket.receive_json_from())["type"] == "snapshot"

    removed = await database_sync_to_async(owner.api().delete)(
        f"/api/teams/lemon-squad/members/{teammate.user.username}",
        headers={"Authorization": f"Bearer {owner.key}"})
    assert removed.status_code == 204, removed.content

    gone = await following.receive_json_from(timeout=1)
    assert (gone["type"], gone["code"], gone["job_id"]) == \
        ("error", "job_not_found", str(team_job.pk))
    assert await following.receive_output(timeout=1) == {"type": "websocket.close",
                                                          "code": 4404}
    # The member's own job is still theirs: that socket stays and carries its events.
    await anotify_job_event(job=own_job, type="queued", payload={"position": 1})
    event = await mine.receive_json_from(timeout=1)
    assert event["job_id"] == str(own_job.pk) and event["position"] == 1
    await mine.disconnect()
    assert not await Membership.objects.filter(user=teammate.user).aexists()


@pytest.mark.django_db(transaction=False)
def test_removing_a_membership_anywhere_asks_sockets_to_check_again(
        owner: Persona, teammate: Persona,  # noqa: F811
        django_capture_on_commit_callbacks: Any) -> None:
    squad = make_team("lemon-squad", owner, teammate)
    with django_capture_on_commit_callbacks() as callbacks:
        squad.delete()  # the admin deleting the team takes every membership with it
    assert len(callbacks) == 2  # one recheck per member: owner and teammate
