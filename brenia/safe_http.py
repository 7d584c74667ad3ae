"""Brenia's own outgoing HTTP: it connects only to the addresses it checked.

Checking a URL and then letting the HTTP client resolve its host again leaves a gap:
the name may answer a public address to the check and a loopback one to the
connection (DNS rebinding). Here there is one resolution per connection, inside the
connection itself: :class:`PinnedBackend` resolves the host (off the event loop),
checks every address with ``brenia.urlguard``'s policy, and opens the TCP
connection to one of exactly those addresses. The URL keeps its host name, so the
``Host`` header, TLS SNI and certificate verification all use the name, and
httpcore's connection pool (keyed by scheme, name and port) only ever reuses a
connection that was checked when it was opened.

Hosts on an explicit allow-list (the configured provider addresses, allow-listed
webhook receivers) skip the address check; they are still resolved once, by the same
resolver, and connected to by address.

Redirects are refused: :class:`SafeClient` never follows them and hands the 3xx to
its caller, which treats it as a failed fetch. (Were a client to follow one, each hop
would open its own connection, checked the same way.) Environment proxies are
ignored, since a proxy would resolve the name again, out of reach of the check.

:meth:`SafeClient.fetch` reads a body with a byte cap and a deadline for the whole
exchange (httpx's timeouts bound each read, so a server trickling one byte at a time
would never trip them), raising :class:`ResponseTooLarge` or :class:`ResponseTooSlow`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import httpcore
import httpx

from brenia.errors import FieldProblem
from brenia.urlguard import (
    NOT_HTTP,
    UNRESOLVED,
    BlockedURL,
    check_addresses,
    host_allowed,
    is_ip_address,
    parse_url,
)

Resolver = Callable[[str, int], Awaitable[list[str]]]
TrustedHosts = Collection[str] | Callable[[], Collection[str]]

LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's defaults
# What a non-2xx answer's body is read to (for an error message); the rest is dropped.
ERROR_BODY_BYTES = 1024


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address of ``host``, in the system resolver's order, off the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to checked addresses of the host."""

    def __init__(self, *, trusted_hosts: TrustedHosts, resolver: Resolver) -> None:
        self.trusted_hosts = trusted_hosts
        self.resolver = resolver
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int,
                          timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        addresses = await self.addresses(host, port, timeout)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(address, port, timeout=timeout,
                                                    local_address=local_address,
                                                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # addresses is never empty
        raise failure

    async def addresses(self, host: str, port: int, within: float | None) -> list[str]:
        """The addresses of ``host`` Brenia may connect to; BlockedURL if it may not."""
        if is_ip_address(host):
            addresses = [host]
        else:
            try:
                async with asyncio.timeout(within):
                    addresses = await self.resolver(host, port)
            except TimeoutError:
                raise httpcore.ConnectTimeout(f"resolving {host} took too long") from None
            except (socket.gaierror, UnicodeError):
                addresses = []
        trusted = self.trusted_hosts() if callable(self.trusted_hosts) else self.trusted_hosts
        if not host_allowed(host, port, trusted):
            check_addresses(addresses)
        elif not addresses:
            raise BlockedURL("The URL is not allowed.",
                             errors=[FieldProblem("url", UNRESOLVED)])
        return addresses

    async def connect_unix_socket(
            self, path: str,
            timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
            socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("Brenia fetches over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport with its connection pool on a :class:`PinnedBackend`.

    ``AsyncHTTPTransport.__init__`` does nothing but build ``self._pool`` (httpx 0.28.1,
    pinned) and cannot be given a network backend, so this builds that same pool with
    Brenia's backend instead; the request and response handling stays httpx's.
    tests/brenia/test_safe_fetching.py fails if the backend is bypassed.
    """

    def __init__(self, *, trusted_hosts: TrustedHosts = frozenset(),
                 resolver: Resolver = resolve_host,
                 verify: ssl.SSLContext | bool = True) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=LIMITS.max_connections,
            max_keepalive_connections=LIMITS.max_keepalive_connections,
            keepalive_expiry=LIMITS.keepalive_expiry,
            network_backend=PinnedBackend(trusted_hosts=trusted_hosts, resolver=resolver),
        )


class FetchStopped(Exception):
    """Brenia cut a fetch short; the message says why, for logs and error texts."""


class ResponseTooLarge(FetchStopped):
    pass


class ResponseTooSlow(FetchStopped):
    pass


@dataclass(frozen=True)
class Fetched:
    status_code: int
    headers: httpx.Headers
    body: bytes  # all of a 2xx body; at most ERROR_BODY_BYTES of any other

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


class SafeClient:
    """An httpx client on a :class:`PinnedTransport` that never follows redirects.

    One instance belongs to one event loop. ``trusted_hosts`` (``host`` or
    ``host:port`` entries, or a function returning them, read at each connection)
    skip the address check; ``resolver`` is where host names are resolved; ``verify``
    is httpx's (certificates are checked against the URL's host name).
    """

    def __init__(self, *, trusted_hosts: TrustedHosts = frozenset(),
                 resolver: Resolver = resolve_host, verify: ssl.SSLContext | bool = True,
                 timeout: float = 30.0, headers: dict[str, str] | None = None) -> None:
        self.http = httpx.AsyncClient(
            transport=PinnedTransport(trusted_hosts=trusted_hosts, resolver=resolver,
                                      verify=verify),
            timeout=timeout, follow_redirects=False, trust_env=False,
            # Compressed bodies would be inflated a whole network read at a time,
            # before the byte cap could look at them.
            headers={"Accept-Encoding": "identity", **(headers or {})})

    async def fetch(self, method: str, url: str, *, max_bytes: int, deadline: float,
                    field: str = "url", headers: dict[str, str] | None = None,
                    content: bytes | None = None, cut: bool = False) -> Fetched:
        """One request and its answer, all within ``deadline`` seconds.

        A 2xx body past ``max_bytes`` raises ResponseTooLarge, or is cut there when
        ``cut`` is set (for a caller that only wants its start). A URL or address
        Brenia may not fetch raises BlockedURL naming ``field``, before any
        connection; connection and protocol failures raise httpx's errors.
        """
        parse_url(url, field=field)
        scope = asyncio.timeout(deadline)
        try:
            async with scope, self.http.stream(method, url, headers=headers,
                                               content=content) as response:
                ok = 200 <= response.status_code < 300
                body = await read_capped(response, max_bytes if ok else ERROR_BODY_BYTES,
                                         cut=cut or not ok)
        except TimeoutError:
            if scope.expired():
                raise ResponseTooSlow(f"the answer took longer than {deadline:g} s") from None
            raise
        except BlockedURL as exc:
            raise BlockedURL(exc.message, errors=[FieldProblem(field, problem.problem)
                                                  for problem in exc.errors]) from None
        except httpx.InvalidURL:
            raise BlockedURL("The URL is not allowed.",
                             errors=[FieldProblem(field, NOT_HTTP)]) from None
        return Fetched(status_code=response.status_code, headers=response.headers, body=body)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, traceback: TracebackType | None) -> None:
        await self.aclose()


async def read_capped(response: httpx.Response, limit: int, *, cut: bool = False) -> bytes:
    """The body, refused (ResponseTooLarge) or cut once it passes ``limit`` bytes.

    Stops reading at the limit, so what a server sends beyond it is never held.
    """
    declared = response.headers.get("content-length", "")
    if not cut and declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge(f"the answer is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        if size + len(chunk) > limit:
            if not cut:
                raise ResponseTooLarge(f"the answer is larger than {limit} bytes")
            chunks.append(chunk[:limit - size])
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
