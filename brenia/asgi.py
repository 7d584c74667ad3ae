"""ASGI entry point: HTTP through Django, WebSockets through Channels.

In the embedded profile, jobs run on this server's own event loop: the first call
hands the loop to the background runner, which also runs every app's recovery step
(resuming unfinished jobs and pending webhook deliveries).
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brenia.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from brenia.background import runner  # noqa: E402
from brenia.body_limit import BodyLimit  # noqa: E402
from brenia.process import open_files_raise  # noqa: E402
from generation.realtime.auth import ApiKeyAuthMiddleware  # noqa: E402
from generation.realtime.urls import websocket_urlpatterns  # noqa: E402

# One socket per WebSocket client (and, embedded, per job followed on fal).
open_files_raise()

router = ProtocolTypeRouter({
    "http": BodyLimit(django_asgi_app, limit=settings.BRENIA_MAX_BODY_BYTES),
    "websocket": AllowedHostsOriginValidator(
        ApiKeyAuthMiddleware(URLRouter(websocket_urlpatterns))),
})


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if settings.BRENIA_JOBS == "inprocess" and scope["type"] in ("http", "websocket"):
        runner.adopt_running_loop()
    await router(scope, receive, send)
