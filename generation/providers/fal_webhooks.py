"""Verifying fal's completion webhooks.

fal signs ``request_id \\n user_id \\n timestamp \\n sha256(body)`` with Ed25519; the
public keys come from a JWKS whose address (and the clock tolerance) are settings,
so tests point them at the emulator. What a verified completion does to a job is
``generation.jobs.fal_webhooks``' business.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings

from brenia.errors import DomainError

logger = logging.getLogger(__name__)

JWKS_TTL = 24 * 3600
JWKS_REFRESH_AFTER_FAILURE = 60
HEADERS = ("x-fal-webhook-request-id", "x-fal-webhook-user-id", "x-fal-webhook-timestamp",
           "x-fal-webhook-signature")


class WebhookRejected(DomainError):
    status_code = 401
    code = "invalid_webhook_signature"


class _JwksCache:
    def __init__(self) -> None:
        self.url = ""
        self.keys: list[Ed25519PublicKey] = []
        self.fetched_at = 0.0

    async def get(self, *, refresh: bool = False) -> list[Ed25519PublicKey]:
        url = settings.FAL_WEBHOOK_JWKS_URL
        age = time.monotonic() - self.fetched_at
        stale = url != self.url or age > JWKS_TTL or not self.keys
        if stale or (refresh and age > JWKS_REFRESH_AFTER_FAILURE):
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(url)
                response.raise_for_status()
                document = response.json()
            self.keys = [_public_key(jwk) for jwk in document.get("keys", [])
                         if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519"]
            self.url, self.fetched_at = url, time.monotonic()
        return self.keys


def _public_key(jwk: dict[str, Any]) -> Ed25519PublicKey:
    raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
    return Ed25519PublicKey.from_public_bytes(raw)


jwks_cache = _JwksCache()


def _signed_message(headers: dict[str, str], body: bytes) -> tuple[bytes, bytes]:
    missing = [name for name in HEADERS if not headers.get(name)]
    if missing:
        raise WebhookRejected(f"Missing webhook header(s): {', '.join(missing)}.")
    try:
        timestamp = int(headers["x-fal-webhook-timestamp"])
        signature = bytes.fromhex(headers["x-fal-webhook-signature"])
    except ValueError:
        raise WebhookRejected("Malformed webhook timestamp or signature.") from None
    if abs(time.time() - timestamp) > settings.FAL_WEBHOOK_TOLERANCE:
        raise WebhookRejected("The webhook timestamp is outside the allowed window.")
    message = "\n".join([headers["x-fal-webhook-request-id"], headers["x-fal-webhook-user-id"],
                         str(timestamp), hashlib.sha256(body).hexdigest()]).encode()
    return message, signature


def _verifies(keys: list[Ed25519PublicKey], signature: bytes, message: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return True
    return False


async def verify_fal_webhook(*, headers: dict[str, str], body: bytes) -> None:
    """Raise WebhookRejected unless a current JWKS key signed exactly this body."""
    message, signature = _signed_message(headers, body)
    try:
        keys = await jwks_cache.get()
        if not _verifies(keys, signature, message):
            # fal may have rotated its keys: look again before refusing.
            keys = await jwks_cache.get(refresh=True)
            if not _verifies(keys, signature, message):
                raise WebhookRejected("The webhook signature does not verify.")
    except httpx.HTTPError as exc:
        logger.warning("could not fetch fal's JWKS: %s", exc.__class__.__name__)
        raise WebhookRejected("The signing keys could not be fetched to verify.") from exc


def parse_fal_webhook(body: bytes) -> dict[str, Any]:
    """The completion event of a verified body; raises WebhookRejected if it is none."""
    try:
        event = json.loads(body)
        event["request_id"] = str(event["request_id"])
    except (ValueError, KeyError, TypeError):
        raise WebhookRejected("The webhook body is not a fal completion.") from None
    if not isinstance(event, dict):
        raise WebhookRejected("The webhook body is not a fal completion.")
    return event
