"""Teams: work filed under a team is shared with its members and nobody else; its owners
manage who is in it (API and page), and a team always keeps an owner.

Personas: ``owner`` owns the team "Lemon Squad", ``teammate`` is a member of it, and
``outsider`` belongs to no team.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from brenia.accounts.models import Membership, Team, TeamRole
from brenia.accounts.services import api_key_create, team_for_submission
from brenia.asgi import application
from brenia.errors import InvalidInput
from generation.jobs.events import anotify_job_event
from generation.models import Image, Job
from templates_app.brands import brand_kit_save
from templates_app.models import BrandKit, RunStatus, TemplateRun
from tests.conftest import ApiClient, Persona, make_persona
from tests.generation.factories import make_job
from tests.templates_app.test_runs import (  # noqa: F401 - fixtures
    emulators,
    start,
    templates,
    variables_for,
)

GENERATE = "/api/images/generate"
PROMPT = {"model": "flux-schnell", "inputs": {"prompt": "a lemonade stand"}}


def make_team(slug: str, owner: Persona, *members: Persona) -> Team:
    team = Team.objects.create(name=slug.replace("-", " ").title(), slug=slug)
    Membership.objects.create(team=team, user=owner.user, role=TeamRole.OWNER)
    for member in members:
        Membership.objects.create(team=team, user=member.user, role=TeamRole.MEMBER)
    return team


@pytest.fixture
def teammate(db: Any, seeded: None) -> Persona:
    return make_persona("teammate")


@pytest.fixture
def squad(owner: Persona, teammate: Persona) -> Team:
    return make_team("lemon-squad", owner, teammate)


def browser_for(persona: Persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def scoped(persona: Persona, *scopes: str) -> ApiClient:
    _, raw = api_key_create(user=persona.user, name="scoped", scopes=list(scopes))
    return ApiClient(raw)


# --- where work is filed ------------------------------------------------------------------

def test_team_for_submission_reads_absent_empty_and_named(owner: Persona, outsider: Persona,
                                                          squad: Team) -> None:
    assert team_for_submission(user=owner.user, team=None) == squad  # the only team
    assert team_for_submission(user=owner.user, team="") is None
    assert team_for_submission(user=owner.user, team="lemon-squad") == squad
    assert team_for_submission(user=owner.user, team=str(squad.pk)) == squad
    assert team_for_submission(user=outsider.user, team=None) is None
    for name in ("lemon-squad", "no-such-team", str(squad.pk)):
        with pytest.raises(InvalidInput) as refused:
            team_for_submission(user=outsider.user, team=name)
        assert [e.as_dict() for e in refused.value.errors] == [
            {"field": "team", "problem": "is not a team you belong to"}]


def test_with_two_teams_an_absent_team_files_the_work_as_personal(owner: Persona,
                                                                 squad: Team) -> None:
    make_team("orange-crew", owner)
    assert team_for_submission(user=owner.user, team=None) is None


def test_a_job_with_team_omitted_is_filed_under_the_only_team(owner: Persona,
                                                              teammate: Persona,
                                                              squad: Team) -> None:
    accepted = owner.api().post_json(GENERATE, PROMPT)
    assert accepted.status_code == 202, accepted.json()
    job = Job.objects.get(pk=accepted.json()["id"])
    assert job.team == squad
    seen = teammate.api().get_json(f"/api/jobs/{job.pk}")
    assert seen.status_code == 200 and seen.json()["team"] == "lemon-squad"
    assert str(job.pk) in [j["id"] for j in teammate.api().get_json("/api/jobs").json()["items"]]


def test_an_empty_team_keeps_the_job_personal_and_hidden_from_teammates(
        owner: Persona, teammate: Persona, squad: Team) -> None:
    accepted = owner.api().post_json(GENERATE, {**PROMPT, "team": ""})
    job = Job.objects.get(pk=accepted.json()["id"])
    assert job.team is None
    assert owner.api().get_json(f"/api/jobs/{job.pk}").json()["team"] is None
    assert teammate.api().get_json(f"/api/jobs/{job.pk}").status_code == 404
    assert teammate.api().get_json("/api/jobs").json()["items"] == []


def test_an_unknown_team_is_a_422_naming_team_and_creates_nothing(
        owner: Persona, outsider: Persona, squad: Team) -> None:
    for persona, team in ((owner, "orange-crew"), (outsider, "lemon-squad")):
        for path in (GENERATE, GENERATE + "?dry_run=true"):
            refused = persona.api().post_json(path, {**PROMPT, "team": team})
            assert refused.status_code == 422, refused.json()
            assert refused.json()["errors"] == [
                {"field": "team", "problem": "is not a team you belong to"}]
    assert not Job.objects.exists()


def test_a_team_that_is_no_slug_is_refused_by_the_schema(owner: Persona) -> None:
    refused = owner.api().post_json(GENERATE, {**PROMPT, "team": "lemon squad"})
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["team"]
    assert not Job.objects.exists()


def test_the_document_describes_team_on_submissions_and_states(owner: Persona) -> None:
    document = owner.api().get_json("/api/openapi.json").json()
    schemas = document["components"]["schemas"]
    for name in ("RunIn", "BrandKitIn", "Generate_flux_schnell"):
        team = schemas[name]["properties"]["team"]
        text = next(option for option in team["anyOf"] if option.get("type") == "string")
        assert text["maxLength"] == 60 and text["pattern"] == "^[-a-zA-Z0-9_]*$", name
    for name in ("JobOut", "RunOut", "BrandKitOut"):
        assert "team" in schemas[name]["required"], name
    generate = document["paths"]["/api/images/generate"]["post"]
    assert "422" in generate["responses"]


# --- template runs --------------------------------------------------------------------------

def test_a_run_started_for_a_team_is_shared_and_a_personal_one_is_not(
        owner: Persona, teammate: Persona, outsider: Persona, squad: Team,
        templates: None) -> None:  # noqa: F811
    body = {"variables": variables_for("discount-banner"), "formats": ["social-square"]}
    shared = owner.api().post_json("/api/templates/discount-banner/runs", body)
    assert shared.status_code == 202, shared.json()
    assert shared.json()["team"] == "lemon-squad"
    personal = owner.api().post_json("/api/templates/discount-banner/runs",
                                     {**body, "team": ""})
    assert personal.json()["team"] is None
    listed = [r["id"] for r in teammate.api().get_json("/api/runs").json()["items"]]
    assert listed == [shared.json()["id"]]
    assert teammate.api().get_json(f"/api/runs/{personal.json()['id']}").status_code == 404
    assert outsider.api().get_json(f"/api/runs/{shared.json()['id']}").status_code == 404
    refused = outsider.api().post_json("/api/templates/discount-banner/runs",
                                       {**body, "team": "lemon-squad"})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "team"
    assert TemplateRun.objects.count() == 2


@pytest.mark.django_db(transaction=True)
async def test_a_finished_team_run_is_the_teams_and_nobody_elses(
        owner: Persona, teammate: Persona, outsider: Persona, squad: Team,
        templates: None, emulators: Any) -> None:  # noqa: F811
    run = await start(owner, "discount-banner", formats=["social-square"], team=squad)
    assert run.status == RunStatus.COMPLETED
    steps = [job async for job in Job.objects.filter(parent=run.job)]
    assert steps and all(job.team_id == squad.pk for job in steps)
    assert run.job.team_id == squad.pk
    image = await Image.objects.filter(run_output__run=run).afirst()
    assert image is not None

    member_api = teammate.api()
    got = await sync_to_async(member_api.get_json)(f"/api/runs/{run.pk}")
    assert got.status_code == 200 and got.json()["team"] == "lemon-squad"
    content = await sync_to_async(member_api.get_json)(f"/api/images/{image.pk}/content")
    assert content.status_code == 200
    member = await sync_to_async(browser_for)(teammate)
    page = await sync_to_async(member.get)(f"/runs/{run.pk}/")
    assert page.status_code == 200 and "Team Lemon Squad" in page.content.decode()
    archive = await sync_to_async(member.get)(f"/runs/{run.pk}/download.zip")
    assert archive.status_code == 200
    body = b"".join([chunk async for chunk in archive.streaming_content])  # type: ignore[union-attr]
    assert len(zipfile.ZipFile(io.BytesIO(body)).namelist()) == 1
    history = (await sync_to_async(member.get)("/images/")).content.decode()
    assert f"/images/{image.pk}/thumbnail" in history and "Team Lemon Squad" in history

    stranger_api = outsider.api()
    for path in (f"/api/runs/{run.pk}", f"/api/jobs/{run.job_id}",
                 f"/api/images/{image.pk}/content"):
        assert (await sync_to_async(stranger_api.get_json)(path)).status_code == 404, path
    stranger = await sync_to_async(browser_for)(outsider)
    for url in (f"/runs/{run.pk}/", f"/runs/{run.pk}/download.zip",
                f"/images/{image.pk}/thumbnail", f"/jobs/{run.job_id}/"):
        assert (await sync_to_async(stranger.get)(url)).status_code == 404, url
    assert "/thumbnail" not in (await sync_to_async(stranger.get)("/images/")).content.decode()


# --- live events ----------------------------------------------------------------------------

def _socket(path: str, persona: Persona) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, path, headers=[
        (b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"),
        (b"authorization", f"Bearer {persona.key}".encode())])


@pytest.mark.django_db(transaction=True)
async def test_a_teammate_follows_a_team_job_live_and_an_outsider_cannot(
        owner: Persona, teammate: Persona, outsider: Persona, squad: Team) -> None:
    job = await database_sync_to_async(make_job)(owner, team=squad)
    member = _socket(f"/ws/jobs/?job={job.pk}", teammate)
    assert (await member.connect())[0]
    snapshot = await member.receive_json_from()
    assert snapshot["type"] == "snapshot" and snapshot["job"]["team"] == "lemon-squad"
    await anotify_job_event(job=job, type="queued", payload={"position": 2})
    event = await member.receive_json_from()
    assert event["job_id"] == str(job.pk) and event["position"] == 2
    await member.disconnect()

    stranger = _socket(f"/ws/jobs/?job={job.pk}", outsider)
    assert (await stranger.connect())[0]
    assert (await stranger.receive_json_from())["code"] == "job_not_found"
    assert await stranger.receive_output() == {"type": "websocket.close", "code": 4404}


# --- brand kits -----------------------------------------------------------------------------

def test_a_team_kit_is_usable_by_members_and_editable_only_by_its_owners(
        owner: Persona, teammate: Persona, outsider: Persona, squad: Team,
        templates: None) -> None:  # noqa: F811
    created = teammate.api().post_json("/api/brand-kits", {"name": "Squad kit",
                                                           "palette": ["#c2410c"]})
    assert created.status_code == 201, created.json()
    assert created.json()["team"] == "lemon-squad"
    kit = BrandKit.objects.get(pk=created.json()["id"])
    own = brand_kit_save(owner=teammate.user, name="Mine", palette=[])  # no team: personal
    kit_by_owner = brand_kit_save(owner=owner.user, name="Owner's", palette=[], team=squad)

    listed = {k["name"] for k in owner.api().get_json("/api/brand-kits").json()}
    assert listed == {"Squad kit", "Owner's"}
    assert outsider.api().get_json(f"/api/brand-kits/{kit.pk}").status_code == 404
    quote = owner.api().post_json("/api/templates/discount-banner/runs?dry_run=true", {
        "variables": variables_for("discount-banner"), "formats": ["social-square"],
        "brand_kit": kit.pk})
    assert quote.status_code == 200, quote.json()

    member = browser_for(teammate)
    assert member.get(f"/brand-kits/{kit.pk}/").status_code == 200  # their own kit
    assert member.get(f"/brand-kits/{kit_by_owner.pk}/").status_code == 404
    assert member.post(f"/brand-kits/{kit_by_owner.pk}/delete",
                       {"delete-confirm": "on"}).status_code == 404
    page = member.get("/brand-kits/").content.decode()
    assert f"/brand-kits/{kit_by_owner.pk}/" not in page and "Team Lemon Squad" in page
    team_owner = browser_for(owner)
    assert team_owner.get(f"/brand-kits/{kit.pk}/").status_code == 200
    assert team_owner.get(f"/brand-kits/{own.pk}/").status_code == 404
    deleted = team_owner.post(f"/brand-kits/{kit.pk}/delete", {"delete-confirm": "on"})
    assert deleted.status_code == 302 and not BrandKit.objects.filter(pk=kit.pk).exists()


def test_the_brand_kit_form_offers_the_team_and_files_the_kit_as_chosen(
        owner: Persona, outsider: Persona, squad: Team) -> None:
    browser = browser_for(owner)
    form = browser.get("/brand-kits/new").content.decode()
    assert 'name="team"' in form and "Just me" in form
    assert '<option value="lemon-squad" selected>' in form
    made = browser.post("/brand-kits/new", {"name": "Kept", "heading_font": "inter",
                                            "body_font": "inter", "team": ""})
    assert made.status_code == 302
    assert BrandKit.objects.get(name="Kept").team is None
    browser.post("/brand-kits/new", {"name": "Shared", "heading_font": "inter",
                                     "body_font": "inter", "team": "lemon-squad"})
    assert BrandKit.objects.get(name="Shared").team == squad
    assert 'name="team"' not in browser_for(outsider).get("/brand-kits/new").content.decode()


# --- the forms' team choice -----------------------------------------------------------------

def test_the_template_form_offers_the_team_and_just_me(
        owner: Persona, outsider: Persona, squad: Team, templates: None) -> None:  # noqa: F811
    page = browser_for(owner).get("/templates/discount-banner/").content.decode()
    assert 'name="run-team"' in page and "Just me" in page
    assert '<option value="lemon-squad" selected>' in page
    assert 'name="run-team"' not in browser_for(outsider).get(
        "/templates/discount-banner/").content.decode()


def test_a_run_started_from_the_form_goes_where_the_team_choice_says(
        owner: Persona, squad: Team, templates: None) -> None:  # noqa: F811
    form = {**variables_for("discount-banner"), "run-formats": ["social-square"],
            "run-output_format": "png"}
    browser = browser_for(owner)
    shared = browser.post("/templates/discount-banner/", {
        **form, "run-team": "lemon-squad", "run-idempotency_key": "a"})
    personal = browser.post("/templates/discount-banner/", {
        **form, "run-team": "", "run-idempotency_key": "b"})
    assert shared.status_code == personal.status_code == 302
    runs = {run.job.idempotency_key or str(run.pk): run for run in TemplateRun.objects.all()}
    teams = sorted(str(run.team_id) for run in runs.values())
    assert teams == sorted([str(squad.pk), "None"])
    page = browser.get(shared["Location"]).content.decode()
    assert "Team Lemon Squad" in page


def test_the_playground_form_offers_the_team_and_files_the_job_as_chosen(
        owner: Persona, outsider: Persona, teammate: Persona, squad: Team) -> None:
    browser = browser_for(owner)
    page = browser.get("/playground/flux-schnell/").content.decode()
    assert 'name="job-team"' in page and "Just me" in page
    personal = browser.post("/playground/flux-schnell/", {"prompt": "mine",
                                                          "job-team": ""})
    shared = browser.post("/playground/flux-schnell/", {"prompt": "ours",
                                                        "job-team": "lemon-squad"})
    assert personal.status_code == shared.status_code == 302
    assert Job.objects.get(inputs__prompt="mine").team is None
    job = Job.objects.get(inputs__prompt="ours")
    assert job.team == squad
    assert "Team Lemon Squad" in browser_for(teammate).get(f"/jobs/{job.pk}/").content.decode()
    assert 'name="job-team"' not in browser_for(outsider).get(
        "/playground/flux-schnell/").content.decode()


# --- the teams API --------------------------------------------------------------------------

def test_teams_are_listed_with_role_and_members_to_a_read_key(
        owner: Persona, teammate: Persona, outsider: Persona, squad: Team) -> None:
    listed = scoped(teammate, "read").get_json("/api/teams")
    assert listed.status_code == 200
    assert listed.json() == [{"id": squad.pk, "slug": "lemon-squad", "name": "Lemon Squad",
                              "role": "member", "members": [
                                  {"username": "owner", "role": "owner"},
                                  {"username": "teammate", "role": "member"}]}]
    assert outsider.api().get_json("/api/teams").json() == []


def test_an_owner_adds_a_member_and_changes_their_role(owner: Persona, outsider: Persona,
                                                       squad: Team) -> None:
    added = owner.api().post_json("/api/teams/lemon-squad/members", {"username": "outsider"})
    assert added.status_code == 201, added.json()
    assert {"username": "outsider", "role": "member"} in added.json()["members"]
    promoted = owner.api().post_json(f"/api/teams/{squad.pk}/members",
                                     {"username": "outsider", "role": "owner"})
    assert promoted.status_code == 200
    assert {"username": "outsider", "role": "owner"} in promoted.json()["members"]
    assert outsider.api().get_json("/api/teams").json()[0]["role"] == "owner"


def test_member_changes_need_an_owner_of_the_team(owner: Persona, teammate: Persona,
                                                  outsider: Persona, squad: Team) -> None:
    by_member = teammate.api().post_json("/api/teams/lemon-squad/members",
                                         {"username": "outsider"})
    assert by_member.status_code == 403 and by_member.json()["code"] == "not_team_owner"
    removal = teammate.api().delete("/api/teams/lemon-squad/members/owner",
                                    headers={"Authorization": f"Bearer {teammate.key}"})
    assert removal.status_code == 403 and removal.json()["code"] == "not_team_owner"
    by_outsider = outsider.api().post_json("/api/teams/lemon-squad/members",
                                           {"username": "outsider"})
    assert by_outsider.status_code == 404 and by_outsider.json()["code"] == "team_not_found"
    unknown = owner.api().post_json("/api/teams/lemon-squad/members", {"username": "nobody"})
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == [{"field": "username", "problem": "is not a Brenia user"}]
    without_admin = scoped(owner, "read", "generate").post_json(
        "/api/teams/lemon-squad/members", {"username": "outsider"})
    assert without_admin.status_code == 403
    assert without_admin.json()["code"] == "insufficient_scope"
    assert Membership.objects.filter(team=squad).count() == 2


def test_a_removed_member_no_longer_sees_the_teams_work(owner: Persona, teammate: Persona,
                                                        squad: Team) -> None:
    job = make_job(owner, team=squad)
    assert teammate.api().get_json(f"/api/jobs/{job.pk}").status_code == 200
    api = owner.api()
    removed = api.delete("/api/teams/lemon-squad/members/teammate",
                         headers={"Authorization": f"Bearer {owner.key}"})
    assert removed.status_code == 204
    assert teammate.api().get_json(f"/api/jobs/{job.pk}").status_code == 404
    again = api.delete("/api/teams/lemon-squad/members/teammate",
                       headers={"Authorization": f"Bearer {owner.key}"})
    assert again.status_code == 404 and again.json()["code"] == "member_not_found"


def test_a_team_always_keeps_an_owner(owner: Persona, teammate: Persona, squad: Team) -> None:
    api = owner.api()
    auth = {"Authorization": f"Bearer {owner.key}"}
    leaving = api.delete("/api/teams/lemon-squad/members/owner", headers=auth)
    assert leaving.status_code == 409 and leaving.json()["code"] == "last_owner"
    demoted = api.post_json("/api/teams/lemon-squad/members",
                            {"username": "owner", "role": "member"})
    assert demoted.status_code == 409 and demoted.json()["code"] == "last_owner"
    api.post_json("/api/teams/lemon-squad/members", {"username": "teammate", "role": "owner"})
    assert api.delete("/api/teams/lemon-squad/members/owner", headers=auth).status_code == 204
    assert list(Membership.objects.filter(team=squad).values_list("user__username", "role")) \
        == [("teammate", "owner")]


# --- the teams page -------------------------------------------------------------------------

def test_the_teams_page_lists_members_and_lets_owners_manage_them(
        owner: Persona, teammate: Persona, outsider: Persona, squad: Team) -> None:
    browser = browser_for(owner)
    page = browser.get("/account/teams/").content.decode()
    assert "Lemon Squad" in page and "teammate" in page and 'href="/account/teams/"' in page
    assert f'action="/account/teams/{squad.pk}/members"' in page
    added = browser.post(f"/account/teams/{squad.pk}/members",
                         {f"team-{squad.pk}-username": "outsider",
                          f"team-{squad.pk}-role": "member"}, follow=True)
    assert "outsider added to Lemon Squad as member." in added.content.decode()
    assert Membership.objects.filter(team=squad, user=outsider.user).exists()
    unknown = browser.post(f"/account/teams/{squad.pk}/members",
                           {f"team-{squad.pk}-username": "nobody",
                            f"team-{squad.pk}-role": "member"}, follow=True)
    assert "Username is not a Brenia user." in unknown.content.decode()
    last = browser.post(f"/account/teams/{squad.pk}/members/remove", {"username": "owner"},
                        follow=True)
    assert "at least one owner" in last.content.decode()
    removed = browser.post(f"/account/teams/{squad.pk}/members/remove",
                           {"username": "outsider"}, follow=True)
    assert "outsider removed from the team." in removed.content.decode()
    assert not Membership.objects.filter(team=squad, user=outsider.user).exists()

    member = browser_for(teammate)
    seen = member.get("/account/teams/").content.decode()
    assert "Lemon Squad" in seen and "/members/remove" not in seen
    refused = member.post(f"/account/teams/{squad.pk}/members/remove", {"username": "owner"},
                          follow=True)
    assert "owners may manage its members." in refused.content.decode()
    stranger = browser_for(outsider)
    assert stranger.post(f"/account/teams/{squad.pk}/members/remove",
                         {"username": "teammate"}).status_code == 404
    assert "You are not in a team" in stranger.get("/account/teams/").content.decode()
    assert Membership.objects.filter(team=squad).count() == 2
