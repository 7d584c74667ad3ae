"""Input images in (http(s) or data: URIs), output files out (served by the emulator)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
import uuid
from collections import OrderedDict
from typing import Any
from urllib.parse import unquote_to_bytes

import aiohttp
from PIL import Image

from . import render
from .validation import Invalid, Loc, error

MAX_INPUT_BYTES = 25 * 1024 * 1024


class FileStore:
    """Generated files, kept in memory; the oldest go once ``limit`` is exceeded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._files: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, data: bytes, fmt: str) -> str:
        name = f"{uuid.uuid4().hex}.{render.EXTENSIONS[fmt]}"
        with self._lock:
            self._files[name] = (data, render.CONTENT_TYPES[fmt])
            while len(self._files) > self.limit:
                self._files.popitem(last=False)
        return name

    def get(self, name: str) -> tuple[bytes, str] | None:
        with self._lock:
            return self._files.get(name)

    def clear(self) -> None:
        with self._lock:
            self._files.clear()

    def __len__(self) -> int:
        return len(self._files)


def image_file(*, url: str, data: bytes, fmt: str, width: int, height: int,
               file_name: str) -> dict[str, Any]:
    """The ``Image``/``ImageFile`` object of fal outputs."""
    return {"url": url, "content_type": render.CONTENT_TYPES[fmt], "file_name": file_name,
            "file_size": len(data), "width": width, "height": height}


def data_uri(data: bytes, fmt: str) -> str:
    return f"data:{render.CONTENT_TYPES[fmt]};base64,{base64.b64encode(data).decode()}"


def _download_error(url: str, loc: Loc, why: str) -> Invalid:
    return Invalid([error("file_download_error", loc,
                          f"Failed to download the file. Please check if the URL is accessible "
                          f"({why}).", url)])


def _decode_data_uri(url: str, loc: Loc) -> bytes:
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise _download_error(url[:64], loc, "malformed data URI")
    if header.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError):
            raise _download_error(url[:64], loc, "bad base64") from None
    return unquote_to_bytes(payload)


async def fetch_image(session: aiohttp.ClientSession, url: str, loc: Loc) -> Image.Image:
    """Download and decode an input image; failures are the model's 422 detail items."""
    if url.startswith("data:"):
        data = _decode_data_uri(url, loc)
    elif url.startswith(("http://", "https://")):
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=20)) as response:
                if response.status != 200:
                    raise _download_error(url, loc, f"HTTP {response.status}")
                data = await response.content.read(MAX_INPUT_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _download_error(url, loc, type(exc).__name__) from None
        if len(data) > MAX_INPUT_BYTES:
            raise Invalid([error("file_too_large", loc, "File size exceeds the maximum allowed",
                                 url, {"max_size": MAX_INPUT_BYTES})])
    else:
        raise _download_error(url, loc, "unsupported URL scheme")
    try:
        return await asyncio.to_thread(render.load, data)
    except render.ImageLoadError:
        raise Invalid([error("image_load_error", loc,
                             "Failed to load the image. Please ensure the image file is not "
                             "corrupted and is in a supported format.",
                             url if len(url) < 200 else url[:200] + "…")]) from None
