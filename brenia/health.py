"""Liveness and readiness, as JSON."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.http import HttpRequest, JsonResponse


async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_storage() -> None:
    name = default_storage.save(f"readyz/{uuid.uuid4().hex}.txt", ContentFile(b"ok"))
    try:
        if not default_storage.exists(name):
            raise RuntimeError("written file not found")
    finally:
        default_storage.delete(name)


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
            checks[name] = {"ok": False, "error": exc.__class__.__name__}

    await run("database", sync_to_async(_check_database))
    await run("channel_layer", _check_channel_layer)
    await run("storage", sync_to_async(_check_storage))
    ready = all(c["ok"] for c in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks},
                        status=200 if ready else 503)
