"""Login throttling: what a locked-out client is told, and which address it is counted by.

django-axes does the counting (``AXES_*`` in settings): every log-in form, the site's and
the admin's, authenticates with the request, so axes' backend sees each try and refuses
one from a locked-out username and address before any password is checked. These two
hooks are the parts that are Brenia's own.
"""

from __future__ import annotations

import math
from typing import Any

from axes.helpers import get_cool_off
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def lockout_response(request: HttpRequest, original_response: Any = None,
                     credentials: Any = None) -> HttpResponse:
    """A page that says when to try again, as a 429 with ``Retry-After``.

    Every refused try restarts the cool-off (axes' default), so "the cool-off from
    now" is exact, not a guess. A 429, not axes' bare 403: the client did nothing
    forbidden, it tried too often, and a proxy or a script can tell the two apart.
    """
    cool_off = get_cool_off(request)
    seconds = math.ceil(cool_off.total_seconds()) if cool_off else 0
    response = render(request, "registration/locked_out.html",
                      {"minutes": max(1, math.ceil(seconds / 60))}, status=429)
    response["Retry-After"] = str(seconds)
    return response


def client_ip(request: HttpRequest) -> str | None:
    """The address failures are counted by.

    Behind ``BRENIA_PROXY_COUNT`` proxies that each append to X-Forwarded-For, the
    client's address is that many entries from the right: entries further left were
    written by the client and prove nothing. Without proxies, the direct peer.
    """
    count = int(settings.BRENIA_PROXY_COUNT)
    if count:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
                if hop.strip()]
        if len(hops) >= count:
            return hops[-count]
    return request.META.get("REMOTE_ADDR") or None
