"""Reads on accounts-level rows, each scoped to its owner."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from brenia.accounts.models import ApiKey, User
from brenia.errors import NotFound


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
