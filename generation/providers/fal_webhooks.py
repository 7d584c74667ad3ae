"""Verifying fal's completion webhooks.

fal signs ``request_id \\n user_id \\n timestamp \\n sha256(body)`` with Ed25519; the
public keys come from a JWKS whose address (and the clock tolerance) are settings,
so tests point them at the emulator. The JWKS is fetched over https through
Brenia's pinned client, by one caller at a time, and a failure is remembered for a
while, so unsigned posts cannot make Brenia fetch it over and over. A webhook signed
for another fal account than ``FAL_USER_ID`` is refused. What a verified completion
does to a job is ``generation.jobs.fal_webhooks``' business.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
import time
import weakref
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings

from brenia.errors import DomainError
from brenia.safe_http import FetchStopped, SafeClient
from brenia.urlguard import BlockedURL, parse_url
from generation.providers.hosts import trusted_result_hosts

logger = logging.getLogger(__name__)

JWKS_TTL = 24 * 3600
# A signature no cached key verifies makes Brenia look for rotated keys, at most this often.
JWKS_REFRESH_AFTER_FAILURE = 60
# A failed fetch is remembered this long: posts with made-up signatures cannot make
# Brenia fetch once each.
JWKS_FAILURE_TTL = 30.0
JWKS_MAX_BYTES = 64 * 1024
JWKS_DEADLINE = 10.0  # fal waits for the answer to its webhook meanwhile
HEADERS = ("x-fal-webhook-request-id", "x-fal-webhook-user-id", "x-fal-webhook-timestamp",
           "x-fal-webhook-signature")


class WebhookRejected(DomainError):
    status_code = 401
    code = "invalid_webhook_signature"


class _JwksCache:
    """fal's signing keys: fetched by one caller at a time, kept a day, failures kept briefly.

    Shared by every event loop of the process; the lock is per loop (an asyncio lock
    belongs to one), which keeps it to one fetch at a time per loop.
    """

    def __init__(self) -> None:
        self.url = ""
        self.keys: list[Ed25519PublicKey] = []
        self.fetched_at = -math.inf
        self.failed_url = ""
        self.failed_at = -math.inf
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary())

    async def get(self, *, refresh: bool = False) -> list[Ed25519PublicKey]:
        """The current keys; ``refresh`` asks for newer ones if these are a minute old.

        Raises WebhookRejected when the keys cannot be had, now or within the last
        JWKS_FAILURE_TTL seconds.
        """
        url = settings.FAL_WEBHOOK_JWKS_URL
        if not self._due(url, refresh=refresh):
            return self.keys
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop) or self._locks.setdefault(loop, asyncio.Lock())
        async with lock:
            if not self._due(url, refresh=refresh):  # fetched while this caller waited
                return self.keys
            try:
                keys = await _fetch_keys(url)
            except WebhookRejected:
                self.failed_url, self.failed_at = url, time.monotonic()
                raise
            self.url, self.keys, self.fetched_at = url, keys, time.monotonic()
            return keys

    def _due(self, url: str, *, refresh: bool) -> bool:
        now = time.monotonic()
        if url == self.failed_url and now - self.failed_at < JWKS_FAILURE_TTL:
            raise WebhookRejected("The signing keys could not be fetched to verify.")
        age = now - self.fetched_at
        return (url != self.url or age > JWKS_TTL
                or (refresh and age > JWKS_REFRESH_AFTER_FAILURE))


async def _fetch_keys(url: str) -> list[Ed25519PublicKey]:
    """fal's Ed25519 keys from the JWKS at ``url``, fetched through the pinned client.

    Over https only, except from a configured provider host (the emulator) outside
    production. Any failure is a WebhookRejected, logged without the response.
    """
    trusted = trusted_result_hosts()
    try:
        parsed = parse_url(url, field="FAL_WEBHOOK_JWKS_URL")
        if parsed.scheme != "https" and (settings.PRODUCTION or not parsed.allowed_by(trusted)):
            raise BlockedURL("FAL_WEBHOOK_JWKS_URL must be an https URL.")
        async with SafeClient(trusted_hosts=trusted, timeout=JWKS_DEADLINE) as client:
            fetched = await client.fetch("GET", url, field="FAL_WEBHOOK_JWKS_URL",
                                         max_bytes=JWKS_MAX_BYTES, deadline=JWKS_DEADLINE)
        if fetched.status_code != 200:
            raise ValueError(f"the JWKS answered {fetched.status_code}")
        keys = [_public_key(jwk) for jwk in json.loads(fetched.body)["keys"]
                if isinstance(jwk, dict) and jwk.get("kty") == "OKP"
                and jwk.get("crv") == "Ed25519"]
        if not keys:
            raise ValueError("the JWKS holds no Ed25519 key")
    except (BlockedURL, FetchStopped, httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        logger.warning("could not fetch fal's JWKS from %s: %s: %s", url,
                       exc.__class__.__name__, exc)
        raise WebhookRejected("The signing keys could not be fetched to verify.") from exc
    return keys


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
    """Raise WebhookRejected unless a current JWKS key signed exactly this body, for
    Brenia's own fal account (``FAL_USER_ID``, when set)."""
    message, signature = _signed_message(headers, body)
    keys = await jwks_cache.get()
    if not _verifies(keys, signature, message):
        # fal may have rotated its keys: look again before refusing.
        keys = await jwks_cache.get(refresh=True)
        if not _verifies(keys, signature, message):
            raise WebhookRejected("The webhook signature does not verify.")
    # Checked once the signature holds, so the answer says nothing about the account
    # to someone who cannot sign.
    if settings.FAL_USER_ID and headers["x-fal-webhook-user-id"] != settings.FAL_USER_ID:
        raise WebhookRejected("The webhook was signed for another fal account.")


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
