"""Result images are checked from their header plus an integrity check, not a full
decode: what the runner stores is still only ever a sane image of an allowed format.
"""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image as PILImage

from generation.jobs.results import check_image
from generation.providers.base import MalformedResponse


def encoded(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    PILImage.effect_noise(size, 40).convert("RGB").save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_a_sane_image_is_accepted_with_its_size_and_format(fmt: str) -> None:
    checked = check_image(encoded(fmt))
    assert (checked.width, checked.height, checked.format) == (64, 48, fmt)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_an_image_cut_short_is_refused(fmt: str) -> None:
    data = encoded(fmt, (256, 256))
    with pytest.raises(MalformedResponse) as caught:
        check_image(data[: len(data) * 2 // 3])
    assert caught.value.code == "not_an_image"


def test_a_png_with_a_corrupt_chunk_is_refused() -> None:
    data = bytearray(encoded("PNG", (256, 256)))
    start = data.index(b"IDAT") + 40
    data[start:start + 16] = bytes(b ^ 0xFF for b in data[start:start + 16])
    with pytest.raises(MalformedResponse) as caught:
        check_image(bytes(data))
    assert caught.value.code == "not_an_image"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_header_claiming_too_many_pixels_is_refused_before_any_decoding(fmt: str) -> None:
    if fmt == "PNG":
        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(
                ">I", zlib.crc32(kind + data))
        data = (b"\x89PNG\r\n\x1a\n"
                + chunk(b"IHDR", struct.pack(">IIBBBBB", 9_000, 9_000, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    else:
        # A real JPEG whose frame header says 9,000 x 9,000 (81 MP), ending in EOI.
        data = bytearray(encoded("JPEG"))
        sof = data.index(b"\xff\xc0")
        data[sof + 5:sof + 9] = struct.pack(">HH", 9_000, 9_000)
        data = bytes(data)
    with pytest.raises(MalformedResponse) as caught:
        check_image(data)
    assert caught.value.code == "result_too_large"
