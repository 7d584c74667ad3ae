"""Turning a provider's output images into stored, verified files.

Each image is fetched through Brenia's pinned client (``brenia.safe_http``) with a
size limit and a deadline, checked by Pillow (a non-image, a truncated file or a
decompression bomb is an error, not a crash) and saved through Django storage under a
content-addressed name, so saving the same image twice writes one file.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from brenia.safe_http import ResponseTooLarge, ResponseTooSlow, SafeClient
from brenia.urlguard import BlockedURL
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


async def fetch_image_bytes(image: OutputImage, *, client: SafeClient) -> bytes:
    """The bytes of a result image: inline, a data URI, or fetched through ``client``.

    ``client`` (``runner.download_client()``) trusts the configured provider hosts and
    checks every other address at connect time; the download is capped in bytes
    (``BRENIA_MAX_DOWNLOAD_BYTES``) and in total time (``BRENIA_DOWNLOAD_TIMEOUT``).
    """
    if image.data is not None:
        return image.data
    if image.url.startswith("data:"):
        return decode_data_uri(image.url)
    try:
        fetched = await client.fetch("GET", image.url, field="image_url",
                                     max_bytes=settings.BRENIA_MAX_DOWNLOAD_BYTES,
                                     deadline=settings.BRENIA_DOWNLOAD_TIMEOUT)
    except BlockedURL as exc:
        raise MalformedResponse("The provider returned an image link Brenia will not fetch.",
                                code="blocked_result_url") from exc
    except ResponseTooLarge as exc:
        raise MalformedResponse("The result image is larger than allowed.",
                                code="result_too_large") from exc
    except (ResponseTooSlow, httpx.TimeoutException, httpx.TransportError) as exc:
        raise TransientProviderError("The result image could not be downloaded.",
                                     code="download_failed") from exc
    if fetched.status_code >= 500 or fetched.status_code == 429:
        raise TransientProviderError(
            f"Downloading the result failed with {fetched.status_code}.", code="download_failed")
    if fetched.status_code != 200:  # a redirect too: Brenia does not follow them
        raise MalformedResponse(
            f"Downloading the result failed with {fetched.status_code}.", code="download_failed")
    return fetched.body


def check_image(data: bytes) -> CheckedImage:
    """Read the header and check the file's integrity with Pillow; raise
    MalformedResponse for anything but a sane image.

    Size and format come from the header (``Image.open`` decodes no pixels), so a
    decompression bomb is refused before any work. Integrity without a full decode
    where the format allows it (a 1 MP decode costs 6-50 ms): a PNG's every chunk to
    IEND is read and CRC-checked (``verify``); a WebP's container is parsed whole when
    it is opened (libwebp refuses one cut short); a JPEG must end with its end-of-image
    marker, else it is decoded in full, which refuses a truncated one. Other formats
    are decoded in full.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as probe:
                width, height = probe.size
                fmt = probe.format or ""
                if width * height > MAX_PIXELS:
                    raise MalformedResponse("The result image is too large.",
                                            code="result_too_large")
                if fmt in ("PNG", "WEBP"):
                    probe.verify()
                elif not (fmt == "JPEG" and _ends_with_eoi(data)):
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


def _ends_with_eoi(data: bytes) -> bool:
    """Whether a JPEG stream ends with its EOI marker (FF D9): one cut short does not."""
    return data.endswith(b"\xff\xd9")


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
