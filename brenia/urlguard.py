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


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
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
