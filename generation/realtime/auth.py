"""WebSocket authentication: the session cookie, or ``Authorization: Bearer <key>``."""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser

from brenia.accounts.auth import user_for_api_key


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
                found = await database_sync_to_async(user_for_api_key)(value[7:].strip())
                scope = {**scope, "user": found or AnonymousUser()}
        return await self.inner(scope, receive, send)


def ApiKeyAuthMiddleware(inner: Any) -> Any:
    return AuthMiddlewareStack(_BearerMiddleware(inner))
