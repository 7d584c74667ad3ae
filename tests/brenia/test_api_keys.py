"""API keys users manage themselves: shown once, scoped, expiring, revocable; and a
revoked key's (or a deactivated user's) open WebSockets close within a second."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import aiohttp
import httpx
import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from brenia.accounts.models import ApiKey, hash_api_key
from brenia.accounts.services import api_key_create, api_key_revoke
from brenia.asgi import application
from tests.conftest import SCALEOUT, ApiClient, LiveBrenia, Persona

# The acceptance bound: a revoke or a deactivation closes the sockets within this.
CLOSE_WITHIN = 1.0
DRY_RUN = "/api/images/generate?dry_run=true"
GENERATE_BODY = {"model": "flux-schnell", "inputs": {"prompt": "a lemon"}}


def key_for(persona: Persona, *scopes: str, **kwargs: Any) -> tuple[ApiKey, ApiClient]:
    key, raw = api_key_create(user=persona.user, name="test key",
                              scopes=list(scopes) or ["generate", "read"], **kwargs)
    return key, ApiClient(raw)


# --- creating and listing ---------------------------------------------------------------

def test_create_answers_the_key_once_and_stores_only_its_hash(owner: Persona) -> None:
    api = owner.api()
    created = api.post_json("/api/keys", {"name": "CI", "scopes": ["read"],
                                          "expires_in_days": 30})
    assert created.status_code == 201, created.content
    body = created.json()
    raw = body["key"]
    assert raw.startswith("brn_") and body["prefix"] == raw[:10]
    assert body["scopes"] == ["read"] and body["name"] == "CI"
    assert body["expires_at"] is not None and body["revoked_at"] is None
    row = ApiKey.objects.get(pk=body["id"])
    assert row.key_hash == hash_api_key(raw)
    assert raw not in json.dumps([str(v) for v in row.__dict__.values()])

    listed = api.get_json("/api/keys")
    assert listed.status_code == 200
    assert raw not in listed.content.decode() and row.key_hash not in listed.content.decode()
    entry = next(k for k in listed.json() if k["id"] == row.pk)
    assert set(entry) == {"id", "name", "prefix", "scopes", "created_at", "expires_at",
                          "last_used_at", "revoked_at"}
    # The new key works, with what it was given.
    assert ApiClient(raw).get_json("/api/jobs").status_code == 200


def test_invalid_key_requests_name_every_bad_field(owner: Persona) -> None:
    answer = owner.api().post_json("/api/keys", {
        "name": "x", "expires_at": "2001-01-01T00:00:00Z", "expires_in_days": 3})
    assert answer.status_code == 422
    fields = {e["field"] for e in answer.json()["errors"]}
    assert fields == {"expires_at", "expires_in_days"}
    past = owner.api().post_json("/api/keys", {"name": "x", "expires_at": "2001-01-01T00:00:00Z"})
    assert past.json()["errors"] == [{"field": "expires_at", "problem": "must be in the future"}]
    unknown = owner.api().post_json("/api/keys", {"name": "x", "scopes": ["root"]})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "scopes.0"


# --- scopes -----------------------------------------------------------------------------

def test_read_only_key_cannot_generate_but_can_read(owner: Persona) -> None:
    _, reader = key_for(owner, "read")
    refused = reader.post_json(DRY_RUN, GENERATE_BODY)
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_scope"
    assert "'generate'" in refused.json()["message"]
    assert refused.json()["errors"] == [{"field": "authorization",
                                         "problem": "needs the generate scope"}]
    assert reader.get_json("/api/jobs").status_code == 200


def test_generate_key_can_generate_but_not_manage_the_account(owner: Persona) -> None:
    _, worker = key_for(owner, "generate")
    assert worker.post_json(DRY_RUN, GENERATE_BODY).status_code == 200
    assert worker.get_json("/api/jobs").json()["code"] == "insufficient_scope"  # no read
    for answer in (worker.get_json("/api/keys"),
                   worker.post_json("/api/keys", {"name": "escalate", "scopes": ["admin"]}),
                   worker.post_json("/api/account/webhook-secret/rotate"),
                   worker.post_json("/api/brand-kits", {"name": "Kit"})):
        assert answer.status_code == 403
        assert answer.json()["code"] == "insufficient_scope"
        assert "'admin'" in answer.json()["message"]


def test_a_browser_session_has_every_scope(owner: Persona) -> None:
    browser = Client()
    browser.force_login(owner.user)
    assert browser.get("/api/keys").status_code == 200
    assert browser.get("/api/account/webhook-secret").status_code == 200


def test_every_authenticated_operation_documents_the_403(owner: Persona) -> None:
    document = owner.api().get_json("/api/openapi.json").json()
    secured = [(path, method, operation) for path, operations in document["paths"].items()
               for method, operation in operations.items() if operation.get("security")]
    assert any(path == "/api/keys" for path, _, _ in secured)
    for path, method, operation in secured:
        assert "403" in operation["responses"], (method, path)


# --- expiry and revocation ----------------------------------------------------------------

def test_expired_key_is_refused(owner: Persona) -> None:
    key, client = key_for(owner, "read", expires_in_days=1)
    assert client.get_json("/api/jobs").status_code == 200
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    answer = client.get_json("/api/jobs")
    assert answer.status_code == 401 and answer.json()["code"] == "unauthorized"


def test_revoked_key_is_refused_on_the_next_request(owner: Persona) -> None:
    key, client = key_for(owner, "read")
    assert client.get_json("/api/jobs").status_code == 200
    assert owner.api().delete(f"/api/keys/{key.pk}",
                              headers={"Authorization": f"Bearer {owner.key}"}).status_code == 204
    assert client.get_json("/api/jobs").status_code == 401
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_another_users_key_is_not_found_and_stays_alive(owner: Persona,
                                                        outsider: Persona) -> None:
    key, client = key_for(owner, "read")
    answer = outsider.api().delete(f"/api/keys/{key.pk}",
                                   headers={"Authorization": f"Bearer {outsider.key}"})
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"
    assert client.get_json("/api/jobs").status_code == 200
    assert all(k["id"] != key.pk for k in outsider.api().get_json("/api/keys").json())


# --- the page ------------------------------------------------------------------------------

def test_keys_page_creates_shows_once_and_revokes(owner: Persona) -> None:
    assert Client().get("/account/keys/").status_code == 302  # login required
    browser = Client()
    browser.force_login(owner.user)
    page = browser.get("/account/keys/")
    assert page.status_code == 200 and b"Create a key" in page.content
    created = browser.post("/account/keys/", {"name": "Shop sync", "scopes": ["read"],
                                              "expires_in_days": "90"})
    assert created.status_code == 201
    key = ApiKey.objects.get(user=owner.user, name="Shop sync")
    raw = created.content.decode().split('id="new-key-value" type="text" value="')[1].split('"')[0]
    assert key.key_hash == hash_api_key(raw) and key.scopes == ["read"]
    assert raw not in browser.get("/account/keys/").content.decode()  # never again
    revoked = browser.post(f"/account/keys/{key.pk}/revoke")
    assert revoked.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert browser.post("/account/keys/", {"name": "", "scopes": []}).status_code == 422


# --- sockets -------------------------------------------------------------------------------

def communicator(raw: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, "/ws/jobs/", headers=[
        (b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"),
        (b"authorization", f"Bearer {raw}".encode())])


async def open_socket(raw: str) -> WebsocketCommunicator:
    ws = communicator(raw)
    connected, _ = await ws.connect()
    assert connected
    assert (await ws.receive_json_from())["type"] == "snapshot"
    return ws


@pytest.mark.django_db(transaction=True)
async def test_revoking_a_key_closes_its_socket_within_a_second(owner: Persona) -> None:
    key, raw = await database_sync_to_async(api_key_create)(user=owner.user, name="socket")
    ws = await open_socket(raw)
    other = await open_socket(owner.key)  # the same user's other key stays open
    await database_sync_to_async(api_key_revoke)(key=key)
    closed = await ws.receive_output(timeout=CLOSE_WITHIN)
    assert closed == {"type": "websocket.close", "code": 4401}
    assert await other.receive_nothing(timeout=0.1)
    await other.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_deactivating_a_user_closes_their_sockets_within_a_second(
        owner: Persona) -> None:
    ws = await open_socket(owner.key)

    def deactivate() -> None:
        owner.user.is_active = False
        owner.user.save()

    await database_sync_to_async(deactivate)()
    closed = await ws.receive_output(timeout=CLOSE_WITHIN)
    assert closed == {"type": "websocket.close", "code": 4401}


@pytest.mark.django_db(transaction=True)
async def test_a_key_without_read_cannot_open_a_socket(owner: Persona) -> None:
    _, raw = await database_sync_to_async(api_key_create)(user=owner.user, name="w",
                                                          scopes=["generate"])
    ws = communicator(raw)
    connected, _ = await ws.connect()
    assert connected
    assert (await ws.receive_json_from())["code"] == "insufficient_scope"
    assert await ws.receive_output() == {"type": "websocket.close", "code": 4403}


async def _socket_closed_after(url: str, raw: str, revoke: Any) -> tuple[int | None, float]:
    """Open a socket on the live server with ``raw``, call ``revoke()``, and return the
    close code and how long the close took."""
    ws_url = url.replace("http://", "ws://") + "/ws/jobs/"
    async with aiohttp.ClientSession() as session, session.ws_connect(
            ws_url, headers={"Authorization": f"Bearer {raw}",
                             "Origin": "http://127.0.0.1"}) as ws:
        first = await ws.receive(timeout=10)
        assert json.loads(first.data)["type"] == "snapshot"
        await revoke()
        started = asyncio.get_running_loop().time()
        message = await ws.receive(timeout=CLOSE_WITHIN)
        elapsed = asyncio.get_running_loop().time() - started
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
        return ws.close_code, elapsed


@pytest.mark.e2e
def test_revoke_through_the_api_closes_the_live_servers_socket(live_brenia: LiveBrenia,
                                                               owner: Persona) -> None:
    key, raw = api_key_create(user=owner.user, name="live socket")

    async def revoke() -> None:
        async with httpx.AsyncClient(base_url=live_brenia.url) as client:
            answer = await client.delete(f"/api/keys/{key.pk}",
                                         headers={"Authorization": f"Bearer {owner.key}"})
            assert answer.status_code == 204

    code, elapsed = asyncio.run(_socket_closed_after(live_brenia.url, raw, revoke))
    assert code == 4401 and elapsed < CLOSE_WITHIN


@pytest.mark.e2e
@pytest.mark.skipif(not SCALEOUT, reason="another process shares the channel layer only "
                                         "through Redis (scale-out)")
def test_revoke_in_another_process_closes_the_socket(live_brenia: LiveBrenia,
                                                     owner: Persona) -> None:
    key, raw = api_key_create(user=owner.user, name="cross-process socket")

    async def revoke() -> None:
        await database_sync_to_async(api_key_revoke)(key=key)

    code, elapsed = asyncio.run(_socket_closed_after(live_brenia.url, raw, revoke))
    assert code == 4401 and elapsed < CLOSE_WITHIN


@pytest.mark.django_db(transaction=True)
async def test_a_socket_closes_when_its_key_expires(owner: Persona) -> None:
    soon = timezone.now() + timedelta(seconds=2)
    _, raw = await database_sync_to_async(api_key_create)(user=owner.user, name="brief",
                                                          expires_at=soon)
    ws = await open_socket(raw)
    # Not a timing claim: the bound only keeps a broken timer from hanging the test.
    closed = await ws.receive_output(timeout=10)
    assert closed == {"type": "websocket.close", "code": 4401}
