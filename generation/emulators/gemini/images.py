"""Pillow rendering of the emulator's "offline preview" images.

An image is a pure function of (model, prompt, pixel size, reference images, draft):
the prompt hash picks the palette and shapes, the first reference image fills the
picture (so edits look like their input), further references sit in a thumbnail row,
the prompt is printed in a top band and a bottom band carries a visible
"OFFLINE PREVIEW" mark. Large sizes are drawn at about 1.5 MP and scaled up, which
keeps a 4K PNG well under a second.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import io
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, ImageOps, PngImagePlugin

DESIGN_AREA = 1_500_000
CACHE_SIZE = 24
MARK = "OFFLINE PREVIEW"
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class ImageJob:
    model_id: str
    prompt: str
    width: int
    height: int
    ratio: str
    size: str
    references: tuple[bytes, ...] = ()
    draft: bool = False

    def key(self) -> str:
        h = hashlib.sha256()
        for piece in (self.model_id, self.prompt, f"{self.width}x{self.height}",
                      str(self.draft)):
            h.update(piece.encode("utf-8") + b"\0")
        for ref in self.references:
            h.update(hashlib.sha256(ref).digest())
        return h.hexdigest()


class ReferenceImageError(ValueError):
    """A reference image that passed the header check but cannot be decoded."""


_cache: OrderedDict[str, bytes] = OrderedDict()
_cache_lock = threading.Lock()


def render_png(job: ImageJob) -> bytes:
    """The PNG for ``job``; equal jobs give identical bytes (and hit a small cache)."""
    key = job.key()
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    data = _render(job, key)
    with _cache_lock:
        _cache[key] = data
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return data


def _render(job: ImageJob, key: str) -> bytes:
    seed = bytes.fromhex(key)
    scale = min(1.0, math.sqrt(DESIGN_AREA / (job.width * job.height)))
    dw, dh = max(16, round(job.width * scale)), max(16, round(job.height * scale))
    light, dark, accent = _palette(seed)
    canvas = _gradient((dw, dh), light, dark)
    draw = ImageDraw.Draw(canvas)
    _shapes(draw, (dw, dh), seed, accent)
    refs = [_open_reference(data) for data in job.references]
    top = int(dh * 0.16)
    bottom = int(dh * 0.07)
    if refs:
        margin = int(min(dw, dh) * 0.04)
        box = (margin, top + margin, dw - margin, dh - bottom - margin)
        hero = ImageOps.fit(refs[0], (max(1, box[2] - box[0]), max(1, box[3] - box[1])))
        canvas.paste(hero, box[:2])
        _thumbnails(canvas, refs[1:7], box)
    short = min(dw, dh)
    _band(draw, (0, 0, dw, top), _shade(dark, 0.45))
    title_font = _font(max(10, short // 18))
    _wrapped(draw, job.prompt or "(empty prompt)", (int(dw * 0.04), int(top * 0.12)),
             dw - int(dw * 0.08), title_font, max_lines=max(1, int(top * 0.8 / _line(title_font))))
    _band(draw, (0, dh - bottom, dw, dh), (20, 20, 20))
    mark = f"{MARK}{' · DRAFT' if job.draft else ''} · {job.model_id} · {job.size} · {job.ratio}"
    mark_font = _font(max(8, short // 40))
    draw.text((int(dw * 0.03), dh - bottom + (bottom - _line(mark_font)) // 2), _fit(
        draw, mark, mark_font, dw - int(dw * 0.06)), fill=(255, 214, 0), font=mark_font)
    if (dw, dh) != (job.width, job.height):
        canvas = canvas.resize((job.width, job.height), Image.Resampling.BILINEAR)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "Brenia Gemini emulator")
    info.add_text("Comment", f"{MARK}: {job.prompt[:500]}")
    out = io.BytesIO()
    canvas.save(out, format="PNG", compress_level=1, pnginfo=info)
    return out.getvalue()


def _palette(seed: bytes) -> tuple[RGB, RGB, RGB]:
    hue = seed[0] / 255
    light = colorsys.hsv_to_rgb(hue, 0.45 + seed[1] / 1020, 0.92)
    dark = colorsys.hsv_to_rgb((hue + 0.08) % 1, 0.7, 0.32 + seed[2] / 1275)
    accent = colorsys.hsv_to_rgb((hue + 0.5) % 1, 0.6, 0.85)
    r, g, b = (tuple(int(c * 255) for c in rgb) for rgb in (light, dark, accent))
    return (r[0], r[1], r[2]), (g[0], g[1], g[2]), (b[0], b[1], b[2])


def _gradient(size: tuple[int, int], top: tuple[int, int, int],
              bottom: tuple[int, int, int]) -> Image.Image:
    mask = Image.linear_gradient("L").resize(size, Image.Resampling.BILINEAR)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)


def _shapes(draw: ImageDraw.ImageDraw, size: tuple[int, int], seed: bytes,
            accent: tuple[int, int, int]) -> None:
    w, h = size
    for i in range(4):
        b = seed[4 + i * 4: 8 + i * 4]
        cx, cy = b[0] / 255 * w, b[1] / 255 * h
        r = (0.08 + b[2] / 255 * 0.22) * min(w, h)
        colour = _shade(accent, 0.6 + b[3] / 640)
        if i % 2:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        else:
            draw.rounded_rectangle((cx - r, cy - r * 0.6, cx + r, cy + r * 0.6),
                                   radius=int(r / 4), fill=colour)


def _thumbnails(canvas: Image.Image, refs: list[Image.Image],
                box: tuple[int, int, int, int]) -> None:
    if not refs:
        return
    side = max(8, min((box[2] - box[0]) // (len(refs) + 1), (box[3] - box[1]) // 4))
    border = max(1, side // 24)
    x = box[2] - border
    y = box[3] - side - border
    for ref in refs:
        thumb = ImageOps.fit(ref, (side, side))
        x -= side + border * 3
        canvas.paste((255, 255, 255), (x - border, y - border, x + side + border,
                                       y + side + border))
        canvas.paste(thumb, (x, y))


def _open_reference(data: bytes) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "P"):
                rgba = img.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                return flat
            return img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise ReferenceImageError(str(exc)) from exc


def _band(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int],
          colour: tuple[int, int, int]) -> None:
    draw.rectangle(box, fill=colour)


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    r, g, b = (min(255, int(c * factor)) for c in colour)
    return r, g, b


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for name in ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _line(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    top, bottom = font.getbbox("Ag")[1::2]
    return int((bottom - top) * 1.3) + 1


def _fit(draw: ImageDraw.ImageDraw, text: str,
         font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _wrapped(draw: ImageDraw.ImageDraw, text: str, origin: tuple[int, int], width: int,
             font: ImageFont.FreeTypeFont | ImageFont.ImageFont, *, max_lines: int) -> None:
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if draw.textlength(trial, font=font) <= width or not current:
            current = trial
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1] + " …"
    x, y = origin
    for line in lines:
        draw.text((x, y), _fit(draw, line, font, width), fill=(255, 255, 255), font=font)
        y += _line(font)
