"""WebSocket endpoint for live job updates: ``/ws/jobs/`` (all of the user's jobs)
or ``/ws/jobs/?job=<id>&after=<seq>`` (one job, catching up after ``seq``).

Consumers only relay: they authorize in ``connect`` and forward events from the
channel layer. A snapshot follows every (re)subscribe, so a dropped connection
never leaves a client on a stale state.

A socket lives only as long as what let it in: it joins its account's group and, when
opened with an API key, the key's, and closes (4401) when told the key was revoked or
the account deactivated (``brenia.accounts.realtime``), or when the key expires. A key
needs the "read" scope to open one (4403 otherwise).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from brenia.accounts.realtime import CLOSE_ACCESS_REVOKED, account_group, api_key_group
from brenia.accounts.selectors import access_still_granted
from brenia.errors import NotFound
from brenia.metrics import CountedConnection
from generation.jobs.events import job_group, user_group
from generation.jobs.presenters import job_state
from generation.jobs.selectors import job_events_after, job_get_for_user, job_list_for_user

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


def _canonical_id(job_id: Any) -> str:
    """The job id in canonical UUID form, or "" if it cannot be one."""
    try:
        return str(uuid.UUID(str(job_id)))
    except (ValueError, TypeError, AttributeError):
        return ""


def _snapshot(user: Any, job_id: Any, after: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    job = job_get_for_user(user=user, job_id=job_id)
    missed = [
        {"type": e.type, "job_id": str(job.pk), "seq": e.seq,
         "time": e.created_at.isoformat(), **e.payload}
        for e in job_events_after(job=job, after=after)
    ] if after else []
    return job_state(job), missed


def _still_visible(user: Any, job_id: str) -> bool:
    try:
        job_get_for_user(user=user, job_id=job_id)
    except NotFound:
        return False
    return True


def _recent_jobs(user: Any) -> list[dict[str, Any]]:
    return [job_state(job) for job in job_list_for_user(user=user)[:20]]


class JobEventsConsumer(CountedConnection, AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.seen: dict[str, int] = {}
        self.groups_joined: set[str] = set()
        self.unconfirmed: set[str] = set()
        self.followed: set[str] = set()
        self.expiry: asyncio.TimerHandle | None = None
        await self.accept()
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await self._hold_access():
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        job_id = (query.get("job") or [""])[0]
        after = _int((query.get("after") or ["0"])[0])
        if job_id:
            await self.follow_job(job_id, after, close_on_missing=True)
        else:
            await self._join(user_group(self.user.pk))
            jobs = await database_sync_to_async(_recent_jobs)(self.user)
            for state in jobs:
                self.seen[state["id"]] = state["last_event_seq"]
            await self.send_json({"type": "snapshot", "jobs": jobs})

    async def follow_job(self, job_id: str, after: int, *, close_on_missing: bool) -> None:
        canonical = _canonical_id(job_id)
        group = job_group(canonical) if canonical else ""
        joined_now = bool(group) and group not in self.groups_joined
        state: dict[str, Any] | None = None
        if canonical:
            # Join first, then read: an event committed in between is in the snapshot (or
            # in ``missed``), and its live copy is dropped by the seq filter. Read first
            # and such an event would be lost. Until the read has authorized the job,
            # its live events are held back (``unconfirmed``), so nobody sees another
            # user's events; one database call does both.
            self.unconfirmed.add(canonical)
            await self._join(group)
            try:
                state, missed = await database_sync_to_async(_snapshot)(
                    self.user, canonical, after)
            except NotFound:
                state = None
            finally:
                self.unconfirmed.discard(canonical)
        if state is None:
            if joined_now:
                await self.channel_layer.group_discard(group, self.channel_name)
                self.groups_joined.discard(group)
            await self.send_json({"type": "error", "code": "job_not_found",
                                  "message": "There is no such job."})
            if close_on_missing:
                await self.close(code=CLOSE_NOT_FOUND)
            return
        self.seen[state["id"]] = max(self.seen.get(state["id"], 0), state["last_event_seq"])
        self.followed.add(canonical)
        for event in missed:
            await self.send_json(event)
        await self.send_json({"type": "snapshot", "job_id": state["id"],
                              "seq": state["last_event_seq"], "job": state})

    async def _hold_access(self) -> bool:
        """Join the groups a revoke or deactivation is sent to, then check once more that
        the key and the account are still good: a revoke committed in between is seen
        by one or the other. False (and closed) when the socket may not stay."""
        key = self.scope.get("api_key")
        if key is not None and "read" not in key["scopes"]:
            await self.send_json({"type": "error", "code": "insufficient_scope",
                                  "message": "This API key lacks the 'read' scope."})
            await self.close(code=CLOSE_FORBIDDEN)
            return False
        await self._join(account_group(self.user.pk))
        if key is not None:
            await self._join(api_key_group(key["id"]))
        granted = await database_sync_to_async(access_still_granted)(
            user_id=self.user.pk, key_id=key["id"] if key else None)
        if not granted:
            await self.close(code=CLOSE_ACCESS_REVOKED)
            return False
        expires_at: datetime | None = key["expires_at"] if key else None
        if expires_at is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, (expires_at - datetime.now(expires_at.tzinfo)).total_seconds())
            self.expiry = loop.call_later(delay, self._expire)
        return True

    def _expire(self) -> None:
        # Kept, so the closing task is not collected before it runs.
        self.expiring = asyncio.ensure_future(self.close(code=CLOSE_ACCESS_REVOKED))

    async def access_changed(self, message: dict[str, Any]) -> None:
        """The user left a team: stop following every job they may no longer see (a
        socket opened for one such job closes as "not found", as on connect)."""
        single = bool(parse_qs(self.scope.get("query_string", b"").decode()).get("job"))
        for job_id in sorted(self.followed):
            if await database_sync_to_async(_still_visible)(self.user, job_id):
                continue
            self.followed.discard(job_id)
            group = job_group(job_id)
            if group in self.groups_joined:
                await self.channel_layer.group_discard(group, self.channel_name)
                self.groups_joined.discard(group)
            await self.send_json({"type": "error", "code": "job_not_found", "job_id": job_id,
                                  "message": "There is no such job."})
            if single:
                await self.close(code=CLOSE_NOT_FOUND)
                return

    async def layer_resync(self, message: dict[str, Any]) -> None:
        """The channel layer lost Redis for a while (brenia/channel_layer.py): whatever was
        sent meanwhile is gone. Check access again (a revoke may be among it), then catch
        up: a job socket gets the events after the last it saw and a snapshot, the
        account's stream a fresh snapshot of its recent jobs."""
        key = self.scope.get("api_key")
        if not await database_sync_to_async(access_still_granted)(
                user_id=self.user.pk, key_id=key["id"] if key else None):
            await self.close(code=CLOSE_ACCESS_REVOKED)
            return
        if user_group(self.user.pk) in self.groups_joined:
            jobs = await database_sync_to_async(_recent_jobs)(self.user)
            for state in jobs:
                self.seen[state["id"]] = max(self.seen.get(state["id"], 0),
                                             state["last_event_seq"])
            await self.send_json({"type": "snapshot", "jobs": jobs})
        single = bool(parse_qs(self.scope.get("query_string", b"").decode()).get("job"))
        for job_id in sorted(self.followed):
            await self.follow_job(job_id, self.seen.get(job_id, 0), close_on_missing=single)

    async def access_revoked(self, message: dict[str, Any]) -> None:
        """The key was revoked or the account deactivated (see brenia.accounts.realtime)."""
        await self.close(code=CLOSE_ACCESS_REVOKED)

    async def _join(self, group: str) -> None:
        if group not in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.add(group)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            return
        action = content.get("action")
        if action == "subscribe" and content.get("job"):
            await self.follow_job(str(content["job"]), _int(content.get("after")),
                                  close_on_missing=False)
        elif action == "ping":
            await self.send_json({"type": "pong"})

    async def dispatch(self, message: dict[str, Any]) -> None:
        """A job event goes straight to ``job_event``. Channels' own dispatch first closes
        stale database connections through a hop to the one database thread, for every
        message: one event to 500 sockets queued 500 such hops (a p99 of seconds in
        bench/ws_fanout.py's broadcast), and relaying an event reads no database."""
        if message.get("type") == "job.event":
            await self.job_event(message)
            return
        await super().dispatch(message)

    async def job_event(self, message: dict[str, Any]) -> None:
        event = message["event"]
        job_id = event.get("job_id", "")
        if job_id in self.unconfirmed:
            return  # not authorized yet; the snapshot being read covers it
        if event.get("seq", 0) <= self.seen.get(job_id, 0):
            return  # already covered by a snapshot or sent before
        self.seen[job_id] = event["seq"]
        await self.send_json(event)

    async def disconnect(self, code: int) -> None:
        expiry: asyncio.TimerHandle | None = getattr(self, "expiry", None)
        if expiry is not None:
            expiry.cancel()
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)


def _int(value: Any) -> int:
    """A non-negative sequence number from what a client sent; 0 when it is none.

    JSON as Python reads it allows Infinity and NaN: int() of those raises
    OverflowError or ValueError, which must not end the socket."""
    try:
        return max(0, int(value))
    except (TypeError, ValueError, OverflowError):
        return 0
