"""Helpers for the fal emulator tests: a running emulator, SDK clients aimed at it,
and a webhook receiver. Import the fixtures explicitly into each test module."""

from __future__ import annotations

import base64
import hashlib
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import fal_client
import httpx
import pytest
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fal_client.client import USER_AGENT, BackupDomainTransport
from PIL import Image

from generation.emulators.fal import FAL_STATE, FalEmulatorConfig, FalEmulatorState, create_app
from generation.emulators.server import EmulatorThread
from generation.providers.fal_transport import FAL_HOSTS, FalAsyncClient

KEY = "brenia-test:s3cret"


class SyncRewritingTransport(httpx.BaseTransport):
    """The sync twin of ``fal_transport.RewritingTransport``."""

    def __init__(self, base_url: str) -> None:
        self.base = httpx.URL(base_url)
        self.inner = BackupDomainTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host in FAL_HOSTS:
            request.url = request.url.copy_with(scheme=self.base.scheme, host=self.base.host,
                                                port=self.base.port)
            request.headers["Host"] = request.url.netloc.decode("ascii")
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True)
class SyncFalClient(fal_client.SyncClient):
    """The stock SyncClient with its transport aimed at ``queue_url``."""

    queue_url: str = ""

    @cached_property
    def _client(self) -> httpx.Client:
        return httpx.Client(
            transport=SyncRewritingTransport(self.queue_url),
            headers={"Authorization": self._auth.header_value, "User-Agent": USER_AGENT},
            timeout=self.default_timeout, follow_redirects=True)


@dataclass
class RunningFal:
    url: str
    thread: EmulatorThread

    @property
    def state(self) -> FalEmulatorState:
        assert self.thread.app is not None
        return self.thread.app[FAL_STATE]

    def async_client(self, key: str = KEY, **kwargs: Any) -> FalAsyncClient:
        return FalAsyncClient(key=key, queue_url=self.url, **kwargs)

    def sync_client(self, key: str = KEY) -> SyncFalClient:
        return SyncFalClient(key=key, queue_url=self.url)

    def http(self, key: str = KEY) -> httpx.Client:
        """Raw HTTP, for what the SDK cannot do (SSE, headers/codes, control routes)."""
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Key {key}"},
                            timeout=10)

    def fetch(self, url: str) -> httpx.Response:
        response = httpx.get(url, timeout=10)
        response.raise_for_status()
        return response


def start_fal(**config: Any) -> RunningFal:
    thread = EmulatorThread(lambda: create_app(FalEmulatorConfig(**config)))
    return RunningFal(thread.start(), thread)


@pytest.fixture(name="fal_factory")
def fal_factory_fixture() -> Iterator[Callable[..., RunningFal]]:
    """``fal_factory(**config)`` starts an emulator (instant, seeded) stopped at teardown."""
    started: list[RunningFal] = []

    def make(**config: Any) -> RunningFal:
        config.setdefault("latency", "instant")
        config.setdefault("seed", 7)
        emulator = start_fal(**config)
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.thread.stop()


@pytest.fixture(name="fal")
def fal_fixture(fal_factory: Callable[..., RunningFal]) -> RunningFal:
    return fal_factory()


@dataclass
class WebhookReceiver:
    """Collects webhook POSTs; answers 500 to the first ``fail_first`` of them."""

    fail_first: int = 0
    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""
    thread: EmulatorThread | None = None

    def app(self) -> web.Application:
        async def hook(request: web.Request) -> web.Response:
            self.calls.append((dict(request.headers), await request.read()))
            failing = len(self.calls) <= self.fail_first
            return web.Response(status=500 if failing else 200, text="ok")
        app = web.Application()
        app.router.add_post("/hook", hook)
        return app

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} webhook calls, got {len(self.calls)}")
            time.sleep(0.02)


@pytest.fixture(name="webhook_receiver")
def webhook_receiver_fixture() -> Iterator[Callable[..., WebhookReceiver]]:
    receivers: list[WebhookReceiver] = []

    def make(fail_first: int = 0) -> WebhookReceiver:
        receiver = WebhookReceiver(fail_first=fail_first)
        receiver.thread = EmulatorThread(receiver.app)
        receiver.url = receiver.thread.start() + "/hook"
        receivers.append(receiver)
        return receiver

    yield make
    for receiver in receivers:
        assert receiver.thread is not None
        receiver.thread.stop()


def verify_webhook(jwks: dict[str, Any], headers: dict[str, str], body: bytes,
                   *, tolerance: int = 300) -> bool:
    """fal's documented check: Ed25519 over id, user, timestamp and sha256(body)."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        request_id = lower["x-fal-webhook-request-id"]
        user_id = lower["x-fal-webhook-user-id"]
        stamp = lower["x-fal-webhook-timestamp"]
        signature = bytes.fromhex(lower["x-fal-webhook-signature"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - int(stamp)) > tolerance:
        return False
    message = "\n".join([request_id, user_id, stamp, hashlib.sha256(body).hexdigest()]).encode()
    for key in jwks["keys"]:
        raw = base64.urlsafe_b64decode(key["x"] + "=" * (-len(key["x"]) % 4))
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
            return True
        except InvalidSignature:
            continue
    return False


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def data_uri_bytes(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    assert header.endswith(";base64"), header
    return base64.b64decode(payload)


def image_data_uri(image: Image.Image, fmt: str = "png") -> str:
    buffer = io.BytesIO()
    image.save(buffer, fmt.upper())
    mime = "image/png" if fmt == "png" else f"image/{fmt}"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
