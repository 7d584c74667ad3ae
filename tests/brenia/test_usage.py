"""Usage reports: ``GET /api/usage``, the ``/usage/`` page and its CSV export.

Jobs are admitted and finished through the real seams (``job_admit``, ``job_finish``),
so the ledger entries reported on are the ones billing itself writes: a hold at
submit, a settle at the provider's cost on completion, a release otherwise.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from brenia.accounts.models import Membership, Team, TeamRole
from brenia.billing.models import LedgerEntry
from generation.jobs.lifecycle import StoredImage, job_finish
from generation.jobs.services import job_local_create
from generation.models import Job, JobStatus
from tests.brenia.billing_helpers import LOW_RES, admitted_job
from tests.conftest import Persona, make_persona

LA = ZoneInfo("America/Los_Angeles")


def finished(user: Any, cost: str, *, slug: str = "flux-schnell", images: int = 1,
             status: str = JobStatus.COMPLETED, **fields: Any) -> Job:
    """A job admitted (its hold), started and finished: completed with ``cost`` and
    ``images`` stored images (its settle), or failed/cancelled (its release)."""
    job = admitted_job(user, slug=slug, arguments=LOW_RES, **fields)
    job.transition(JobStatus.SUBMITTED)
    if status == JobStatus.COMPLETED:
        stored = [StoredImage(name=f"{job.pk}-{n}.png", sha256=f"{n:064d}", width=512,
                              height=512, format="png", bytes=100) for n in range(images)]
        job_finish(job=job, status=status, cost=Decimal(cost), images=stored)
    else:
        job_finish(job=job, status=status, error_code="x")
    return job


def settled_at(job: Job, moment: datetime) -> None:
    """Date the job's ledger entries to ``moment`` (as if it had finished then)."""
    LedgerEntry.objects.filter(job=job).update(created_at=moment)


def team_of(owner: Any, *members: Any, slug: str = "lemon") -> Team:
    team = Team.objects.create(name=slug.title(), slug=slug)
    Membership.objects.create(team=team, user=owner, role=TeamRole.OWNER)
    for member in members:
        Membership.objects.create(team=team, user=member, role=TeamRole.MEMBER)
    return team


def usage(persona: Persona, **query: str) -> Any:
    return persona.api().get_json("/api/usage", data=query)


@pytest.fixture
def teammate(db: Any, seeded: None) -> Persona:
    return make_persona("teammate")


@pytest.fixture
def staff(db: Any, seeded: None) -> Persona:
    return make_persona("staff", staff=True)


@pytest.fixture
def mixed(owner: Persona) -> dict[str, Job]:
    """Three completed jobs of the owner's (two models, one a template's step), one
    failed and one cancelled; one completed job of someone else's."""
    parent = job_local_create(user=owner.user, label="template:billboard", version="v1")
    jobs = {
        "a": finished(owner.user, "0.003", images=2),
        "b": finished(owner.user, "0.25", slug="flux-dev"),
        "step": finished(owner.user, "0.125", parent=parent),
        "failed": finished(owner.user, "9", status=JobStatus.FAILED),
        "cancelled": finished(owner.user, "7", status=JobStatus.CANCELLED),
    }
    finished(make_persona("stranger").user, "5")
    return jobs


def test_total_is_the_sum_of_the_completed_jobs_costs(owner: Persona,
                                                      mixed: dict[str, Job]) -> None:
    answer = usage(owner)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    completed = Job.objects.filter(user=owner.user, status=JobStatus.COMPLETED,
                                   model__isnull=False)
    assert Decimal(body["total"]["spend"]) == completed.aggregate(s=Sum("cost"))["s"] \
        == Decimal("0.378")
    assert body["total"] == {"currency": "USD", "spend": "0.378000", "jobs": 3, "images": 4}
    assert body["currency"] == "USD" and body["totals"] == [body["total"]]
    assert body["group_by"] == "model" and body["time_zone"] == "UTC"


@pytest.mark.parametrize(("group_by", "expected"), [
    ("model", [("flux-schnell", "0.128000", 2, 3), ("flux-dev", "0.250000", 1, 1)]),
    ("template", [("", "0.253000", 2, 3), ("billboard", "0.125000", 1, 1)]),
    ("user", [("owner", "0.378000", 3, 4)]),
    ("team", [("", "0.378000", 3, 4)]),
])
def test_each_grouping_splits_the_same_total(owner: Persona, mixed: dict[str, Job],
                                             group_by: str,
                                             expected: list[tuple[str, str, int, int]]) -> None:
    body = usage(owner, group_by=group_by).json()
    rows = [(r["key"], r["spend"], r["jobs"], r["images"]) for r in body["rows"]]
    assert sorted(rows) == sorted(expected)
    assert rows[0][1] == max(r[1] for r in rows)  # biggest spend first
    assert body["group_by"] == group_by


def test_grouping_by_day_lists_days_in_order(owner: Persona, mixed: dict[str, Job]) -> None:
    today = timezone.now().date()
    settled_at(mixed["b"], timezone.now() - timedelta(days=1))
    body = usage(owner, group_by="day", **{"from": str(today - timedelta(days=1)),
                                           "to": str(today)}).json()
    assert [(r["key"], r["spend"], r["jobs"]) for r in body["rows"]] == [
        (str(today - timedelta(days=1)), "0.250000", 1), (str(today), "0.128000", 2)]


def test_a_day_is_the_viewers_day_not_utcs(owner: Persona) -> None:
    """23:30 in Los Angeles on 1 December is 07:30 UTC on 2 December: it counts on the
    1st for a viewer there."""
    owner.user.time_zone = "America/Los_Angeles"
    owner.user.save(update_fields=["time_zone"])
    late = finished(owner.user, "0.5")
    settled_at(late, datetime(2026, 12, 1, 23, 30, tzinfo=LA))
    body = usage(owner, group_by="day", **{"from": "2026-12-01", "to": "2026-12-02"}).json()
    assert [(r["key"], r["spend"]) for r in body["rows"]] == [("2026-12-01", "0.500000")]
    assert body["time_zone"] == "America/Los_Angeles"
    assert usage(owner, **{"from": "2026-12-02", "to": "2026-12-02"}).json()["total"][
        "jobs"] == 0
    assert usage(owner, **{"from": "2026-12-01", "to": "2026-12-01"}).json()["total"][
        "jobs"] == 1


def test_by_default_the_report_is_this_month_so_far(owner: Persona) -> None:
    today = timezone.now().date()
    body = usage(owner).json()
    assert (body["from"], body["to"]) == (str(today.replace(day=1)), str(today))


def test_a_team_owner_reads_the_teams_usage_and_nobody_else_does(
        owner: Persona, teammate: Persona, outsider: Persona) -> None:
    team = team_of(owner.user, teammate.user)
    finished(teammate.user, "0.2", team=team)
    finished(owner.user, "0.1", team=team)
    finished(teammate.user, "3")  # not filed under the team
    body = usage(owner, team=team.slug, group_by="user").json()
    assert sorted((r["key"], r["spend"]) for r in body["rows"]) == [
        ("owner", "0.100000"), ("teammate", "0.200000")]
    assert body["total"]["spend"] == "0.300000"
    for persona in (teammate, outsider):
        refused = usage(persona, team=team.slug)
        assert refused.status_code == 404
        assert refused.json()["code"] == "team_not_found"
    assert usage(owner, team="no-such-team").status_code == 404


def test_everyones_usage_is_for_staff_only(owner: Persona, staff: Persona,
                                           mixed: dict[str, Job]) -> None:
    refused = usage(owner, all="true")
    assert refused.status_code == 403
    assert refused.json()["code"] == "staff_only"
    assert refused.json()["errors"] == [{"field": "all", "problem": "is for staff only"}]
    body = usage(staff, all="true", group_by="user").json()
    assert sorted((r["key"], r["spend"]) for r in body["rows"]) == [
        ("owner", "0.378000"), ("stranger", "5.000000")]


def test_staff_read_any_one_teams_usage(owner: Persona, staff: Persona) -> None:
    team = team_of(owner.user)
    finished(owner.user, "0.2", team=team)
    finished(owner.user, "0.4")
    assert usage(staff, all="true", team=team.slug).json()["total"]["spend"] == "0.200000"
    assert usage(staff, team=team.slug).status_code == 404  # not theirs, without all
    assert usage(staff, all="true", team="no-such-team").status_code == 404


@pytest.mark.parametrize(("query", "field"), [
    ({"from": "2026-03-02", "to": "2026-03-01"}, "from"),
    ({"from": "2027-02-30", "to": "2027-03-01"}, "from"),
    ({"from": "2026-01-01", "to": "2027-01-02"}, "to"),
    ({"from": "2026-1-1"}, "from"),
    ({"to": "yesterday"}, "to"),
    ({"group_by": "colour"}, "group_by"),
    ({"team": "no spaces"}, "team"),
])
def test_a_bad_period_or_grouping_is_a_422_naming_the_field(owner: Persona,
                                                            query: dict[str, str],
                                                            field: str) -> None:
    refused = usage(owner, **query)
    assert refused.status_code == 422, refused.content
    assert [e["field"] for e in refused.json()["errors"]] == [field]


def test_a_year_and_a_leap_day_is_the_longest_period(owner: Persona) -> None:
    assert usage(owner, **{"from": "2024-01-01", "to": "2024-12-31"}).status_code == 200
    assert usage(owner, **{"from": "2024-01-01", "to": "2025-01-01"}).status_code == 422


def test_a_key_without_read_scope_is_refused(owner: Persona) -> None:
    from brenia.accounts.services import api_key_create

    _, key = api_key_create(user=owner.user, scopes=["generate"])
    refused = Client().get("/api/usage", headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_scope"


# --- the page and the CSV ------------------------------------------------------------------

def browser_of(persona: Persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def test_the_csv_has_a_header_and_the_grouped_rows(owner: Persona,
                                                   mixed: dict[str, Job]) -> None:
    today = timezone.now().date()
    query = {"from": str(today.replace(day=1)), "to": str(today), "group_by": "model"}
    answer = browser_of(owner).get("/usage/export.csv", query)
    assert answer.status_code == 200
    assert answer["Content-Type"] == "text/csv; charset=utf-8"
    assert answer["Content-Disposition"] == (
        f'attachment; filename="brenia-usage-{query["from"]}-to-{query["to"]}-by-model.csv"')
    rows = list(csv.reader(io.StringIO(answer.content.decode())))
    assert rows == [["model", "currency", "spend", "jobs", "images"],
                    ["flux-dev", "USD", "0.250000", "1", "1"],
                    ["flux-schnell", "USD", "0.128000", "2", "3"]]


def test_the_csv_never_starts_a_cell_with_a_formula(owner: Persona, staff: Persona) -> None:
    sly = make_persona("=cmd")
    finished(sly.user, "1")
    answer = browser_of(staff).get("/usage/export.csv", {"whose": "all", "group_by": "user"})
    rows = list(csv.reader(io.StringIO(answer.content.decode())))
    assert rows[1][0] == "'=cmd"


def test_the_csv_of_a_bad_query_is_a_422(owner: Persona) -> None:
    answer = browser_of(owner).get("/usage/export.csv", {"from": "2026-03-02",
                                                         "to": "2026-03-01"})
    assert answer.status_code == 422
    assert "must not be after to" in answer.content.decode()


def test_the_page_of_a_user_without_usage_says_so_without_a_chart(outsider: Persona) -> None:
    page = browser_of(outsider).get("/usage/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "No spend in this period" in html
    assert "<svg" not in html and "Download CSV" not in html
    assert 'aria-current="page">Usage</a>' in html


def test_the_chart_has_one_bar_segment_per_day_and_model(owner: Persona,
                                                         mixed: dict[str, Job]) -> None:
    today = timezone.now().date()
    yesterday = today - timedelta(days=1)
    settled_at(mixed["b"], timezone.now() - timedelta(days=1))
    finished(owner.user, "0.5", slug="flux-dev")
    html = browser_of(owner).get("/usage/", {"from": str(yesterday), "to": str(today)}) \
        .content.decode()
    segments = re.findall(r'<rect class="series-\d" data-day="([\d-]+)" data-model="([\w-]+)"',
                          html)
    assert sorted(segments) == sorted([(str(yesterday), "flux-dev"), (str(today), "flux-dev"),
                                       (str(today), "flux-schnell")])
    svg = html[html.index("<svg"):html.index("</svg>")]
    assert 'role="img"' in svg and "<title id=" in svg and "<desc id=" in svg
    # Its legend, and the same figures as a table.
    assert re.search(r'class="legend-key series-0"[^>]*></span>flux-dev', html)
    table = html[html.index('class="chart-data"'):]
    assert f"<th scope=\"row\">{today:%Y-%m-%d}</th>" in table
    assert "0.750000" in html  # flux-dev in all: 0.25 + 0.5
    assert "Download CSV" in html


def test_the_page_offers_teams_the_user_owns_and_everyone_to_staff_only(
        owner: Persona, teammate: Persona, staff: Persona) -> None:
    team = team_of(owner.user, teammate.user)
    finished(teammate.user, "0.2", team=team)
    html = browser_of(owner).get("/usage/", {"whose": f"team:{team.slug}"}).content.decode()
    assert f'value="team:{team.slug}" selected' in html and "0.200000" in html
    assert 'value="all"' not in html
    refused = browser_of(teammate).get("/usage/", {"whose": f"team:{team.slug}"})
    assert refused.status_code == 422
    assert browser_of(owner).get("/usage/", {"whose": "all"}).status_code == 422
    assert 'value="all"' in browser_of(staff).get("/usage/").content.decode()


def test_the_page_names_a_bad_field(owner: Persona) -> None:
    page = browser_of(owner).get("/usage/", {"from": "2026-03-02", "to": "2026-03-01"})
    assert page.status_code == 422
    assert "From must not be after to." in page.content.decode()


def test_the_page_shows_the_period_it_used(owner: Persona) -> None:
    today = timezone.now().date()
    html = browser_of(owner).get("/usage/").content.decode()
    assert f'value="{today.replace(day=1):%Y-%m-%d}"' in html
    assert f'value="{today:%Y-%m-%d}"' in html


def test_the_ledger_admin_links_to_the_usage_page(staff: Persona) -> None:
    html = browser_of(staff).get("/admin/billing/ledgerentry/").content.decode()
    assert 'href="/usage/?whose=all"' in html

