"""fal's webhook keys: fetched over https, once at a time, and not again on every forgery.

Signed webhooks come from the fal emulator (it signs for the id of the key a request
was submitted with); the JWKS is served by a counting server on loopback
(tests/brenia/servers.py), so a test can tell how often Brenia fetched it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.test import AsyncClient

from generation.emulators.server import EmulatorThread
from generation.providers.fal_transport import FalAsyncClient
from generation.providers.fal_webhooks import verify_fal_webhook
from tests.brenia.servers import Listener, json_answer, listener
from tests.brenia.test_settings import settings_in_child
from tests.conftest import FAL_TEST_KEY
from tests.emulators.fal_support import webhook_receiver_fixture

pytestmark = pytest.mark.django_db(transaction=True)

__all__ = ["listener", "webhook_receiver_fixture"]  # fixtures these tests use

Signed = tuple[dict[str, str], bytes]
OUR_ACCOUNT = FAL_TEST_KEY.partition(":")[0]


@pytest.fixture
def signed_by(fal_emulator: EmulatorThread,
              webhook_receiver: Any) -> Callable[[str], Awaitable[Signed]]:
    """``await signed_by(key)``: a completion webhook the emulator signed for the
    account of ``key``, as (lower-case fal headers, body)."""
    async def sign(key: str) -> Signed:
        receiver = webhook_receiver()
        client = FalAsyncClient(key=key, queue_url=fal_emulator.base_url)
        await client.submit("fal-ai/flux/schnell", {"prompt": f"signed {uuid.uuid4()}"},
                            webhook_url=receiver.url)
        await client.aclose()
        await asyncio.to_thread(receiver.wait_for, 1, 15)
        headers, body = receiver.calls[0]
        return ({k.lower(): v for k, v in headers.items()
                 if k.lower().startswith("x-fal-webhook")}, body)
    return sign


@pytest.fixture
def emulator_jwks(fal_emulator: EmulatorThread) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(
        f"{fal_emulator.base_url}/.well-known/jwks.json").json()
    return document


async def post(headers: dict[str, str], body: bytes) -> Any:
    return await AsyncClient().post("/api/webhooks/fal", data=body,
                                    content_type="application/json", headers=headers)


async def test_a_webhook_signed_for_another_fal_account_is_refused(
        signed_by: Callable[[str], Awaitable[Signed]], fal_emulator: EmulatorThread,
        settings: Any) -> None:
    settings.FAL_WEBHOOK_JWKS_URL = f"{fal_emulator.base_url}/.well-known/jwks.json"
    settings.FAL_USER_ID = OUR_ACCOUNT
    headers, body = await signed_by("someone-else:their-secret")
    assert headers["x-fal-webhook-user-id"] == "someone-else"

    refused = await post(headers, body)
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_webhook_signature"
    assert "another fal account" in refused.json()["message"]
    # The very same webhook passes for that account: the account is what was refused.
    settings.FAL_USER_ID = "someone-else"
    taken = await post(headers, body)
    assert taken.status_code == 200, taken.content
    assert taken.json() == {"status": "unknown_request"}


async def test_an_http_jwks_is_fetched_only_from_a_provider_host_outside_production(
        signed_by: Callable[[str], Awaitable[Signed]], listener: Callable[..., Listener],
        emulator_jwks: dict[str, Any], settings: Any) -> None:
    server = listener(json_answer(emulator_jwks))
    headers, body = await signed_by(FAL_TEST_KEY)
    jwks = f"http://127.0.0.1:{server.port}/.well-known/jwks.json"
    settings.BRENIA_TRUSTED_RESULT_HOSTS = []

    settings.FAL_WEBHOOK_JWKS_URL = jwks
    assert (await post(headers, body)).status_code == 401
    assert server.accepted == 0  # refused before connecting

    settings.BRENIA_TRUSTED_RESULT_HOSTS = [f"127.0.0.1:{server.port}"]
    settings.FAL_WEBHOOK_JWKS_URL = f"{jwks}?trusted"
    assert (await post(headers, body)).status_code == 200
    assert server.accepted == 1

    settings.PRODUCTION = True
    settings.FAL_WEBHOOK_JWKS_URL = f"{jwks}?production"
    assert (await post(headers, body)).status_code == 401
    assert server.accepted == 1


def test_production_refuses_an_http_jwks_url_at_start(tmp_path: Path) -> None:
    result = settings_in_child({"BRENIA_ENV": "production", "SECRET_KEY": "s" * 50,
                                "FAL_WEBHOOK_JWKS_URL": "http://rest.fal.ai/jwks.json"},
                               tmp_path)
    assert result.returncode != 0
    assert "FAL_WEBHOOK_JWKS_URL must be a URL with scheme https" in result.stderr


async def test_concurrent_verifications_fetch_the_keys_once(
        signed_by: Callable[[str], Awaitable[Signed]], listener: Callable[..., Listener],
        emulator_jwks: dict[str, Any], settings: Any) -> None:
    server = listener(json_answer(emulator_jwks))
    settings.BRENIA_TRUSTED_RESULT_HOSTS = [f"127.0.0.1:{server.port}"]
    settings.FAL_WEBHOOK_JWKS_URL = f"http://127.0.0.1:{server.port}/.well-known/jwks.json"
    headers, body = await signed_by(FAL_TEST_KEY)

    await asyncio.gather(*(verify_fal_webhook(headers=headers, body=body)
                           for _ in range(20)))
    assert len(server.requests) == 1


async def test_a_failing_jwks_is_fetched_once_per_window_under_a_flood_of_forgeries(
        listener: Callable[..., Listener], settings: Any) -> None:
    server = listener(json_answer({"detail": "down"}, status=503))
    settings.BRENIA_TRUSTED_RESULT_HOSTS = [f"127.0.0.1:{server.port}"]
    settings.FAL_WEBHOOK_JWKS_URL = f"http://127.0.0.1:{server.port}/.well-known/jwks.json"

    def forged() -> dict[str, str]:
        return {"x-fal-webhook-request-id": str(uuid.uuid4()),
                "x-fal-webhook-user-id": "anyone",
                "x-fal-webhook-timestamp": str(int(time.time())),
                "x-fal-webhook-signature": uuid.uuid4().hex * 4}

    answers = await asyncio.gather(*(post(forged(), b'{"request_id": "x"}')
                                     for _ in range(30)))
    assert {answer.status_code for answer in answers} == {401}
    assert len(server.requests) == 1
