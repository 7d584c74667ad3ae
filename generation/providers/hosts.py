"""The hosts an operator configured for the providers, which Brenia trusts to be internal.

The built-in emulators (and a self-hosted provider on a private network) live on
internal addresses; result images on them, and fal's signing keys on the emulator,
may be fetched all the same. Nothing a user supplies is ever on this list.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings


def trusted_result_hosts() -> frozenset[str]:
    """Provider base addresses configured by the operator, plus the explicit list."""
    hosts = set(settings.BRENIA_TRUSTED_RESULT_HOSTS)
    for base in (settings.FAL_QUEUE_URL, settings.GEMINI_BASE_URL):
        parts = urlsplit(base)
        if parts.hostname:
            hosts.add(f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname)
    return frozenset(hosts)
