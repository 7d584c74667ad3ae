"""Guard for fetching URLs: no requests to internal addresses.

Every address Brenia fetches on someone's behalf (input images, webhook targets,
provider result links) passes :func:`check_public_url` first. Hosts named in an
explicit allow-list (the configured provider base addresses) are exempt, so a
self-hosted provider on a private network can still be used.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from brenia.errors import FieldProblem, InvalidInput


class BlockedURL(InvalidInput):
    code = "url_not_allowed"


# IPv6 ranges that carry an IPv4 address in their last 32 bits and reach it: NAT64
# (well-known and local-use prefixes) and the deprecated IPv4-compatible form. 6to4
# (2002::/16), Teredo and IPv4-mapped are read by ipaddress itself.
_EMBEDDING_IPV4 = tuple(ipaddress.IPv6Network(net) for net in
                        ("64:ff9b::/96", "64:ff9b:1::/48", "::/96"))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to, for the transition mechanisms."""
    found = [v4 for v4 in (ip.ipv4_mapped, ip.sixtofour) if v4 is not None]
    if ip.teredo is not None:
        server, client = ip.teredo
        found += [server, client]
    if any(ip in net for net in _EMBEDDING_IPV4):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _is_public(address: str) -> bool:
    """Global unicast, and so is every IPv4 address it embeds (64:ff9b::7f00:1 is
    127.0.0.1 through NAT64, 2002:a9fe:a9fe:: the metadata address through 6to4)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if ip.ipv4_mapped is not None:
            return _is_public(str(ip.ipv4_mapped))
        if embedded and not all(_is_public(str(v4)) for v4 in embedded):
            return False
    return ip.is_global and not ip.is_multicast


def check_public_url(url: str, *, field: str = "url", allowed_hosts: frozenset[str] = frozenset(),
                     resolve: bool = True, allow_unresolved: bool = False) -> str:
    """Return ``url`` if it is http(s) and every address its host resolves to is public.

    ``allow_unresolved`` lets a host this machine cannot resolve through: for URLs a
    provider fetches from its own network, only internal targets are the danger.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedURL("The URL is not allowed.",
                         errors=[FieldProblem(field, "must be an http or https URL")])
    host = parts.hostname
    netloc = f"{host}:{parts.port}" if parts.port else host
    if host in allowed_hosts or netloc in allowed_hosts:
        return url
    try:
        addresses = {host} if _looks_like_ip(host) else (
            {str(info[4][0]) for info in socket.getaddrinfo(host, parts.port or 443)}
            if resolve else set()
        )
    except (socket.gaierror, UnicodeError):
        if allow_unresolved:
            return url
        raise BlockedURL("The URL is not allowed.",
                         errors=[FieldProblem(field, "host does not resolve")]) from None
    for address in addresses:
        if not _is_public(str(address).split("%")[0]):
            raise BlockedURL("The URL is not allowed.",
                             errors=[FieldProblem(field, "points to an internal address")])
    return url


def _looks_like_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_webhook_url(url: str) -> str:
    """The guard for outgoing webhook targets: public addresses only, unless allow-listed.

    Raises ``BlockedURL`` naming the field ``webhook_url``. Resolves the host, so
    async callers run it in a thread.
    """
    return check_public_url(url, field="webhook_url",
                            allowed_hosts=frozenset(settings.BRENIA_WEBHOOK_ALLOWED_HOSTS))
