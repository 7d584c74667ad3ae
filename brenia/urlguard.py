"""Brenia's one URL policy: which addresses it may fetch, or let a provider fetch.

A URL is parsed once (:func:`parse_url`): http or https (any case), a host, a port
in range, an IPv6 literal in brackets, no legacy numeric spelling of an IPv4
address (``2130706433``, ``0x7f.1``); anything else is a :class:`BlockedURL` naming
the field, never an exception from the parser. Then every address the host has must
be public (:func:`address_problem`): not loopback, private, link-local, CGNAT,
multicast, reserved, unspecified or a cloud metadata address, also when an IPv6
address only carries one of those (NAT64, 6to4, Teredo, IPv4-compatible/-mapped).

:func:`check_public_url` checks a URL at submit time. Brenia's own fetches go
through ``brenia.safe_http``, which checks the addresses it resolves and connects to
exactly those, so a name cannot resolve one way for the check and another for the
connection. Hosts named in an explicit allow-list (the configured provider base
addresses, allow-listed webhook receivers) are exempt from the address check only.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from brenia.errors import FieldProblem, InvalidInput


class BlockedURL(InvalidInput):
    code = "url_not_allowed"


NOT_HTTP = "must be an http or https URL"
INTERNAL = "points to an internal address"
UNRESOLVED = "host does not resolve"

# IPv6 ranges that carry an IPv4 address in their last 32 bits and reach it: NAT64
# (well-known and local-use prefixes) and the deprecated IPv4-compatible form. 6to4
# (2002::/16), Teredo and IPv4-mapped are read by ipaddress itself.
_EMBEDDING_IPV4 = tuple(ipaddress.IPv6Network(net) for net in
                        ("64:ff9b::/96", "64:ff9b:1::/48", "::/96"))
# Refused whatever ipaddress's idea of "global" is in this Python version: shared
# address space (CGNAT), the 6to4 relay range, deprecated site-local IPv6, and the
# cloud metadata addresses (AWS's IPv6 one sits in fd00::/8).
_NEVER = tuple(ipaddress.ip_network(net) for net in (
    "100.64.0.0/10", "192.88.99.0/24", "169.254.169.254/32", "fec0::/10", "fd00:ec2::254/128",
))
# IETF protocol assignments: internal but for two anycast services (PCP, TURN), as
# Python itself has them since 3.11.10 (this one may be older).
_IETF = ipaddress.ip_network("192.0.0.0/24")
_IETF_GLOBAL = frozenset(ipaddress.ip_address(a) for a in ("192.0.0.9", "192.0.0.10"))


@dataclass(frozen=True)
class ParsedURL:
    scheme: str  # lower case
    host: str  # lower case, IPv6 without brackets
    port: int  # explicit, or the scheme's default

    def allowed_by(self, hosts: Collection[str]) -> bool:
        """Named in an allow-list of ``host`` or ``host:port`` entries."""
        return host_allowed(self.host, self.port, hosts)


def host_allowed(host: str, port: int, hosts: Collection[str]) -> bool:
    bracketed = f"[{host}]" if ":" in host else host
    return bool({host, bracketed, f"{bracketed}:{port}"} & set(hosts))


def parse_url(url: str, *, field: str = "url") -> ParsedURL:
    """The parts of an http(s) URL Brenia may connect to; BlockedURL naming ``field``."""
    def refuse(problem: str = NOT_HTTP) -> BlockedURL:
        return BlockedURL("The URL is not allowed.", errors=[FieldProblem(field, problem)])

    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a bad IPv6 literal, a port that is no number or out of range
        raise refuse() from None
    if parts.scheme not in ("http", "https") or not host or port == 0:
        raise refuse()
    if "[" in parts.netloc.rpartition("@")[2] and not is_ip_address(host):
        raise refuse()  # brackets hold an IPv6 address, nothing else
    if not is_ip_address(host) and _is_legacy_ipv4(host):
        raise refuse("must spell an IPv4 address as four decimal numbers")
    return ParsedURL(scheme=parts.scheme, host=host,
                     port=port or (443 if parts.scheme == "https" else 80))


def address_problem(address: str) -> str | None:
    """Why Brenia must not connect to ``address`` (an IP literal), or None if public."""
    ip = ipaddress.ip_address(address.split("%")[0])  # a zone id makes it link-local
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return address_problem(str(ip.ipv4_mapped))
        if any(address_problem(str(v4)) for v4 in _embedded_ipv4(ip)):
            return INTERNAL
    if not ip.is_global or ip.is_multicast or any(ip in net for net in _NEVER):
        return INTERNAL
    if ip in _IETF and ip not in _IETF_GLOBAL:
        return INTERNAL
    return None


def check_addresses(addresses: Iterable[str], *, field: str = "url") -> None:
    """BlockedURL unless there is at least one address and every one is public."""
    addresses = list(addresses)
    if not addresses:
        raise BlockedURL("The URL is not allowed.", errors=[FieldProblem(field, UNRESOLVED)])
    for address in addresses:
        problem = address_problem(address)
        if problem:
            raise BlockedURL("The URL is not allowed.", errors=[FieldProblem(field, problem)])


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to, for the transition mechanisms."""
    found = [v4 for v4 in (ip.ipv4_mapped, ip.sixtofour) if v4 is not None]
    if ip.teredo is not None:
        server, client = ip.teredo
        found += [server, client]
    if any(ip in net for net in _EMBEDDING_IPV4):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_legacy_ipv4(host: str) -> bool:
    """``2130706433``, ``0x7f.1``, ``0177.0.0.1``: what inet_aton reads as an address
    although it is no dotted quad; resolvers and other fetchers disagree about them."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def check_public_url(url: str, *, field: str = "url", allowed_hosts: Collection[str] = frozenset(),
                     resolve: bool = True, allow_unresolved: bool = False) -> str:
    """Return ``url`` if it is http(s) and every address its host resolves to is public.

    For URLs handed to someone else to fetch (a provider, from its own network): Brenia's
    own fetches are checked at connect time by ``brenia.safe_http`` instead, since a
    name checked here may resolve differently a moment later. Resolves with the
    blocking resolver, so async callers run it in a thread. ``allow_unresolved`` lets a
    host this machine cannot resolve through: for URLs a provider fetches, only
    internal targets are the danger.
    """
    parsed = parse_url(url, field=field)
    if parsed.allowed_by(allowed_hosts):
        return url
    if is_ip_address(parsed.host):
        addresses = [parsed.host]
    elif not resolve:
        return url
    else:
        try:
            addresses = [str(info[4][0])
                         for info in socket.getaddrinfo(parsed.host, parsed.port,
                                                        type=socket.SOCK_STREAM)]
        except (socket.gaierror, UnicodeError):
            if allow_unresolved:
                return url
            addresses = []
    check_addresses(addresses, field=field)
    return url


def check_webhook_url(url: str) -> str:
    """The guard for outgoing webhook targets: public addresses only, unless allow-listed.

    Raises ``BlockedURL`` naming the field ``webhook_url``. Resolves the host, so
    async callers run it in a thread.
    """
    return check_public_url(url, field="webhook_url",
                            allowed_hosts=webhook_allowed_hosts())


def webhook_allowed_hosts() -> frozenset[str]:
    """``host`` or ``host:port`` webhook targets the operator allows although internal."""
    return frozenset(settings.BRENIA_WEBHOOK_ALLOWED_HOSTS)
