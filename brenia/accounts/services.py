"""Writes on accounts-level rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from brenia.accounts.models import (
    DEFAULT_SCOPES,
    SCOPES,
    ApiKey,
    Membership,
    Team,
    TeamRole,
    hash_api_key,
)
from brenia.accounts.realtime import account_group, api_key_group, sockets_close_on_commit
from brenia.accounts.selectors import team_default_for_user, team_get_for_user
from brenia.errors import Conflict, FieldProblem, Forbidden, InvalidInput, NotFound

NAME_MAX = 100
# A key lives at most ten years: long enough for any integration, and every expiry
# stays a date the database can store whatever offset it was given in.
MAX_LIFETIME = timedelta(days=3650)


def _check_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        return "must not be empty"
    if len(cleaned) > NAME_MAX:
        return f"must be at most {NAME_MAX} characters"
    if "\x00" in cleaned:
        return "has characters that are not allowed"
    return ""


def _check_scopes(scopes: list[str]) -> tuple[list[str], str]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        return [], f"must be some of {', '.join(SCOPES)}"
    if not scopes:
        return [], "must name at least one scope"
    return [s for s in SCOPES if s in scopes], ""  # one order everywhere, no repeats


def _check_expiry(expires_at: datetime | None, now: datetime) -> tuple[datetime | None, str]:
    if expires_at is None:
        return None, ""
    if timezone.is_naive(expires_at):
        return None, "must include a time zone offset, like 2027-01-31T00:00:00Z"
    try:
        moment = expires_at.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-01:00 is in year 10000 in UTC
        return None, "is not a date Brenia can store"
    if moment <= now:
        return None, "must be in the future"
    if moment > now + MAX_LIFETIME:
        return None, f"must be within {MAX_LIFETIME.days} days"
    return moment, ""


def api_key_create(*, user: Any, name: str = "default",
                   scopes: Sequence[str] = DEFAULT_SCOPES,
                   expires_at: datetime | None = None,
                   expires_in_days: int | None = None) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the raw key, which is never retrievable again.

    ``expires_at`` or ``expires_in_days`` (not both) set when the key stops working;
    neither: never. Every problem is named by field, all at once.
    """
    now = timezone.now()
    problems: list[FieldProblem] = []
    if problem := _check_name(name):
        problems.append(FieldProblem("name", problem))
    chosen, problem = _check_scopes(list(scopes))
    if problem:
        problems.append(FieldProblem("scopes", problem))
    if expires_at is not None and expires_in_days is not None:
        problems.append(FieldProblem("expires_in_days",
                                     "cannot be given together with expires_at"))
    elif expires_in_days is not None:
        if not 1 <= expires_in_days <= MAX_LIFETIME.days:
            problems.append(FieldProblem("expires_in_days",
                                         f"must be from 1 to {MAX_LIFETIME.days}"))
        else:
            expires_at = now + timedelta(days=expires_in_days)
    expiry, problem = _check_expiry(expires_at, now)
    if problem:
        problems.append(FieldProblem("expires_at", problem))
    if problems:
        raise InvalidInput("The API key has invalid fields.", errors=problems)
    raw = ApiKey.generate_raw()
    key = ApiKey.objects.create(user=user, name=name.strip(), prefix=raw[:10],
                                key_hash=hash_api_key(raw), scopes=chosen, expires_at=expiry,
                                created_at=now)
    return key, raw


def api_key_revoke(*, key: ApiKey) -> None:
    """Refuse the key from now on, and close the sockets opened with it (after commit).

    Revoking a revoked key changes nothing and is no error: the caller wanted it dead.
    """
    with transaction.atomic():
        ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now())
        sockets_close_on_commit([api_key_group(key.pk)])
    key.refresh_from_db(fields=["revoked_at"])


def account_sockets_close(*, user_id: Any) -> None:
    """Close every socket of the user, after the caller's transaction commits: their
    account was deactivated (or deleted), so nothing they opened may go on listening."""
    sockets_close_on_commit([account_group(user_id)])


# --- teams --------------------------------------------------------------------------------

def team_for_submission(*, user: Any, team: str | None) -> Team | None:
    """Where new work is filed, from a request's ``team``.

    None (not sent): the user's only team if they have exactly one, else nobody's, so a
    member of one team shares by default and nobody has to choose between teams
    blindly. "" (sent empty): personal. Anything else must name (by slug or id) a team
    the user belongs to; otherwise a 422 naming ``team``, whether or not such a team
    exists, so a request cannot probe other people's team names.
    """
    if team is None:
        return team_default_for_user(user=user)
    if team == "":
        return None
    try:
        return team_get_for_user(user=user, team_id=team)
    except NotFound:
        raise InvalidInput("The request has invalid fields.", errors=[
            FieldProblem("team", "is not a team you belong to")]) from None


def team_get_owned(*, user: Any, team_id: Any) -> Team:
    """One of the user's teams that they own: another's team is not found (404), one
    they only belong to is ``not_team_owner`` (403: they can see it, so no secret)."""
    team = team_get_for_user(user=user, team_id=team_id)
    if not Membership.objects.filter(team=team, user=user, role=TeamRole.OWNER).exists():
        raise Forbidden("Only the team's owners may manage its members.",
                        code="not_team_owner")
    return team


def _owners_left(team: Team, *, without: Any) -> bool:
    return Membership.objects.filter(team=team, role=TeamRole.OWNER).exclude(
        user=without).exists()


def team_member_add(*, user: Any, team_id: Any, username: str,
                    role: str = TeamRole.MEMBER) -> tuple[Membership, bool]:
    """Add ``username`` to one of ``user``'s owned teams, or change their role if they are
    in it already. Returns ``(membership, created)``.

    The team's row is locked while its owners are counted, so two owners demoting each
    other at once cannot leave a team nobody manages (409 ``last_owner``).
    """
    team = team_get_owned(user=user, team_id=team_id)
    if role not in TeamRole.values:
        raise InvalidInput("The member has invalid fields.", errors=[
            FieldProblem("role", "must be owner or member")])
    person = get_user_model().objects.filter(username=username, is_active=True).first()
    if person is None:
        raise InvalidInput("The member has invalid fields.", errors=[
            FieldProblem("username", "is not a Brenia user")])
    with transaction.atomic():
        Team.objects.select_for_update().filter(pk=team.pk).first()
        membership, created = Membership.objects.get_or_create(
            team=team, user=person, defaults={"role": role})
        if not created and membership.role != role:
            if role != TeamRole.OWNER and not _owners_left(team, without=person):
                raise Conflict("A team always keeps at least one owner: make another "
                               "member an owner first.", code="last_owner")
            membership.role = role
            membership.save(update_fields=["role"])
    return membership, created


def team_member_remove(*, user: Any, team_id: Any, username: str) -> None:
    """Take ``username`` out of one of ``user``'s owned teams. Work they filed under it
    stays the team's. The last owner cannot leave (409 ``last_owner``)."""
    team = team_get_owned(user=user, team_id=team_id)
    with transaction.atomic():
        Team.objects.select_for_update().filter(pk=team.pk).first()
        membership = Membership.objects.filter(team=team, user__username=username).first()
        if membership is None:
            raise NotFound("That user is not a member of this team.",
                           code="member_not_found")
        if membership.role == TeamRole.OWNER and not _owners_left(team,
                                                                  without=membership.user_id):
            raise Conflict("A team always keeps at least one owner: make another member "
                           "an owner first.", code="last_owner")
        membership.delete()
