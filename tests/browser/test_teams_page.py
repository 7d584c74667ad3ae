"""The teams page in a real browser: an owner adds a member and removes one; axe-core
on the page, and on the template form with its Team choice."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from brenia.accounts.models import Membership, Team, TeamRole
from templates_app.services import ad_template_seed
from tests.browser.conftest import assert_accessible, log_in
from tests.conftest import LiveBrenia, Persona, make_persona

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_an_owner_adds_and_removes_a_member(live_brenia: LiveBrenia, owner: Persona,
                                            outsider: Persona, page: Page) -> None:
    teammate = make_persona("teammate")
    team = Team.objects.create(name="Lemon Squad", slug="lemon-squad")
    Membership.objects.create(team=team, user=owner.user, role=TeamRole.OWNER)
    Membership.objects.create(team=team, user=teammate.user, role=TeamRole.MEMBER)
    ad_template_seed()

    log_in(page, live_brenia, owner)
    page.get_by_role("link", name="Teams").click()
    page.wait_for_url(f"{live_brenia.url}/account/teams/")
    assert_accessible(page)

    page.get_by_label("Username").fill("outsider")
    page.get_by_role("button", name="Add to Lemon Squad").click()
    page.get_by_text("outsider added to Lemon Squad as member.").wait_for()
    assert_accessible(page)
    page.get_by_role("button", name="Remove teammate from Lemon Squad").click()
    page.get_by_text("teammate removed from the team.").wait_for()
    assert list(team.memberships.order_by("user__username")
                .values_list("user__username", flat=True)) == ["outsider", "owner"]

    page.goto(f"{live_brenia.url}/templates/discount-banner/")
    assert page.get_by_label("Team").input_value() == "lemon-squad"
    assert_accessible(page, dark=False)
