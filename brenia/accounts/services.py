"""Writes on accounts-level rows."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from brenia.accounts.models import ApiKey, hash_api_key


def api_key_create(*, user: Any, name: str = "default") -> tuple[ApiKey, str]:
    """Create a key; returns the row and the raw key, which is never retrievable again."""
    raw = ApiKey.generate_raw()
    key = ApiKey.objects.create(user=user, name=name, prefix=raw[:10], key_hash=hash_api_key(raw))
    return key, raw


def api_key_revoke(*, key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
