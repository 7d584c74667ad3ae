"""Closing the WebSockets of a revoked key or a deactivated account.

Every socket opened with a key joins ``apikey.<id>``, and every socket of a user (key
or session) ``account.<user_id>``. Revoking the key or deactivating the user sends one
message to that group after the change commits; each consumer in it closes itself. The
channel layer carries it to every process (Redis in scale-out), so a revoke in one
web process closes sockets held by another.

Only names and the send live here: ``brenia.accounts`` knows no app, so the consumers
(in generation.realtime) import these, never the other way round.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

# The message's type: a consumer handles it in ``access_revoked``.
ACCESS_REVOKED = "access.revoked"
# The close code: the same "unauthenticated" a socket without a user gets on connect.
CLOSE_ACCESS_REVOKED = 4401
# The user's team memberships changed: each socket checks again what it follows (a
# consumer handles it in ``access_changed``) and drops what the user may no longer see.
ACCESS_CHANGED = "access.changed"


def api_key_group(key_id: Any) -> str:
    return f"apikey.{key_id}"


def account_group(user_id: Any) -> str:
    return f"account.{user_id}"


def sockets_close_on_commit(groups: Iterable[str]) -> None:
    """After the caller's transaction commits (now, outside one), close every socket in
    ``groups``. Never before: a rolled-back revoke must leave its sockets open."""
    names = list(groups)
    transaction.on_commit(lambda: _send(names))


def sockets_recheck_on_commit(user_id: Any) -> None:
    """After the caller's transaction commits, have every socket of the user check again
    which jobs it may follow (they left a team, or a team was deleted)."""
    transaction.on_commit(lambda: _send([account_group(user_id)], ACCESS_CHANGED))


def _send(groups: list[str], kind: str = ACCESS_REVOKED) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            # Inside a sync_to_async thread this runs on the server's own loop, where
            # the in-memory layer's queues live.
            async_to_sync(layer.group_send)(group, {"type": kind})
        except Exception:  # committed all the same: the key is refused on its next use
            logger.warning("could not tell group %s to close", group, exc_info=True)
