"""WebSocket authentication: the session cookie, or ``Authorization: Bearer <key>``.

A socket opened with a key carries it in ``scope["api_key"]`` (its id, scopes and
expiry, plain values): the consumer checks the scope and joins the key's group, so
revoking the key closes the socket.
"""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser

from brenia.accounts.auth import api_key_for_raw


class _BearerMiddleware:
    """Lets integrations authenticate a WebSocket with ``Authorization: Bearer <key>``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        user = scope.get("user")
        if user is None or not user.is_authenticated:
            headers = dict(scope.get("headers") or [])
            value = headers.get(b"authorization", b"").decode("latin-1")
            if value.lower().startswith("bearer "):
                key = await database_sync_to_async(api_key_for_raw)(value[7:].strip())
                scope = {**scope, "user": key.user if key else AnonymousUser(),
                         "api_key": {"id": key.pk, "scopes": list(key.scopes),
                                     "expires_at": key.expires_at} if key else None}
        return await self.inner(scope, receive, send)


def ApiKeyAuthMiddleware(inner: Any) -> Any:
    return AuthMiddlewareStack(_BearerMiddleware(inner))
