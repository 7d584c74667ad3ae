"""Serving the emulators: in the foreground, or on a background thread for tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from aiohttp import web


async def _start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    server = site._server
    assert server is not None
    bound_port: int = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return runner, bound_port


class EmulatorThread:
    """Runs one aiohttp application on its own event loop in a daemon thread.

    ``app_factory`` is called on that loop, so the application and everything it
    creates belong to it. ``start()`` returns the base URL once the port is bound.
    """

    def __init__(self, app_factory: Callable[[], web.Application], *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.app_factory = app_factory
        self.host = host
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="emulator", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> str:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("emulator did not start in time")
        if self._error is not None:
            raise RuntimeError("emulator failed to start") from self._error
        return self.base_url

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.app = self.app_factory()
            self._runner, self.port = self.loop.run_until_complete(
                _start_site(self.app, self.host, self.port)
            )
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        if self._runner is None:
            return
        runner = self._runner
        asyncio.run_coroutine_threadsafe(runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self._runner = None


async def serve_forever(sites: list[tuple[web.Application, str, int]],
                        on_ready: Callable[[list[int]], None]) -> None:
    """Serve several applications until cancelled; ``on_ready`` gets the bound ports."""
    runners: list[web.AppRunner] = []
    ports: list[int] = []
    try:
        for app, host, port in sites:
            runner, bound = await _start_site(app, host, port)
            runners.append(runner)
            ports.append(bound)
        on_ready(ports)
        await asyncio.Event().wait()
    finally:
        for runner in runners:
            await runner.cleanup()
