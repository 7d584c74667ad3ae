"""Webhook signing: one secret per user, and the ``Brenia-Signature`` header."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from django.utils import timezone

from generation.outbound.models import WebhookSecret


def _new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def webhook_secret_get_or_create(*, user_id: Any) -> WebhookSecret:
    """The user's signing secret, made on first need."""
    secret, _ = WebhookSecret.objects.get_or_create(user_id=user_id,
                                                    defaults={"secret": _new_secret()})
    return secret


def webhook_secret_rotate(*, user_id: Any) -> WebhookSecret:
    """Replace the user's secret; every later attempt, retries included, uses the new one."""
    now = timezone.now()
    secret, _ = WebhookSecret.objects.update_or_create(
        user_id=user_id, defaults={"secret": _new_secret(), "rotated_at": now})
    return secret


def signature_header(*, secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" under the secret>``."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
