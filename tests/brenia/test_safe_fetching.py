"""Brenia's own fetches connect only to addresses it checked, and stop on time and size.

Real servers on loopback (tests/brenia/servers.py) count every connection they
accept: a refused fetch must leave the count at 0. Host names are resolved by the
resolver handed to the client (``SafeClient(resolver=...)``, the injection point for
DNS), so a test can make a name answer differently from one lookup to the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from brenia.safe_http import ResponseTooLarge, ResponseTooSlow, SafeClient
from brenia.urlguard import BlockedURL, address_problem
from generation.jobs.results import fetch_image_bytes
from generation.jobs.runner import download_client
from generation.providers.base import (
    MalformedResponse,
    OutputImage,
    PermanentProviderError,
    TransientProviderError,
)
from generation.providers.fal_webhooks import WebhookRejected, verify_fal_webhook
from generation.providers.gemini import _reference_part
from tests.brenia.servers import Listener, endless, listener, ok, redirect_to, trickle

__all__ = ["listener"]  # a fixture these tests use

Start = Callable[..., Listener]
# example.com's address: public, so it passes the check. Nothing answers on the
# listener's port there; a fetch sent to it fails or times out, far from loopback.
PUBLIC = "93.184.215.14"

# Every way of writing "this machine" that a URL check has been fooled by. {port} is
# the listener's: a fetch that got through would be counted there.
BYPASSES = [
    "HTTP://127.0.0.1:{port}/x",  # upper-case scheme
    "hTtP://127.0.0.1:{port}/x",
    "http://[::ffff:127.0.0.1]:{port}/x",  # IPv4-mapped
    "http://[::ffff:7f00:1]:{port}/x",
    "http://[64:ff9b::7f00:1]:{port}/x",  # NAT64
    "http://[2002:7f00:1::]:{port}/x",  # 6to4
    "http://[::127.0.0.1]:{port}/x",  # IPv4-compatible
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{port}/x",  # Teredo, client 127.0.0.1
    "http://[::1]:{port}/x",
    "http://0.0.0.0:{port}/x",  # Linux connects the unspecified address to loopback
    "http://[::]:{port}/x",
    "http://2130706433:{port}/x",  # decimal
    "http://0x7f000001:{port}/x",  # hex
    "http://0x7f.0.0.1:{port}/x",
    "http://0177.0.0.1:{port}/x",  # octal
    "http://127.1:{port}/x",  # short form
    "http://localhost:{port}/x",  # a name that resolves to loopback
    "http://localhost.:{port}/x",
    "ftp://127.0.0.1:{port}/x",  # other schemes
    "gopher://127.0.0.1:{port}/_x",
    "file:///etc/passwd",
    "http://127.0.0.1:99999/x",  # port out of range
    "http://127.0.0.1:{wrapped}/x",  # out of range, but the listener's port modulo 65536
    "http://127.0.0.1:-{port}/x",
    "http://[::1:{port}/x",  # IPv6 without its closing bracket
    "http://::1:{port}/x",  # without brackets
    "http://::ffff:127.0.0.1:{port}/x",
    "http://[127.0.0.1]:{port}/x",  # brackets around no IPv6 address
]


def bypass(template: str, server: Listener) -> str:
    return template.format(port=server.port, wrapped=server.port + 65536)


class Resolver:
    """DNS for the client under test: answer ``n`` goes to the ``n``-th lookup (the last
    one to any later lookup), so a name can answer differently each time."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


async def fetch(client: SafeClient, url: str) -> Any:
    return await client.fetch("GET", url, field="image_url", max_bytes=4096, deadline=10)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "255.255.255.255", "224.0.0.1", "240.0.0.1", "192.0.0.8", "198.18.0.1",
    "::1", "::", "fe80::1%eth0", "fc00::1", "fd00:ec2::254", "fec0::1", "ff02::1",
    "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::", "::192.168.0.1",
])
def test_internal_addresses_are_refused(address: str) -> None:
    assert address_problem(address) == "points to an internal address"


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "192.0.0.9", "2606:4700::1111",
                                     "64:ff9b::808:808", "2002:808:808::"])
def test_public_addresses_are_taken(address: str) -> None:
    assert address_problem(address) is None


def test_the_listener_counts_what_reaches_it(listener: Start) -> None:
    """Without Brenia's client these spellings all reach the listener: the bypasses
    below are real, and a count of 0 means something stopped them."""
    server = listener(ok)
    for template in ("HTTP://127.0.0.1:{port}/x", "http://2130706433:{port}/x",
                     "http://localhost:{port}/x", "http://0.0.0.0:{port}/x"):
        assert httpx.get(bypass(template, server)).text == "ok"
    assert server.accepted == 4


@pytest.mark.parametrize("template", BYPASSES)
async def test_every_bypass_is_refused_before_any_connection(template: str,
                                                             listener: Start) -> None:
    server = listener(ok)
    async with SafeClient() as client:
        with pytest.raises(BlockedURL) as refused:
            await fetch(client, bypass(template, server))
    assert [problem.field for problem in refused.value.errors] == ["image_url"]
    assert server.accepted == 0


@pytest.mark.parametrize("template", ["HTTP://localhost:{port}/x",
                                      "http://[::ffff:127.0.0.1]:{port}/x",
                                      "http://2130706433:{port}/x",
                                      "http://127.0.0.1:{wrapped}/x",
                                      "http://[::1:{port}/x"])
async def test_every_fetch_site_refuses_them_with_its_own_error(
        template: str, listener: Start, settings: Any) -> None:
    server = listener(ok)
    url = bypass(template, server)
    settings.BRENIA_TRUSTED_RESULT_HOSTS = []

    with pytest.raises(MalformedResponse) as result:
        await fetch_image_bytes(OutputImage(url=url), client=download_client())
    assert result.value.code == "blocked_result_url"
    with pytest.raises(PermanentProviderError) as reference:
        await _reference_part(url)
    assert reference.value.code == "url_not_allowed"
    settings.FAL_WEBHOOK_JWKS_URL = url
    with pytest.raises(WebhookRejected):
        await verify_fal_webhook(headers={
            "x-fal-webhook-request-id": "r", "x-fal-webhook-user-id": "u",
            "x-fal-webhook-timestamp": str(int(time.time())),
            "x-fal-webhook-signature": "00" * 64}, body=b"{}")
    assert server.accepted == 0


async def test_a_name_that_rebinds_to_loopback_never_reaches_it(listener: Start) -> None:
    server = listener(ok)
    dns = Resolver([PUBLIC], ["127.0.0.1"])  # public for the check, loopback after
    async with SafeClient(resolver=dns, timeout=1.0) as client:
        with contextlib.suppress(httpx.TransportError, ResponseTooSlow):
            await client.fetch("GET", f"http://rebind.brenia.test:{server.port}/x",
                               max_bytes=4096, deadline=3)
    assert dns.lookups == ["rebind.brenia.test"]  # one lookup, checked and connected to
    assert server.accepted == 0


async def test_one_internal_address_among_public_ones_refuses_the_name(
        listener: Start) -> None:
    server = listener(ok)
    dns = Resolver([PUBLIC, "127.0.0.1"])
    async with SafeClient(resolver=dns) as client:
        with pytest.raises(BlockedURL):
            await fetch(client, f"http://mixed.brenia.test:{server.port}/x")
    assert server.accepted == 0


async def test_a_trusted_name_is_connected_to_the_address_it_resolved_to(
        listener: Start) -> None:
    """The pin at work: the name exists only in the client's resolver, which answers
    the listener's address once and an unused one after; the connection goes to the
    answer it got and still carries the name."""
    server = listener(ok)
    dns = Resolver(["127.0.0.1"], ["10.255.255.1"])
    url = f"http://pinned.brenia.test:{server.port}/x"
    async with SafeClient(trusted_hosts={f"pinned.brenia.test:{server.port}"},
                          resolver=dns) as client:
        fetched = await fetch(client, url)
        with pytest.raises(BlockedURL):  # the same address under an untrusted name
            await fetch(client, f"http://other.brenia.test:{server.port}/x")
    assert fetched.body == b"ok"
    assert dns.lookups == ["pinned.brenia.test", "other.brenia.test"]
    assert server.accepted == 1
    assert server.requests == [("/x", f"pinned.brenia.test:{server.port}")]


def certificate_for(name: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``name`` and its key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


async def test_tls_to_a_pinned_address_still_verifies_the_name(
        listener: Start, tmp_path: Any) -> None:
    cert, key = certificate_for("pinned.brenia.test")
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    names: list[str | None] = []
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    def record_sni(sock: Any, name: str | None, context: Any) -> None:
        names.append(name)

    tls.sni_callback = record_sni
    server = listener(ok, tls=tls)
    trusting = ssl.create_default_context(cadata=cert.decode())
    hosts = {f"pinned.brenia.test:{server.port}", f"other.brenia.test:{server.port}"}
    async with SafeClient(trusted_hosts=hosts, resolver=Resolver(["127.0.0.1"]),
                          verify=trusting) as client:
        fetched = await fetch(client, f"https://pinned.brenia.test:{server.port}/x")
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await fetch(client, f"https://other.brenia.test:{server.port}/x")
    assert fetched.body == b"ok"
    assert names == ["pinned.brenia.test", "other.brenia.test"]  # SNI: the name, not the IP


async def test_a_redirect_to_an_internal_address_is_not_followed(
        listener: Start, settings: Any) -> None:
    inner = listener(ok)
    outer = listener(redirect_to(f"http://127.0.0.1:{inner.port}/secret"))
    settings.BRENIA_TRUSTED_RESULT_HOSTS = [f"127.0.0.1:{outer.port}"]
    url = f"http://127.0.0.1:{outer.port}/result.png"

    with pytest.raises(MalformedResponse) as refused:
        await fetch_image_bytes(OutputImage(url=url), client=download_client())
    assert refused.value.code == "download_failed" and "302" in refused.value.message
    # Even a client told to follow it would check the next hop's address first.
    async with SafeClient(trusted_hosts={f"127.0.0.1:{outer.port}"}) as client:
        with pytest.raises(BlockedURL):
            await client.http.get(url, follow_redirects=True)
    assert outer.accepted == 2
    assert inner.accepted == 0


async def test_an_endless_stream_is_cut_at_the_byte_cap(listener: Start, settings: Any) -> None:
    server = listener(endless)
    settings.BRENIA_TRUSTED_RESULT_HOSTS = [f"127.0.0.1:{server.port}"]
    settings.BRENIA_MAX_DOWNLOAD_BYTES = cap = 256 * 1024

    with pytest.raises(MalformedResponse) as refused:
        await fetch_image_bytes(OutputImage(url=f"http://127.0.0.1:{server.port}/x.png"),
                                client=download_client())
    assert refused.value.code == "result_too_large"
    assert isinstance(refused.value.__cause__, ResponseTooLarge)
    assert str(refused.value.__cause__) == f"the answer is larger than {cap} bytes"
    # The connection is gone: the server's writes fail. What it wrote before noticing
    # is the cap plus the two sockets' buffers, not an endless stream.
    assert await asyncio.to_thread(server.stopped.wait, 30)
    assert server.sent < cap + 32 * 1024 * 1024


async def test_a_slow_stream_under_the_cap_is_cut_at_the_deadline(
        listener: Start, settings: Any) -> None:
    """One byte every 50 ms never trips a per-read timeout (60 s on the download
    client); only the deadline on the whole download stops it."""
    server = listener(trickle)
    settings.BRENIA_TRUSTED_RESULT_HOSTS = [f"127.0.0.1:{server.port}"]
    settings.BRENIA_DOWNLOAD_TIMEOUT = 1.0

    started = time.monotonic()
    with pytest.raises(TransientProviderError) as failed:
        await fetch_image_bytes(OutputImage(url=f"http://127.0.0.1:{server.port}/x.png"),
                                client=download_client())
    took = time.monotonic() - started
    assert failed.value.code == "download_failed"
    assert isinstance(failed.value.__cause__, ResponseTooSlow)
    assert str(failed.value.__cause__) == "the answer took longer than 1 s"
    assert await asyncio.to_thread(server.stopped.wait, 30)
    assert server.sent < 10_000  # cut short of the whole (under-cap) body
    assert took < 60, took  # well before the per-read timeout could have fired


async def test_a_body_is_cut_where_the_caller_only_wants_its_start(listener: Start) -> None:
    server = listener(endless)
    async with SafeClient(trusted_hosts={f"127.0.0.1:{server.port}"}) as client:
        fetched = await client.fetch("POST", f"http://127.0.0.1:{server.port}/hook",
                                     content=b"{}", max_bytes=300, deadline=10, cut=True)
    assert fetched.ok and len(fetched.body) == 300
    assert await asyncio.to_thread(server.stopped.wait, 30)
