"""Signed completion webhooks (spec §4) and the JWKS that verifies them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .records import QueuedRequest, dumps


class WebhookSigner:
    """A fresh Ed25519 key per emulator; its public half is served as a JWKS."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
        self.x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        self.kid = hashlib.sha256(raw).hexdigest()[:16]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.kid,
                          "use": "sig", "alg": "EdDSA"}]}

    def headers(self, *, request_id: str, user_id: str, body: bytes,
                timestamp: int | None = None) -> dict[str, str]:
        """The four ``X-Fal-Webhook-*`` headers for ``body``."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        message = "\n".join([request_id, user_id, stamp, hashlib.sha256(body).hexdigest()])
        return {
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": user_id,
            "X-Fal-Webhook-Timestamp": stamp,
            "X-Fal-Webhook-Signature": self._key.sign(message.encode()).hex(),
        }


def webhook_body(request: QueuedRequest) -> bytes:
    outcome = request.outcome
    assert outcome is not None
    body: dict[str, Any] = {"request_id": request.id, "gateway_request_id": request.id,
                            "status": "OK" if outcome.ok else "ERROR",
                            "payload": outcome.payload}
    if not outcome.ok:
        body["error"] = outcome.error or f"Invalid status code: {outcome.status}"
    if outcome.payload_error:
        body["payload_error"] = outcome.payload_error
    return dumps(body)


@dataclass
class Delivery:
    request_id: str
    url: str
    body: bytes
    attempts: list[dict[str, Any]] = field(default_factory=list)
    delivered: bool = False
    done: bool = False

    def snapshot(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "url": self.url, "delivered": self.delivered,
                "done": self.done, "attempts": list(self.attempts)}


async def deliver(session: aiohttp.ClientSession, signer: WebhookSigner, delivery: Delivery,
                  *, user_id: str, attempts: int, backoff_s: float, timeout_s: float) -> None:
    """POST until a 2xx or ``attempts`` tries; each try is signed afresh (new timestamp)."""
    for attempt in range(1, max(1, attempts) + 1):
        headers = {"Content-Type": "application/json", "User-Agent": "fal-webhook/emulator",
                   **signer.headers(request_id=delivery.request_id, user_id=user_id,
                                    body=delivery.body)}
        record: dict[str, Any] = {"attempt": attempt, "at": time.time()}
        try:
            async with session.post(delivery.url, data=delivery.body, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                record["status"] = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            record["error"] = type(exc).__name__
        delivery.attempts.append(record)
        if 200 <= int(record.get("status", 0)) < 300:
            delivery.delivered = True
            break
        if attempt < attempts:
            await asyncio.sleep(min(60.0, backoff_s * 2 ** (attempt - 1)))
    delivery.done = True
