"""The "Team" choice the pages offer wherever work is submitted (runs, jobs, brand kits).

Only shown to people in at least one team. It preselects the same team the API files
work under when ``team`` is left out (the user's only team, if exactly one), and always
offers "Just me", which the service reads as an explicit "" (personal).
"""

from __future__ import annotations

from typing import Any

from django import forms

from brenia.accounts.models import Team
from brenia.accounts.selectors import team_default_for_user, team_list_for_user
from brenia.accounts.services import team_for_submission

JUST_ME = ("", "Just me")


def team_field(user: Any) -> forms.ChoiceField | None:
    """The choice of the user's teams, or None when they are in none."""
    teams = list(team_list_for_user(user=user))
    if not teams:
        return None
    default = team_default_for_user(user=user)
    return forms.ChoiceField(
        choices=[JUST_ME, *((team.slug, team.name) for team in teams)], required=False,
        label="Team", initial=default.slug if default else "",
        help_text="Everyone in the team sees it; “Just me” keeps it yours alone.")


def add_team_field(form: forms.Form, user: Any) -> None:
    field = team_field(user)
    if field is not None:
        form.fields["team"] = field


def team_chosen(form: forms.Form, user: Any) -> Team | None:
    """The team a valid ``form`` files work under. Without the field (no teams), what the
    API would choose; with it, "" is "Just me"."""
    if "team" not in form.fields:
        return team_for_submission(user=user, team=None)
    return team_for_submission(user=user, team=form.cleaned_data.get("team") or "")
