"""Completion webhooks (spec §4): body shapes, Ed25519 signatures against the JWKS, retries."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from tests.emulators.fal_support import (  # noqa: F401  (fixtures)
    KEY,
    RunningFal,
    WebhookReceiver,
    fal_factory_fixture,
    fal_fixture,
    verify_webhook,
    wait_until,
    webhook_receiver_fixture,
)

SCHNELL = "fal-ai/flux/schnell"


def jwks_of(fal: RunningFal) -> dict[str, object]:
    keys = httpx.get(f"{fal.url}/.well-known/jwks.json", timeout=5).json()
    assert keys["keys"][0]["kty"] == "OKP" and keys["keys"][0]["crv"] == "Ed25519"
    return keys


async def test_success_webhook_is_signed_and_carries_the_output(
        fal: RunningFal, webhook_receiver: Callable[..., WebhookReceiver]) -> None:
    receiver = webhook_receiver()
    client = fal.async_client()
    handle = await client.submit(SCHNELL, {"prompt": "hooked", "image_size": "square"},
                                 webhook_url=receiver.url)
    result = await handle.get()
    receiver.wait_for(1)
    headers, body = receiver.calls[0]
    payload = json.loads(body)
    assert payload == {"request_id": handle.request_id, "gateway_request_id": handle.request_id,
                       "status": "OK", "payload": result}
    assert headers["X-Fal-Webhook-Request-Id"] == handle.request_id
    assert headers["X-Fal-Webhook-User-Id"] == KEY.split(":")[0]
    jwks = jwks_of(fal)
    assert verify_webhook(jwks, headers, body)
    assert not verify_webhook(jwks, headers, body.replace(b'"OK"', b'"ER"'))
    forged = {**headers, "X-Fal-Webhook-Request-Id": "someone-else"}
    assert not verify_webhook(jwks, forged, body)
    await client.aclose()


async def test_failure_webhook_reports_the_model_error(
        fal: RunningFal, webhook_receiver: Callable[..., WebhookReceiver]) -> None:
    receiver = webhook_receiver()
    client = fal.async_client()
    handle = await client.submit(SCHNELL, {"image_size": "square"}, webhook_url=receiver.url)
    receiver.wait_for(1)
    headers, body = receiver.calls[0]
    payload = json.loads(body)
    assert payload["status"] == "ERROR" and payload["error"] == "Invalid status code: 422"
    assert payload["payload"]["detail"][0]["loc"] == ["body", "prompt"]
    assert payload["request_id"] == handle.request_id
    assert verify_webhook(jwks_of(fal), headers, body)
    await client.aclose()


async def test_malformed_result_webhook_has_a_payload_error(
        fal: RunningFal, webhook_receiver: Callable[..., WebhookReceiver]) -> None:
    receiver = webhook_receiver()
    client = fal.async_client()
    await client.submit(SCHNELL, {"prompt": "x [[fal:malformed]]"}, webhook_url=receiver.url)
    receiver.wait_for(1)
    payload = json.loads(receiver.calls[0][1])
    assert payload["status"] == "OK" and payload["payload"] is None
    assert "not JSON serializable" in payload["payload_error"]
    await client.aclose()


@pytest.mark.parametrize(("fail_first", "attempts", "delivered"), [(2, 3, True), (9, 4, False)])
async def test_failed_deliveries_are_retried_a_bounded_number_of_times(
        fal: RunningFal, webhook_receiver: Callable[..., WebhookReceiver], fail_first: int,
        attempts: int, delivered: bool) -> None:
    receiver = webhook_receiver(fail_first=fail_first)
    client = fal.async_client()
    handle = await client.submit(SCHNELL, {"prompt": "retry me", "image_size": "square"},
                                 webhook_url=receiver.url)
    await handle.get()
    wait_until(lambda: all(d["done"] for d in fal.state.webhook_deliveries()))
    [delivery] = fal.state.webhook_deliveries()
    assert len(delivery["attempts"]) == attempts == len(receiver.calls)
    assert delivery["delivered"] is delivered
    bodies = {body for _, body in receiver.calls}
    assert len(bodies) == 1  # same body, freshly signed each time
    assert all(verify_webhook(jwks_of(fal), h, b) for h, b in receiver.calls)
    await client.aclose()


def test_unreachable_webhook_does_not_affect_the_request(
        fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(webhook_attempts=2)
    client = emulator.sync_client()
    result = client.subscribe(SCHNELL, {"prompt": "nobody listens", "image_size": "square"})
    assert result["images"]
    handle = client.submit(SCHNELL, {"prompt": "x", "image_size": "square"},
                           webhook_url="http://127.0.0.1:9/hook")
    assert handle.get()["images"]
    wait_until(lambda: bool(emulator.state.webhook_deliveries())
               and emulator.state.webhook_deliveries()[0]["done"])
    [delivery] = emulator.state.webhook_deliveries()
    assert not delivery["delivered"] and len(delivery["attempts"]) == 2
    assert "error" in delivery["attempts"][0]
    client._client.close()
