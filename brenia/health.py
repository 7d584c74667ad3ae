"""Liveness and readiness, as JSON."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.core.files.storage import Storage, storages
from django.db import connection
from django.http import HttpRequest, JsonResponse

from generation.routing.breaker import breaker_states

# /readyz is unauthenticated and on S3 every storage call is a billed request, so a
# probe storm must not become a request storm: storage's answer is reused this long.
STORAGE_CHECK_INTERVAL = 30.0


async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _storage_error(storage: Storage) -> str | None:
    """One read of storage's root; the failure's class name, or None when it answered.

    A read, never a write: a probe must not leave objects (or S3 PUTs) behind. Listing
    the root fails for a missing bucket, bad credentials or an unreachable endpoint,
    where asking whether one name exists would say "no" to a missing bucket. Stored
    names all sit under ``images/``, so the root holds a handful of entries.
    """
    try:
        storage.listdir("")
    except FileNotFoundError:
        # A local media root is made by the first save; a fresh install is ready
        # without one.
        return None
    except Exception as exc:
        return exc.__class__.__name__
    return None


class StorageCheck:
    """The default storage's last answer, reused for STORAGE_CHECK_INTERVAL seconds.

    One thread checks at a time; probes that arrive meanwhile get the previous answer
    rather than queueing behind a slow storage (and tying up threads). The answer
    belongs to one storage instance: a reconfigured storage is checked afresh.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._storage: Storage | None = None
        self._checked_at = 0.0
        self._error: str | None = "NotCheckedYet"

    def _fresh(self, storage: Storage) -> bool:
        return (self._storage is storage
                and time.monotonic() - self._checked_at < STORAGE_CHECK_INTERVAL)

    def error(self) -> str | None:
        storage = storages["default"]
        if self._fresh(storage) or not self._lock.acquire(blocking=False):
            return self._error
        try:
            if not self._fresh(storage):  # another thread may have just checked
                self._error = _storage_error(storage)
                self._storage, self._checked_at = storage, time.monotonic()
            return self._error
        finally:
            self._lock.release()


storage_check = StorageCheck()


class CheckFailed(Exception):
    """A check that failed earlier (its answer cached); ``name`` is what went wrong."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _check_storage() -> None:
    error = storage_check.error()
    if error is not None:
        raise CheckFailed(error)


async def _check_channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "readyz.ping"})
    message = await asyncio.wait_for(layer.receive(channel), timeout=2)
    if message.get("type") != "readyz.ping":
        raise RuntimeError("channel layer returned the wrong message")


async def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, Any] = {}

    async def run(name: str, check: Any) -> None:
        try:
            await asyncio.wait_for(check(), timeout=5)
            checks[name] = {"ok": True}
        except Exception as exc:
            error = exc.name if isinstance(exc, CheckFailed) else exc.__class__.__name__
            checks[name] = {"ok": False, "error": error}

    await run("database", sync_to_async(_check_database))
    await run("channel_layer", _check_channel_layer)
    # Off the shared sync thread: a slow storage must not hold up database work.
    await run("storage", sync_to_async(_check_storage, thread_sensitive=False))
    ready = all(c["ok"] for c in checks.values())
    body: dict[str, Any] = {"status": "ok" if ready else "unavailable", "checks": checks}
    # Details, not a check: an open breaker means one endpoint is failing (its jobs fall
    # back), not that this process cannot serve.
    with contextlib.suppress(Exception):
        # On the shared sync thread, like the database check: it reads the registry.
        body["breakers"] = await asyncio.wait_for(sync_to_async(breaker_states)(), timeout=2)
    return JsonResponse(body, status=200 if ready else 503)
