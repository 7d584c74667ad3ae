"""Writes on accounts-level rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from brenia.accounts.models import DEFAULT_SCOPES, SCOPES, ApiKey, hash_api_key
from brenia.accounts.realtime import account_group, api_key_group, sockets_close_on_commit
from brenia.errors import FieldProblem, InvalidInput

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
