"""The account pages: API keys (list, create one shown once, revoke) and teams.

It goes through the same services and selectors as ``/api/keys``, so a key made here is
exactly a key the API would make. The new key is rendered into the answer to the POST
that created it and kept nowhere else: there is no redirect to come back to it, so
reloading the page never shows it again.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from brenia.accounts import selectors, services
from brenia.accounts.models import DEFAULT_SCOPES, ApiKey, TeamRole
from brenia.errors import DomainError, FieldProblem, InvalidInput, NotFound

SCOPE_CHOICES = [
    ("read", "Read: list and fetch jobs, runs, images, templates and brand kits"),
    ("generate", "Generate: start, cancel and retry work, rate images"),
    ("admin", "Admin: manage API keys, the webhook secret and brand kits"),
]
EXPIRY_CHOICES = [("", "Never"), ("30", "In 30 days"), ("90", "In 90 days"),
                  ("365", "In a year")]


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=services.NAME_MAX,
                           help_text="To tell your keys apart, like “CI” or “Shop sync”.")
    scopes = forms.MultipleChoiceField(
        choices=SCOPE_CHOICES, widget=forms.CheckboxSelectMultiple, initial=DEFAULT_SCOPES,
        label="What the key may do",
        error_messages={"required": "Tick at least one thing the key may do."})
    expires_in_days = forms.ChoiceField(choices=EXPIRY_CHOICES, required=False,
                                        label="Expires")

    def __init__(self, data: Any = None) -> None:
        super().__init__(data, label_suffix="")

    def add_problems(self, exc: InvalidInput) -> None:
        for problem in exc.errors:
            field = problem.field if problem.field in self.fields else None
            self.add_error(field, problem.problem[:1].upper() + problem.problem[1:] + ".")


def _page(request: HttpRequest, *, form: ApiKeyForm, created: tuple[ApiKey, str] | None = None,
          status: int = 200) -> HttpResponse:
    keys = selectors.api_key_list_for_user(user=request.user)[:200]
    return render(request, "accounts/api_keys.html", {
        "form": form, "keys": keys, "created_key": created[0] if created else None,
        "raw_key": created[1] if created else "",
    }, status=status)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _page(request, form=ApiKeyForm())
    form = ApiKeyForm(request.POST)
    if form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        try:
            created = services.api_key_create(
                user=request.user, name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"], expires_in_days=int(days) if days else None)
        except InvalidInput as exc:
            form.add_problems(exc)
        else:
            return _page(request, form=ApiKeyForm(), created=created, status=201)
    return _page(request, form=form, status=422)


@login_required
@require_POST
def api_key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    try:
        key = selectors.api_key_get_for_user(user=request.user, key_id=key_id)
    except NotFound:
        raise Http404("There is no such API key.") from None
    services.api_key_revoke(key=key)
    messages.success(request, f"API key “{key.name}” ({key.prefix}…) revoked.")
    return redirect("api_keys")


# --- teams --------------------------------------------------------------------------------

class TeamMemberForm(forms.Form):
    username = forms.CharField(max_length=150, label="Username")
    role = forms.ChoiceField(choices=TeamRole.choices, initial=TeamRole.MEMBER, label="Role")

    def __init__(self, data: Any = None, *, team_id: int) -> None:
        super().__init__(data, prefix=f"team-{team_id}", label_suffix="")


@login_required
@require_http_methods(["GET", "HEAD"])
def teams(request: HttpRequest) -> HttpResponse:
    """Your teams, their members and roles; owners get the forms to change who is in."""
    memberships = list(selectors.membership_list_for_user(user=request.user))
    return render(request, "accounts/teams.html", {"teams": [
        {"team": m.team, "role": m.role, "is_owner": m.role == TeamRole.OWNER,
         "members": list(m.team.memberships.all()),
         "form": TeamMemberForm(team_id=m.team_id)} for m in memberships]})


def _team_action(request: HttpRequest, action: Any) -> HttpResponse:
    """Run a member change, telling the outcome (or the refusal) in a message: a team
    the user is not in is a 404, as everywhere."""
    try:
        done = action()
    except NotFound as exc:
        if exc.code == "team_not_found":
            raise Http404("There is no such team.") from None
        messages.error(request, exc.message)
    except InvalidInput as exc:
        messages.error(request, " ".join(f"{p.field.capitalize()} {p.problem}."
                                         for p in exc.errors) or exc.message)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("teams")


@login_required
@require_POST
def team_member_add(request: HttpRequest, team_id: int) -> HttpResponse:
    form = TeamMemberForm(request.POST, team_id=team_id)

    def add() -> str:
        if not form.is_valid():
            raise InvalidInput("The member has invalid fields.", errors=[
                FieldProblem(name, " ".join(str(e) for e in errors).lower().rstrip("."))
                for name, errors in form.errors.items()])
        membership, created = services.team_member_add(
            user=request.user, team_id=team_id, username=form.cleaned_data["username"],
            role=form.cleaned_data["role"])
        name, role = membership.user.username, membership.get_role_display().lower()
        return (f"{name} added to {membership.team.name} as {role}." if created
                else f"{name} is now {role} of {membership.team.name}.")

    return _team_action(request, add)


@login_required
@require_POST
def team_member_remove(request: HttpRequest, team_id: int) -> HttpResponse:
    username = request.POST.get("username", "")

    def remove() -> str:
        services.team_member_remove(user=request.user, team_id=team_id, username=username)
        return f"{username} removed from the team."

    return _team_action(request, remove)
