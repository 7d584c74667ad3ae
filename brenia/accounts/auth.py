"""Authentication for the JSON API and WebSockets: API keys, then the session.

The callbacks are synchronous on purpose: ninja runs them in a worker thread for
async operations, and a sync callback cannot be mistaken for a truthy coroutine.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer, django_auth

from brenia.accounts.models import ApiKey, hash_api_key

LAST_USED_RESOLUTION = timedelta(minutes=1)


def user_for_api_key(raw: str) -> AbstractBaseUser | None:
    """The active user owning a live key, or None. Never says which check failed."""
    if not raw or len(raw) > 200:
        return None
    key = (
        ApiKey.objects.select_related("user")
        .filter(key_hash=hash_api_key(raw), revoked_at__isnull=True)
        .first()
    )
    if key is None or not key.user.is_active:
        return None
    now = timezone.now()
    # At most one write a minute per key: a write on every request and socket
    # serialises busy clients on the database's write lock.
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key.user


class ApiKeyAuth(HttpBearer):
    """``Authorization: Bearer <key>``."""

    def __call__(self, request: HttpRequest) -> Any:
        # ninja's own version logs the whole header, the key in it, when its scheme is
        # not Bearer and DEBUG is on ("Token <key>" is a common mistake): not this one.
        scheme, _, token = request.headers.get(self.header, "").partition(" ")
        if scheme.lower() != self.openapi_scheme:
            return None
        return self.authenticate(request, token)

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        user = user_for_api_key(token)
        if user is not None:
            request.user = user  # type: ignore[assignment]
        return user


# The browser's Django session, through ninja's own SessionAuth: it CSRF-checks unsafe
# methods before looking at the session cookie. Inactive users never get this far:
# ModelBackend.get_user refuses them, so their session loads as AnonymousUser.
api_auth = [ApiKeyAuth(), django_auth]
