"""Real HTTP servers on loopback that count what reaches them, for the fetching tests.

Each :class:`Listener` runs a ThreadingHTTPServer on 127.0.0.1 and counts the TCP
connections it accepts, so a test can show that a refused fetch never connected.
What it answers is one of the small functions below.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import socket
from typing import Any

import pytest

Answer = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    server: Listener

    def do_GET(self) -> None:
        self.server.seen(self)
        self.server.answer(self)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Listener(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 counting accepted connections and requests."""

    daemon_threads = True

    def __init__(self, answer: Answer, *, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.answer = answer
        self.accepted = 0
        self.requests: list[tuple[str, str]] = []  # (path, Host header)
        self.sent = 0  # body bytes a streaming answer wrote
        self.stopped = threading.Event()  # a streaming answer found its client gone
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self) -> int:
        port: int = self.server_address[1]
        return port

    def get_request(self) -> tuple[socket, Any]:
        request = super().get_request()
        with self.lock:
            self.accepted += 1
        return request

    def seen(self, handler: Handler) -> None:
        with self.lock:
            self.requests.append((handler.path, handler.headers.get("Host", "")))

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def listener() -> Iterator[Callable[..., Listener]]:
    """``listener(answer, tls=None)`` starts a counting server, stopped after the test."""
    started: list[Listener] = []

    def start(answer: Answer, *, tls: ssl.SSLContext | None = None) -> Listener:
        server = Listener(answer, tls=tls)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def ok(handler: Handler) -> None:
    reply(handler, 200, b"ok")


def reply(handler: Handler, status: int, body: bytes, **headers: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    handler.wfile.write(body)


def json_answer(document: Any, status: int = 200) -> Answer:
    return lambda handler: reply(handler, status, json.dumps(document).encode(),
                                 Content_Type="application/json")


def redirect_to(url: str) -> Answer:
    return lambda handler: reply(handler, 302, b"", Location=url)


def endless(handler: Handler) -> None:
    """200 and no length, then 16 KiB after 16 KiB for as long as anyone reads."""
    _stream(handler, b"\x89" * 16384, pause=0.0, length=None)


def trickle(handler: Handler) -> None:
    """A 10,000-byte body, one byte every 50 ms: no read ever waits long."""
    _stream(handler, b"x", pause=0.05, length=10_000)


def _stream(handler: Handler, chunk: bytes, *, pause: float, length: int | None) -> None:
    server = handler.server
    handler.send_response(200)
    if length is not None:
        handler.send_header("Content-Length", str(length))
    handler.send_header("Connection", "close")
    handler.end_headers()
    try:
        while length is None or server.sent < length:
            handler.wfile.write(chunk)
            handler.wfile.flush()
            with server.lock:
                server.sent += len(chunk)
            if pause:
                time.sleep(pause)
    except OSError:  # the client hung up: what the test waits for
        server.stopped.set()
