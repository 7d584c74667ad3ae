"""Request bodies over the cap are refused at the door (413), declared or streamed,
on anonymous and authenticated routes alike, before Django reads them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from django.conf import settings

from tests.conftest import LiveBrenia, Persona

pytestmark = [pytest.mark.e2e]
CHUNK = b"x" * (1024 * 1024)


def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = CHUNK[: total - sent]
        sent += len(piece)
        yield piece


@pytest.mark.parametrize("path, authenticated", [
    ("/api/images/generate", True),
    ("/api/webhooks/fal", False),
    ("/accounts/login/", False),
])
def test_an_oversized_body_is_refused_whole_or_streamed(live_brenia: LiveBrenia, owner: Persona,
                                                        path: str, authenticated: bool) -> None:
    limit = settings.BRENIA_MAX_BODY_BYTES
    headers = {"Authorization": f"Bearer {owner.key}"} if authenticated else {}
    with httpx.Client(base_url=live_brenia.url, headers=headers, timeout=30) as client:
        declared = client.post(path, content=b"x" * (limit + 1),
                               headers={"Content-Type": "application/json"})
        streamed = client.post(path, content=_chunks(limit + 2 * len(CHUNK)),
                               headers={"Content-Type": "application/json"})
        for response in (declared, streamed):
            assert response.status_code == 413, (path, response.status_code, response.text[:200])
            body = response.json()
            assert body["code"] == "request_too_large"
            assert body["errors"] == [{"field": "body",
                                       "problem": f"must be at most {limit} bytes"}]
        # The server is fine afterwards, and a body under the cap goes through as usual.
        ok = client.post("/api/images/generate", json={"model": "flux-schnell", "inputs": {}},
                         headers={"Authorization": f"Bearer {owner.key}"})
        assert ok.status_code == 422 and ok.json()["errors"][0]["field"] == "inputs.prompt"


def test_a_content_length_that_is_not_a_number_is_a_400(live_brenia: LiveBrenia) -> None:
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(live_brenia.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(b"POST /api/webhooks/fal HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Length: 12x\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
