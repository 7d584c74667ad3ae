"""The account routes: your API keys, and your teams.

Key routes and team member changes need the "admin" scope (or a browser session): a
key that can mint keys can do anything its owner can, and one that can add members
can share everything a team holds. Listing your teams needs only "read".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Path, Router, Schema, Status

from brenia.accounts import selectors, services
from brenia.accounts.auth import admin_auth, api_auth
from brenia.accounts.models import ApiKey, Membership
from brenia.errors import FieldProblem, InvalidInput
from brenia.schemas import ErrorOut, auth_user

router = Router(tags=["api keys"], auth=admin_auth)

# Not blank, and no NUL (no database stores it): refused in the schema, so the document
# and the API agree on every name.
NAME_PATTERN = r"^[^\x00]*[^\x00\s][^\x00]*$"
# RFC 3339 with an offset, as the pattern says exactly; whether the date is real and
# ahead (and within ten years) is the service's to say, a 422 naming expires_at.
DATE_TIME_PATTERN = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                     r"(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$")
LIST_MAX = 200

Scope = Literal["generate", "read", "admin"]


def _default_scopes() -> list[Scope]:
    return ["generate", "read"]


class ApiKeyIn(Schema):
    model_config = {"extra": "forbid"}

    name: str = Field(..., min_length=1, max_length=services.NAME_MAX, pattern=NAME_PATTERN)
    scopes: list[Scope] = Field(default_factory=_default_scopes, min_length=1, max_length=3,
                                description="What the key may do; generate and read if absent")
    expires_at: str | None = Field(None, max_length=40, pattern=DATE_TIME_PATTERN,
                                   description="When it stops working (RFC 3339, with an "
                                               "offset), within ten years")
    expires_in_days: int | None = Field(None, ge=1, le=services.MAX_LIFETIME.days,
                                        description="Or: days from now until it stops working")


class ApiKeyOut(Schema):
    id: int
    name: str
    prefix: str = Field(..., description="The key's first characters, to tell keys apart")
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(..., description="The key itself: shown this once, never again")


def api_key_state(key: ApiKey) -> dict[str, Any]:
    return {"id": key.pk, "name": key.name, "prefix": key.prefix, "scopes": list(key.scopes),
            "created_at": key.created_at, "expires_at": key.expires_at,
            "last_used_at": key.last_used_at, "revoked_at": key.revoked_at}


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # 2027-02-30: the pattern's shape, not a date
        raise InvalidInput("The API key has invalid fields.", errors=[
            FieldProblem("expires_at", "is not a real date and time")]) from None


@router.get("/keys", response={200: list[ApiKeyOut], 401: ErrorOut, 403: ErrorOut,
                               500: ErrorOut},
            summary="Your API keys, newest first (revoked ones too)")
def list_keys(request: HttpRequest) -> Any:
    keys = selectors.api_key_list_for_user(user=auth_user(request))[:LIST_MAX]
    return [api_key_state(key) for key in keys]


@router.post("/keys", response={201: ApiKeyCreatedOut, 400: ErrorOut, 401: ErrorOut,
                                403: ErrorOut, 413: ErrorOut, 422: ErrorOut, 500: ErrorOut},
             summary="Create an API key; the answer holds the key, shown this once")
def create_key(request: HttpRequest, payload: ApiKeyIn) -> Any:
    key, raw = services.api_key_create(
        user=auth_user(request), name=payload.name, scopes=payload.scopes,
        expires_at=_moment(payload.expires_at), expires_in_days=payload.expires_in_days)
    return Status(201, {**api_key_state(key), "key": raw})


@router.delete("/keys/{key_id}", response={204: None, 401: ErrorOut, 403: ErrorOut,
                                           404: ErrorOut, 500: ErrorOut},
               summary="Revoke one of your keys; sockets opened with it close")
def revoke_key(request: HttpRequest, key_id: str) -> Any:
    key = selectors.api_key_get_for_user(user=auth_user(request), key_id=key_id)
    services.api_key_revoke(key=key)
    return Status(204, None)


# --- teams --------------------------------------------------------------------------------

# Django's own username rule (UnicodeUsernameValidator), at its own length.
USERNAME_PATTERN = r"^[\w.@+-]+$"
# A team by slug (or id, all digits): what a Team's slug may hold, at its length.
TEAM_PATTERN = r"^[-a-zA-Z0-9_]+$"
TeamRef = Path(..., min_length=1, max_length=60, pattern=TEAM_PATTERN,
               description="The team's slug or id")
Role = Literal["owner", "member"]


class TeamMemberOut(Schema):
    username: str
    role: Role


class TeamOut(Schema):
    id: int
    slug: str
    name: str
    role: Role = Field(..., description="Your role in the team")
    members: list[TeamMemberOut] = Field(..., description="Everyone in it, by username")


class TeamMemberIn(Schema):
    model_config = {"extra": "forbid"}

    username: str = Field(..., min_length=1, max_length=150, pattern=USERNAME_PATTERN)
    role: Role = Field("member", description="owner: may manage the members too")


def team_state(membership: Membership) -> dict[str, Any]:
    """A team as one of its members sees it (``membership`` is theirs)."""
    team = membership.team
    return {"id": team.pk, "slug": team.slug, "name": team.name, "role": membership.role,
            "members": [{"username": m.user.username, "role": m.role}
                        for m in team.memberships.all()]}


def _team_state_of(user: Any, team_id: Any) -> dict[str, Any]:
    membership = selectors.membership_list_for_user(user=user).get(team_id=team_id)
    return team_state(membership)


@router.get("/teams", auth=api_auth, tags=["teams"],
            response={200: list[TeamOut], 401: ErrorOut, 403: ErrorOut, 500: ErrorOut},
            summary="Your teams, your role in each, and their members")
def list_teams(request: HttpRequest) -> Any:
    return [team_state(m)
            for m in selectors.membership_list_for_user(user=auth_user(request))[:LIST_MAX]]


@router.post("/teams/{team}/members", tags=["teams"],
             response={200: TeamOut, 201: TeamOut, 400: ErrorOut, 401: ErrorOut,
                       403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 413: ErrorOut,
                       422: ErrorOut, 500: ErrorOut},
             summary="Add a member to a team you own (201), or change a member's role (200)")
def add_team_member(request: HttpRequest, payload: TeamMemberIn,
                    team: str = TeamRef) -> Any:
    """403 ``not_team_owner`` for a team you are only a member of; 404 for any other team;
    409 ``last_owner`` for making its only owner a member; 422 for an unknown user."""
    user = auth_user(request)
    membership, created = services.team_member_add(
        user=user, team_id=team, username=payload.username, role=payload.role)
    return Status(201 if created else 200, _team_state_of(user, membership.team_id))


@router.delete("/teams/{team}/members/{username}", tags=["teams"],
               response={204: None, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut,
                         409: ErrorOut, 422: ErrorOut, 500: ErrorOut},
               summary="Remove a member from a team you own")
def remove_team_member(
    request: HttpRequest, team: str = TeamRef,
    username: str = Path(..., min_length=1, max_length=150, pattern=USERNAME_PATTERN),
) -> Any:
    """The work they filed under the team stays the team's. 409 ``last_owner`` for the
    team's only owner."""
    services.team_member_remove(user=auth_user(request), team_id=team, username=username)
    return Status(204, None)
