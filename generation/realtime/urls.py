"""WebSocket routes."""

from django.urls import path

from generation.realtime.consumers import JobEventsConsumer

websocket_urlpatterns = [
    path("ws/jobs/", JobEventsConsumer.as_asgi()),
]
