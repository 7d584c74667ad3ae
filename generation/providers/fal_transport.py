"""Point the stock fal-client at any queue base address.

fal-client builds its URLs from hard-coded hosts (``queue.fal.run`` …). Brenia
talks to whatever ``FAL_QUEUE_URL`` names (the real queue, or the built-in
emulator on loopback) by rewriting those hosts in the HTTP transport. Nothing
else differs between the two: same client class, same calls, same parsing.
"""

from __future__ import annotations

import asyncio

import fal_client
import httpx
from asyncstdlib import cached_property as async_cached_property
from fal_client.client import USER_AGENT, AsyncBackupDomainTransport

# Seconds a status stream may go without a byte: fal sends a keep-alive every 15 s.
STREAM_READ_TIMEOUT = 45.0

FAL_HOSTS = frozenset({"queue.fal.run", "fal.run", "rest.fal.ai", "queue.falrun.com",
                       "falrun.com"})


class RewritingTransport(httpx.AsyncBaseTransport):
    """Sends requests for fal's own hosts to ``base_url`` instead."""

    def __init__(self, base_url: str, *, max_concurrency: int = 50,
                 inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.base = httpx.URL(base_url)
        self.inner = AsyncBackupDomainTransport(transport=inner)
        self.rewrite = self.base.host != "queue.fal.run"
        # Past httpx's pool size (100) httpcore queues requests and rescans the queue
        # for every free connection, and throughput collapses; stay below it.
        self.gate = asyncio.Semaphore(max_concurrency)

    def redirect(self, request: httpx.Request) -> None:
        """Aim ``request`` at ``base_url`` when it is for one of fal's hosts."""
        if self.rewrite and request.url.host in FAL_HOSTS:
            request.url = request.url.copy_with(
                scheme=self.base.scheme, host=self.base.host, port=self.base.port
            )
            request.headers["Host"] = request.url.netloc.decode("ascii")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.redirect(request)
        async with self.gate:
            response = await self.inner.handle_async_request(request)
            # Read inside the gate, so the connection is back in the pool when it opens.
            await response.aread()
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()


# Idle connections kept for re-opening streams; open ones are not capped at all.
STREAM_KEEPALIVE_CONNECTIONS = 200


class StreamingTransport(RewritingTransport):
    """The same rewriting for long-lived responses (SSE status streams).

    No gate and no read-ahead: each stream holds its connection for as long as its
    request runs, so the pool has no size limit (thousands of streams at once) and
    the body is read by the caller as it arrives.
    """

    def __init__(self, base_url: str) -> None:
        limits = httpx.Limits(max_connections=None,
                              max_keepalive_connections=STREAM_KEEPALIVE_CONNECTIONS)
        super().__init__(base_url, inner=httpx.AsyncHTTPTransport(limits=limits))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.redirect(request)
        return await self.inner.handle_async_request(request)


class FalAsyncClient(fal_client.AsyncClient):
    """The stock AsyncClient with its HTTP transport aimed at ``queue_url``.

    Overrides the private ``_client`` property of fal-client 1.0.3 (pinned; a test
    covers it). One instance belongs to one event loop.
    """

    def __init__(self, *, key: str, queue_url: str, default_timeout: float = 120.0) -> None:
        super().__init__(key=key, default_timeout=default_timeout)
        self.queue_url = queue_url

    @async_cached_property(asyncio.Lock)
    async def _client(self) -> httpx.AsyncClient:
        auth = await self._auth
        return httpx.AsyncClient(
            transport=RewritingTransport(self.queue_url),
            headers={"Authorization": auth.header_value, "User-Agent": USER_AGENT},
            timeout=self.default_timeout,
        )

    @async_cached_property(asyncio.Lock)
    async def stream_http(self) -> httpx.AsyncClient:
        """A second HTTP client, for SSE status streams (generation/providers/fal_stream.py):
        same key and hosts, its own unbounded pool, a read timeout past fal's 15 s
        keep-alives."""
        auth = await self._auth
        return httpx.AsyncClient(
            transport=StreamingTransport(self.queue_url),
            headers={"Authorization": auth.header_value, "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(STREAM_READ_TIMEOUT, connect=30.0),
        )

    async def aclose(self) -> None:
        client = await self._client
        await client.aclose()
        stream_http = await self.stream_http
        await stream_http.aclose()
