"""Fetching result images: the link check never resolves a host on the event loop.

A real HTTP server on loopback serves the image. ``socket.getaddrinfo`` is wrapped
(the stdlib, not Brenia) to record which thread resolved which host.
"""

from __future__ import annotations

import asyncio
import io
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from PIL import Image as PILImage

from generation.jobs.results import fetch_image_bytes
from generation.jobs.runner import download_client
from generation.providers.base import MalformedResponse, OutputImage


def png() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (4, 4), "orange").save(out, "PNG")
    return out.getvalue()


PNG = png()


class ImageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def image_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ImageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


class Resolutions:
    """Every getaddrinfo call as (host, thread); ``hold`` makes one host wait for an event."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: list[tuple[str, threading.Thread]] = []
        self.hold: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def __call__(self, host: Any, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.calls.append((str(host), threading.current_thread()))
        release = self.hold.get(str(host))
        if release is not None:
            if not release.wait(timeout=10):
                raise AssertionError(f"resolving {host} blocked the event loop")
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.real(host, *args, **kwargs)

    def hosts_on(self, thread: threading.Thread) -> list[str]:
        return [host for host, on in self.calls if on is thread]


@pytest.fixture
def resolutions(monkeypatch: pytest.MonkeyPatch) -> Resolutions:
    recorder = Resolutions(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", recorder)
    return recorder


async def test_a_trusted_result_host_is_fetched_without_resolving_it_for_the_check(
        settings: Any, image_port: int, resolutions: Resolutions) -> None:
    loop_thread = threading.current_thread()
    url = f"http://localhost:{image_port}/result.png"  # loopback: trusted or refused
    settings.BRENIA_TRUSTED_RESULT_HOSTS = [f"localhost:{image_port}"]
    async with httpx.AsyncClient() as plain:
        assert (await plain.get(url)).content == PNG
    connection_only = len(resolutions.calls)  # what httpx's own connect resolves
    resolutions.calls.clear()

    data = await fetch_image_bytes(OutputImage(url=url), client=download_client())

    assert data == PNG
    assert resolutions.hosts_on(loop_thread) == []
    assert len(resolutions.calls) == connection_only  # one, for the connection itself


async def test_an_untrusted_result_host_is_resolved_off_the_loop_and_still_refused(
        settings: Any, image_port: int, resolutions: Resolutions) -> None:
    loop_thread = threading.current_thread()
    settings.BRENIA_TRUSTED_RESULT_HOSTS = []
    with pytest.raises(MalformedResponse) as refused:
        await fetch_image_bytes(
            OutputImage(url=f"http://localhost:{image_port}/result.png"),
            client=download_client())
    assert refused.value.code == "blocked_result_url"  # localhost is internal
    assert "localhost" in [host for host, _ in resolutions.calls]
    assert resolutions.hosts_on(loop_thread) == []


async def test_the_loop_keeps_running_while_a_result_host_resolves(
        settings: Any, resolutions: Resolutions) -> None:
    settings.BRENIA_TRUSTED_RESULT_HOSTS = []
    answered = threading.Event()
    resolutions.hold["slow-dns.example"] = answered

    async def other_work_on_the_loop() -> None:
        answered.set()  # runs only if the resolution is not holding the loop

    fetch = fetch_image_bytes(OutputImage(url="http://slow-dns.example/result.png"),
                              client=download_client())
    outcome, _ = await asyncio.gather(fetch, other_work_on_the_loop(), return_exceptions=True)
    assert isinstance(outcome, MalformedResponse), outcome
    assert outcome.code == "blocked_result_url"  # the host does not resolve
