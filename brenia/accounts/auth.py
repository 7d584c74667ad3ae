"""Authentication for the JSON API and WebSockets: API keys, then the session.

The callbacks are synchronous on purpose: ninja runs them in a worker thread for
async operations, and a sync callback cannot be mistaken for a truthy coroutine.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer, django_auth

from brenia.accounts.models import SCOPES, ApiKey, hash_api_key
from brenia.errors import DomainError, FieldProblem

LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_key_for_raw(raw: str) -> ApiKey | None:
    """The live key (not revoked, not expired) of an active user, or None. Never says
    which check failed. The key's user is loaded with it."""
    if not raw or len(raw) > 200:
        return None
    now = timezone.now()
    key = (
        ApiKey.objects.select_related("user")
        .filter(key_hash=hash_api_key(raw), revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .first()
    )
    if key is None or not key.user.is_active:
        return None
    # At most one write a minute per key: a write on every request and socket
    # serialises busy clients on the database's write lock.
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


def user_for_api_key(raw: str) -> AbstractBaseUser | None:
    """The active user owning a live key, or None."""
    key = api_key_for_raw(raw)
    return key.user if key is not None else None


class InsufficientScope(DomainError):
    """A live key without the scope the request needs. 403, not 401: the key is good,
    and asking again with it will not help."""

    status_code = 403
    code = "insufficient_scope"

    def __init__(self, scope: str) -> None:
        super().__init__(f"This API key lacks the {scope!r} scope, which this request needs.",
                         errors=[FieldProblem("authorization", f"needs the {scope} scope")])
        self.scope = scope


def scope_needed(method: str | None) -> str:
    """The scope a request needs by its method, unless its operation says otherwise:
    reading is "read"; anything that changes something (creating, cancelling or retrying
    work, rating images) is "generate". Account management asks for "admin" itself."""
    return "read" if (method or "GET").upper() in ("GET", "HEAD", "OPTIONS") else "generate"


class ApiKeyAuth(HttpBearer):
    """``Authorization: Bearer <key>``, with the scope the operation needs.

    ``scope`` None: by the request's method (``scope_needed``). A live key without it
    is a 403 ``insufficient_scope`` at once; it never falls through to the session.
    The key is left on ``request.api_key`` (for limits per key); ``request.auth`` is
    the user, as with a session.
    """

    def __init__(self, scope: str | None = None) -> None:
        super().__init__()
        if scope is not None and scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        self.scope = scope

    def __call__(self, request: HttpRequest) -> Any:
        # ninja's own version logs the whole header, the key in it, when its scheme is
        # not Bearer and DEBUG is on ("Token <key>" is a common mistake): not this one.
        scheme, _, token = request.headers.get(self.header, "").partition(" ")
        if scheme.lower() != self.openapi_scheme:
            return None
        return self.authenticate(request, token)

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        key = api_key_for_raw(token)
        if key is None:
            return None
        needed = self.scope or scope_needed(request.method)
        if not key.has_scope(needed):
            raise InsufficientScope(needed)
        request.user = key.user
        request.api_key = key  # type: ignore[attr-defined]
        return key.user


def scoped_auth(scope: str | None = None) -> list[Any]:
    """An operation's ``auth=``: a key with ``scope`` (None: by method), or the browser's
    Django session, which has every scope. Through ninja's own SessionAuth: it
    CSRF-checks unsafe methods before looking at the session cookie. Inactive users never
    get this far: ModelBackend.get_user refuses them, so their session loads as
    AnonymousUser."""
    return [ApiKeyAuth(scope), django_auth]


# The API's default: the scope by method. Account management passes ``admin_auth``.
api_auth = scoped_auth()
admin_auth = scoped_auth("admin")
