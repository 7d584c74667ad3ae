"""Brenia in processes of its own, with an environment the test chooses, and what they log.

For tests that read the processes' output (request tracing, secrets kept out of logs):
the environment to start them with (``tests.conftest.brenia_processes``, ``quiet`` as
the Procfile runs daphne), a webhook receiver on loopback, the processes' log lines.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from generation.emulators.server import EmulatorThread
from tests.conftest import LiveBrenia, child_env

T = TypeVar("T")

# Variables the test run may carry that would change what the children log.
INHERITED_LOGGING = ("LOG_FORMAT", "LOG_LEVEL", "DEBUG", "BRENIA_ENV")


def brenia_env(fal: EmulatorThread, gemini: EmulatorThread, tmp_path: Path,
               **extra: str) -> dict[str, str]:
    """The live processes' environment: ``child_env`` without inherited log settings."""
    env = child_env(fal, tmp_path, gemini)
    for name in INHERITED_LOGGING:
        env.pop(name, None)
    env.update(extra)
    return env


def output(live: LiveBrenia) -> str:
    """Everything the processes wrote so far (stdout and stderr go to one file each)."""
    return "".join(log.read_text(errors="replace") for log in live.logs if log.exists())


def json_lines(live: LiveBrenia) -> list[dict[str, Any]]:
    """Every line written so far, each parsed as one JSON object (else AssertionError)."""
    lines = []
    for line in output(live).splitlines():
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except ValueError:
            raise AssertionError(f"a log line that is not JSON: {line!r}") from None
        assert isinstance(parsed, dict), line
        lines.append(parsed)
    return lines


def wait_for(find: Callable[[], T | None], what: str, timeout: float = 60) -> T:
    """Poll ``find`` until it returns something truthy; fail naming ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        found = find()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.1)


class Hooks:
    """A webhook receiver on 127.0.0.1 that answers 200 and keeps each POST's body."""

    def __init__(self) -> None:
        self.received: dict[str, list[bytes]] = {}
        self.lock = threading.Lock()
        self.server = EmulatorThread(self._app)

    def _app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            with self.lock:
                self.received.setdefault(request.path, []).append(body)
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/{tail:.*}", handle)
        return app

    def __enter__(self) -> Hooks:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def url(self) -> str:
        return f"{self.server.base_url}/hooks/{uuid.uuid4().hex}"

    def got(self, url: str) -> list[bytes]:
        with self.lock:
            return list(self.received.get(url.removeprefix(self.server.base_url), []))
