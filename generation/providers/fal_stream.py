"""Follow a fal queue request by push: its SSE status stream, with a polled safety net.

fal-client 1.0.3 only polls (``GET …/status`` every interval); the queue also serves
``GET {status_url}/stream?logs=1``: ``text/event-stream``, one ``data: <status JSON>``
event per change, a ``: ping`` comment every 15 s, closed after the COMPLETED event.
Each event's ``logs`` holds only the lines new since the previous event of that
stream (its first event: all lines so far), as fal's JS client expects; the statuses
yielded here carry the lines accumulated over the stream, as a poll's do, so callers
treat both alike.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import fal_client
import httpx
from fal_client import AsyncRequestHandle
from httpx_sse import aconnect_sse

# The longest wait between safety polls while the stream cannot be had.
SAFETY_POLL_INTERVAL = 5.0
# Past this many failed opens in a row the pause stops doubling (it is at its ceiling).
_MAX_DOUBLINGS = 16


class StreamUnavailable(Exception):
    """The status stream could not be opened, or ended before COMPLETED."""


def stream_url(handle: AsyncRequestHandle) -> str:
    """The stream beside the handle's status URL, as fal-client builds that one (the
    ``[ns/]owner/alias`` of the app, whatever path the endpoint id goes on with)."""
    return handle.status_url + "/stream"


def _parse(handle: AsyncRequestHandle, data: Any, logs: list[dict[str, Any]]) -> fal_client.Status:
    """A Status as fal-client's own parser makes it from a polled body, with ``logs``
    (this stream's lines so far, extended by this event's) in place of the delta."""
    if isinstance(data, dict) and isinstance(data.get("logs"), list):
        logs.extend(data["logs"])
    if isinstance(data, dict) and data.get("status") != "IN_QUEUE":
        data = {**data, "logs": list(logs)}
    return handle._parse_status(data)


async def stream_statuses(http: httpx.AsyncClient, handle: AsyncRequestHandle, *,
                          with_logs: bool = True) -> AsyncGenerator[fal_client.Status, None]:
    """The request's statuses as its stream pushes them, up to COMPLETED.

    Raises ``StreamUnavailable`` when the stream cannot be opened (network error,
    an answer other than a 200 event stream), goes silent past the client's read
    timeout, breaks off or sends an event that is not a status.
    """
    logs: list[dict[str, Any]] = []
    try:
        async with aconnect_sse(http, "GET", stream_url(handle),
                                params={"logs": "1" if with_logs else "0"}) as source:
            if source.response.status_code != 200:
                raise StreamUnavailable(f"status stream answered {source.response.status_code}")
            async for event in source.aiter_sse():
                if not event.data:
                    continue
                status = _parse(handle, json.loads(event.data), logs)
                yield status
                if isinstance(status, fal_client.Completed):
                    return
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        # httpx_sse.SSEError (not an event stream) is an httpx.TransportError;
        # json.JSONDecodeError and an unknown status string are ValueErrors.
        raise StreamUnavailable(f"status stream failed: {exc.__class__.__name__}") from exc
    raise StreamUnavailable("status stream ended before COMPLETED")


async def follow(handle: AsyncRequestHandle, http: httpx.AsyncClient | None, *,
                 interval: float) -> AsyncGenerator[fal_client.Status, None]:
    """The request's statuses up to COMPLETED: pushed by its stream, polled when that fails.

    With ``http`` None, fal-client's own polling (``iter_events`` every ``interval``),
    as before the stream existed. Otherwise the stream; whenever it cannot be opened
    or ends before COMPLETED, one poll through fal-client (its retries, its errors:
    a request fal no longer knows fails here exactly as it did when polled), and
    unless that poll says COMPLETED, the stream again after a pause: ``interval``
    after a stream that delivered events, doubling for each stream in a row that
    delivered none, up to ``max(interval, SAFETY_POLL_INTERVAL)``. So a broken link
    costs one poll and a re-open, and a front that never serves the stream a slow
    safety poll (plus a failed open) every few seconds. Every status carries the
    logs accumulated since the stream (or poll) began, so a re-opened stream repeats
    lines the caller has seen: callers count lines, as they do for polls.
    """
    if http is None:
        async for status in handle.iter_events(with_logs=True, interval=interval):
            yield status
        return
    ceiling = max(interval, SAFETY_POLL_INTERVAL)
    idle = 0  # streams in a row that delivered no event
    while True:
        delivered = False
        try:
            async with aclosing(stream_statuses(http, handle)) as pushed:
                async for status in pushed:
                    delivered = True
                    yield status
                    if isinstance(status, fal_client.Completed):
                        return
        except StreamUnavailable:
            pass
        status = await handle.status(with_logs=True)
        yield status
        if isinstance(status, fal_client.Completed):
            return
        idle = 0 if delivered else min(idle + 1, _MAX_DOUBLINGS)
        await asyncio.sleep(min(ceiling, interval * 2 ** idle))
