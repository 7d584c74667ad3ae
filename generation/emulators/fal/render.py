"""Pillow rendering: cheap, deterministic stand-ins for the models' pictures.

Everything here is synchronous and CPU-bound; the queue calls it through
``asyncio.to_thread``. Same inputs ⇒ byte-identical output (no timestamps or random
state; Pillow's encoders are deterministic for fixed settings).
"""

from __future__ import annotations

import hashlib
import io
import textwrap
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

MARK = "OFFLINE PREVIEW · fal emulator"
CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp",
                 "gif": "image/gif"}
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp", "gif": "gif"}


class ImageLoadError(ValueError):
    """The bytes are not an image Pillow can read."""


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _palette(prompt: str, seed: int) -> bytes:
    digest = hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest()
    return digest + hashlib.sha256(digest).digest()


def _annotate(image: Image.Image, prompt: str | None) -> None:
    """Draw the offline-preview mark and the start of the prompt in one band at the top.

    One thin band, so a picture composed over (a template's background) keeps most of
    its area clean while still saying plainly what it is.
    """
    width, _height = image.size
    size = max(9, min(width, image.size[1]) // 40)
    font = _font(size)
    draw = ImageDraw.Draw(image)
    pad = max(2, size // 3)
    draw.rectangle((0, 0, width, size + 2 * pad), fill=(0, 0, 0))
    text = MARK
    if prompt:
        chars = max(8, int(width / (size * 0.55)))
        text = textwrap.shorten(f"{MARK} · {prompt}", width=chars, placeholder=" …")
    draw.text((pad, pad), text, font=font, fill=(255, 255, 255))


def generate(prompt: str, seed: int, width: int, height: int) -> Image.Image:
    """A gradient with a few shapes, picked by hash of prompt and seed, plus the marks."""
    data = _palette(prompt, seed)
    corners = Image.new("RGB", (2, 2))
    corners.putdata([tuple(data[i:i + 3]) for i in (0, 3, 6, 9)])
    image = corners.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    for n in range(4):
        b = data[12 + n * 5: 17 + n * 5]
        x, y = b[0] * width // 255, b[1] * height // 255
        r = max(2, (16 + b[2]) * min(width, height) // 640)
        box = (x - r, y - r, x + r, y + r)
        colour = (b[3], b[4], data[40 + n])
        if b[2] % 2:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    _annotate(image, prompt)
    return image


def blacked(width: int, height: int) -> Image.Image:
    """What the safety checker returns in place of a flagged image."""
    return Image.new("RGB", (width, height))


def load(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(str(exc)) from exc
    return image


def stylize(source: Image.Image, prompt: str, seed: int, strength: float) -> Image.Image:
    """Image-to-image: blend the input towards a prompt rendering by ``strength``."""
    base = source.convert("RGB")
    painted = generate(prompt, seed, *base.size)
    image = Image.blend(base, painted, max(0.0, min(1.0, strength)) * 0.6)
    _annotate(image, prompt)
    return image


def face_swap(base_image: Image.Image, swap_image: Image.Image) -> Image.Image:
    """Paste the centre of ``swap_image`` (the "face") into the upper centre of the base."""
    base = base_image.convert("RGB")
    swap = swap_image.convert("RGB")
    side = max(4, min(swap.size) // 2)
    left, top = (swap.width - side) // 2, (swap.height - side) // 2
    target = max(4, int(min(base.size) * 0.35))
    face = swap.crop((left, top, left + side, top + side)).resize((target, target))
    mask = Image.new("L", (target, target))
    ImageDraw.Draw(mask).ellipse((0, 0, target - 1, target - 1), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(max(1, target // 30)))
    base.paste(face, ((base.width - target) // 2, int(base.height * 0.4) - target // 2), mask)
    _annotate(base, None)
    return base


def cut_out(source: Image.Image, *, refine: bool) -> tuple[Image.Image, Image.Image]:
    """Background removal: returns (RGBA cut-out, L mask).

    The background colour is the per-channel median of the border; pixels near it
    become transparent, and so does everything outside a centred ellipse (the
    "subject" is assumed to be in the middle). Corners are therefore always clear.
    """
    image = source.convert("RGB")
    width, height = image.size
    border = [image.crop(box) for box in ((0, 0, width, 1), (0, height - 1, width, height),
                                          (0, 0, 1, height), (width - 1, 0, width, height))]
    samples: list[tuple[int, int, int]] = []
    for strip in border:
        samples.extend(strip.getdata())
    background = tuple(sorted(channel)[len(channel) // 2] for channel in zip(*samples, strict=True))
    distance = ImageChops.difference(image, Image.new("RGB", image.size, background)).convert("L")
    foreground = distance.point(lambda v: 255 if v > 24 else 0)
    ellipse = Image.new("L", image.size)
    ImageDraw.Draw(ellipse).ellipse((width * 0.04, height * 0.04, width * 0.96, height * 0.96),
                                    fill=255)
    mask = ImageChops.darker(foreground, ellipse)
    if refine:
        mask = mask.filter(ImageFilter.MedianFilter(3))
    cut = image.convert("RGBA")
    cut.putalpha(mask)
    return cut, mask


def encode(image: Image.Image, fmt: str) -> bytes:
    """Serialise ``image`` as jpeg/png/webp/gif (deterministically)."""
    buffer = io.BytesIO()
    if fmt == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=85)
    elif fmt == "png":
        image.save(buffer, "PNG", compress_level=1)
    elif fmt == "webp":
        image.save(buffer, "WEBP", quality=80, method=0)
    elif fmt == "gif":
        image.save(buffer, "GIF")
    else:
        raise ValueError(f"unsupported format {fmt!r}")
    return buffer.getvalue()
