"""Turning a provider's output images into stored, verified files.

Each image is fetched with a size limit, decoded by Pillow (a non-image or a
decompression bomb is an error, not a crash) and saved through Django storage
under a content-addressed name, so saving the same image twice writes one file.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from brenia.urlguard import BlockedURL, check_public_url
from generation.models import Image
from generation.providers.base import (
    MalformedResponse,
    OutputImage,
    TransientProviderError,
    decode_data_uri,
)

# Pillow raises DecompressionBombError past twice this; keep it as an error.
MAX_PIXELS = 80_000_000
FORMAT_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif"}


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    sha256: str
    width: int
    height: int
    format: str

    @property
    def storage_name(self) -> str:
        ext = FORMAT_EXTENSIONS.get(self.format, "bin")
        return f"images/{self.sha256[:2]}/{self.sha256[2:4]}/{self.sha256}.{ext}"


def trusted_result_hosts() -> frozenset[str]:
    """Provider base addresses configured by the operator, plus the explicit list."""
    hosts = set(settings.BRENIA_TRUSTED_RESULT_HOSTS)
    for base in (settings.FAL_QUEUE_URL, settings.GEMINI_BASE_URL):
        parts = urlsplit(base)
        if parts.hostname:
            hosts.add(f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname)
    return frozenset(hosts)


def _is_trusted(url: str, trusted: frozenset[str]) -> bool:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return False  # a malformed port: let the full check refuse it
    host = parts.hostname
    if not host:
        return False
    return host in trusted or (port is not None and f"{host}:{port}" in trusted)


async def check_result_url(url: str) -> None:
    """Raise BlockedURL unless ``url`` is one Brenia may fetch a result image from.

    Resolving a host blocks, so it never happens on the event loop: most result links
    are on a configured provider host, which is trusted without resolving (the check
    then only looks at the URL's shape), and any other host is resolved in a thread.
    """
    trusted = trusted_result_hosts()
    if _is_trusted(url, trusted):
        check_public_url(url, field="image_url", allowed_hosts=trusted)
        return
    await asyncio.to_thread(check_public_url, url, field="image_url", allowed_hosts=trusted)


async def fetch_image_bytes(image: OutputImage, *, client: httpx.AsyncClient) -> bytes:
    if image.data is not None:
        return image.data
    if image.url.startswith("data:"):
        return decode_data_uri(image.url)
    try:
        await check_result_url(image.url)
    except BlockedURL as exc:
        raise MalformedResponse("The provider returned an image link Brenia will not fetch.",
                                code="blocked_result_url") from exc
    limit = settings.BRENIA_MAX_DOWNLOAD_BYTES
    try:
        async with client.stream("GET", image.url, follow_redirects=False) as response:
            if response.status_code >= 500 or response.status_code == 429:
                raise TransientProviderError(
                    f"Downloading the result failed with {response.status_code}.",
                    code="download_failed")
            if response.status_code != 200:
                raise MalformedResponse(
                    f"Downloading the result failed with {response.status_code}.",
                    code="download_failed")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise MalformedResponse("The result image is larger than allowed.",
                                            code="result_too_large")
                chunks.append(chunk)
    except (httpx.TimeoutException, httpx.TransportError) as exc:
        raise TransientProviderError("The result image could not be downloaded.",
                                     code="download_failed") from exc
    return b"".join(chunks)


def check_image(data: bytes) -> CheckedImage:
    """Decode fully with Pillow; raise MalformedResponse for anything but a sane image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as probe:
                width, height = probe.size
                fmt = probe.format or ""
                if width * height > MAX_PIXELS:
                    raise MalformedResponse("The result image is too large.",
                                            code="result_too_large")
                probe.load()
    except MalformedResponse:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise MalformedResponse("The result image is too large.",
                                code="result_too_large") from exc
    except Exception as exc:
        raise MalformedResponse("The provider returned something that is not an image.",
                                code="not_an_image") from exc
    if fmt not in FORMAT_EXTENSIONS:
        raise MalformedResponse(f"Unsupported image format {fmt or 'unknown'}.",
                                code="not_an_image")
    return CheckedImage(data=data, sha256=hashlib.sha256(data).hexdigest(), width=width,
                        height=height, format=fmt)


def store_image_sync(image: CheckedImage) -> str:
    name = image.storage_name
    if default_storage.exists(name):
        return name
    return default_storage.save(name, ContentFile(image.data))


async def store_image(image: CheckedImage) -> str:
    """Save through Django storage; returns the storage name (idempotent)."""
    return await sync_to_async(store_image_sync, thread_sensitive=False)(image)


THUMBNAIL_EDGE = 480


def thumbnail_sync(image: Image) -> str:
    """The storage name of a ≤480 px WebP of ``image``, made on first use and kept.

    Named after the original's content hash, so every image with the same pixels
    shares one thumbnail and a second request never decodes the original again.
    """
    name = f"thumbnails/{image.sha256[:2]}/{image.sha256}-{THUMBNAIL_EDGE}.webp"
    if default_storage.exists(name):
        return name
    with default_storage.open(image.file.name, "rb") as handle, PILImage.open(handle) as source:
        source.draft("RGB", (THUMBNAIL_EDGE, THUMBNAIL_EDGE))  # JPEG: decode at a smaller scale
        picture = source.convert("RGBA" if "A" in source.getbands() else "RGB")
    picture.thumbnail((THUMBNAIL_EDGE, THUMBNAIL_EDGE), PILImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, "WEBP", quality=82, method=4)
    if default_storage.exists(name):  # made meanwhile by another request
        return name
    return default_storage.save(name, ContentFile(buffer.getvalue()))
