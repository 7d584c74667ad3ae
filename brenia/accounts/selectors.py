"""Reads on accounts-level rows, each scoped to its owner."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from brenia.accounts.models import ApiKey, Membership, Team, TeamRole, User
from brenia.errors import NotFound


def team_ids_of(user: Any) -> QuerySet[Membership, Any]:
    """The ids of the user's teams, as a subquery (``team__in=team_ids_of(user)``)."""
    return Membership.objects.filter(user=user).values("team_id")


def visible_to(user: Any, *, owner: str = "user", team: str = "team") -> Q:
    """Rows the user may see: their own (by ``owner``) and their teams' (by ``team``).

    The one rule of sharing, used by every "for user" read: a member of a team sees
    what is filed under it; anybody else is told it does not exist.
    """
    return Q(**{owner: user}) | Q(**{f"{team}__in": team_ids_of(user)})


def team_list_for_user(*, user: Any) -> QuerySet[Team]:
    return Team.objects.filter(memberships__user=user).order_by("name", "pk")


def team_get_for_user(*, user: Any, team_id: Any, role: str | None = None) -> Team:
    """One of the user's teams (by id or slug); with ``role="owner"``, only if they
    own it. Any other team is not found."""
    teams = team_list_for_user(user=user)
    if role == TeamRole.OWNER:
        teams = teams.filter(memberships__user=user, memberships__role=TeamRole.OWNER)
    text = str(team_id)
    team = (teams.filter(pk=int(text)) if text.isdigit() and int(text) < 2**63
            else teams.filter(slug=text)).first()
    if team is None:
        raise NotFound("There is no such team.", code="team_not_found")
    return team


def team_default_for_user(*, user: Any) -> Team | None:
    """Where a submission without ``team`` is filed: the user's only team, if exactly one."""
    teams = list(team_list_for_user(user=user)[:2])
    return teams[0] if len(teams) == 1 else None


def membership_list_for_user(*, user: Any) -> QuerySet[Membership]:
    """The user's place in each of their teams (their role), with each team's members
    (by username) prefetched: a page or list of teams in three queries."""
    members = Membership.objects.select_related("user").order_by("user__username")
    return (Membership.objects.filter(user=user).select_related("team")
            .prefetch_related(Prefetch("team__memberships", queryset=members))
            .order_by("team__name", "team_id"))


def team_role_of(*, user: Any, team: Team) -> str | None:
    return (Membership.objects.filter(user=user, team=team)
            .values_list("role", flat=True).first())


def api_key_list_for_user(*, user: Any) -> QuerySet[ApiKey]:
    """The user's keys, newest first, revoked ones included (they show when)."""
    return ApiKey.objects.filter(user=user).order_by("-created_at", "-pk")


def api_key_get_for_user(*, user: Any, key_id: Any) -> ApiKey:
    """One of the user's keys; another user's key is "not found", never "forbidden"."""
    try:
        pk = int(str(key_id))
    except ValueError:
        raise NotFound("There is no such API key.") from None
    if not 0 < pk < 2**63:  # beyond a database integer: no row, and no query to fail
        raise NotFound("There is no such API key.")
    key = api_key_list_for_user(user=user).filter(pk=pk).first()
    if key is None:
        raise NotFound("There is no such API key.")
    return key


def access_still_granted(*, user_id: Any, key_id: Any | None) -> bool:
    """Whether the user is still active and, if given, the key still live: a socket
    asks once after joining the groups a revoke is sent to."""
    if not User.objects.filter(pk=user_id, is_active=True).exists():
        return False
    if key_id is None:
        return True
    return ApiKey.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()),
        pk=key_id, user_id=user_id, revoked_at__isnull=True).exists()
