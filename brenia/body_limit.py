"""Request bodies capped at the door, before Django reads a byte of them.

Django's ASGI handler spools the whole body to memory or disk before any view runs, so
its own limits (``DATA_UPLOAD_MAX_MEMORY_SIZE``) only speak once the bytes are in. This
ASGI wrapper refuses a declared ``Content-Length`` over the cap at once and counts the
bytes of a body sent without one, cutting it off as soon as it passes the cap: the same
413 error shape as the API's, for every route (pages, the API, the fal webhook).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def _error(status: int, code: str, message: str, problem: str) -> tuple[int, bytes]:
    body = {"code": code, "message": message, "errors": [{"field": "body", "problem": problem}]}
    return status, json.dumps(body).encode()


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    def __init__(self, app: App, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    def too_large(self) -> tuple[int, bytes]:
        return _error(413, "request_too_large",
                      f"The request body is larger than {self.limit} bytes.",
                      f"must be at most {self.limit} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _respond(send, *_error(400, "bad_request", "Content-Length is not a number.",
                                             "has a Content-Length that is not a number"))
                return
            if int(declared) > self.limit:
                await _respond(send, *self.too_large())
                return
        received = 0
        over = False
        started = False

        async def counted() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    over = True  # Django sees the client leave and drops the request
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if over:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, guarded)
        if over and not started:
            await _respond(send, *self.too_large())
