"""Deterministic stand-ins for model output: backgrounds, cut-outs and a logo.

For the benchmark, the tests and sample renders; never used in production paths.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw, ImageFilter

from .fonts import load_font

# Aspect ratios an image model is typically asked for; it returns 2048 px on the long side.
# Copy of every box, the length real briefs have: for tests, the bench and samples.
SAMPLE_COPY = {
    "headline": "Fresh lemonade, made today",
    "subline": "Squeezed every morning from Sicilian lemons",
    "cta": "Order now",
    "discount": "30% OFF",
    "product_name": "Sicilian Lemonade 1 L",
    "disclaimer": "Offer valid until 31 Dec. While stocks last.",
}
MODEL_ASPECTS = ((1, 1), (4, 5), (3, 4), (2, 3), (9, 16), (16, 9), (3, 2), (4, 3), (21, 9))


def model_size(width: int, height: int, long_side: int = 2048) -> tuple[int, int]:
    """The size a model would return for a canvas: nearest supported aspect, long side 2048."""
    target = width / height
    aw, ah = min(MODEL_ASPECTS, key=lambda a: abs((a[0] / a[1]) / target - 1))
    if aw >= ah:
        return long_side, round(long_side * ah / aw)
    return round(long_side * aw / ah), long_side


def _noise(size: tuple[int, int], seed: int, amount: int) -> Image.Image:
    rng = random.Random(seed)
    w, h = max(2, size[0] // 4), max(2, size[1] // 4)
    grain = Image.frombytes("L", (w, h), rng.randbytes(w * h))
    grain = grain.resize(size, Image.Resampling.BILINEAR)
    return grain.point(lambda v: 128 + (v - 128) * amount // 128)


def scene(width: int, height: int, seed: int = 7, *, subject: str = "right",
          table: float = 0.74) -> Image.Image:
    """A soft, photograph-like summer scene: a warm sky, a sun, bokeh, a table top, and a
    'subject' (a big lemon) on the right, left or centre ("none": an empty table)."""
    rng = random.Random(seed)
    small_w, small_h = 512, max(2, round(512 * height / width))
    img = Image.new("RGB", (small_w, small_h))
    top, bottom = (250, 214, 140), (88, 160, 170)
    sky = Image.linear_gradient("L").resize((small_w, small_h))
    img = Image.composite(Image.new("RGB", img.size, bottom), Image.new("RGB", img.size, top), sky)
    draw = ImageDraw.Draw(img, "RGBA")
    sx = small_w * (0.75 if subject == "right" else 0.5 if subject == "center" else 0.25)
    r = min(small_w, small_h) * 0.32
    sun_y = small_h * 0.15
    draw.ellipse((sx - r, sun_y - r, sx + r, sun_y + r), fill=(255, 240, 200, 160))
    for _ in range(18):
        bx, by = rng.uniform(0, small_w), rng.uniform(0, small_h * 0.7)
        br = rng.uniform(4, min(small_w, small_h) * 0.08)
        glow = (255, 255, 255, rng.randint(20, 70))
        draw.ellipse((bx - br, by - br, bx + br, by + br), fill=glow)
    # a wooden table top across the bottom
    table_y = small_h * table
    draw.rectangle((0, table_y, small_w, small_h), fill=(150, 96, 52, 255))
    for i in range(6):
        y = table_y + (small_h - table_y) * i / 6
        draw.line((0, y, small_w, y + 3), fill=(120, 74, 38, 120), width=1)
    if subject == "none":  # an empty table top, for a product shot
        img = img.filter(ImageFilter.GaussianBlur(1.2))
        img = img.resize((width, height), Image.Resampling.BICUBIC)
        grain = _noise((width, height), seed, 10)
        return Image.merge("RGB", [Image.blend(band, grain, 0.08) for band in img.split()])
    # the subject: a big lemon with a leaf, standing on the table
    lw, lh = min(small_w, small_h) * 0.42, min(small_w, small_h) * 0.32
    lx, ly = sx - lw / 2, table_y - lh * 0.85
    draw.ellipse((lx, ly, lx + lw, ly + lh), fill=(246, 206, 36, 255))
    draw.ellipse((lx + lw * 0.15, ly + lh * 0.12, lx + lw * 0.5, ly + lh * 0.4),
                 fill=(255, 240, 150, 150))
    draw.polygon([(lx + lw * 0.55, ly + lh * 0.05), (lx + lw * 0.85, ly - lh * 0.3),
                  (lx + lw * 0.95, ly - lh * 0.05)], fill=(70, 140, 60, 255))
    img = img.filter(ImageFilter.GaussianBlur(1.2))
    img = img.resize((width, height), Image.Resampling.BICUBIC)
    grain = _noise((width, height), seed, 10)
    return Image.merge("RGB", [Image.blend(band, grain, 0.08) for band in img.split()])


def gradient_background(width: int, height: int, seed: int = 3) -> Image.Image:
    """The bench background: a diagonal gradient with low-frequency noise, quick to make."""
    base = Image.linear_gradient("L").rotate(35, resample=Image.Resampling.BILINEAR, expand=False)
    base = base.resize((width, height), Image.Resampling.BILINEAR)
    grain = _noise((width, height), seed, 40)
    r = Image.blend(base, grain, 0.3)
    g = Image.blend(base.point(lambda v: 255 - v), grain, 0.2)
    b = grain.point(lambda v: 90 + v // 3)
    return Image.merge("RGB", (r, g, b))


def flat(width: int, height: int, colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (width, height), colour)


def bottle_cutout(height: int = 1400, colour: tuple[int, int, int] = (242, 200, 40)) -> Image.Image:
    """An RGBA lemonade bottle on transparency, with empty margins (as a matting model gives)."""
    w = round(height * 0.62)
    img = Image.new("RGBA", (w, height), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    cx = w / 2
    body_w, body_top, bottom = height * 0.3, height * 0.38, height * 0.94
    d.rounded_rectangle((cx - body_w / 2, body_top, cx + body_w / 2, bottom),
                        radius=round(body_w * 0.22), fill=(*colour, 255))
    d.polygon([(cx - body_w / 2, body_top + body_w * 0.2), (cx - body_w * 0.14, height * 0.2),
               (cx + body_w * 0.14, height * 0.2), (cx + body_w / 2, body_top + body_w * 0.2)],
              fill=(*colour, 255))
    d.rectangle((cx - body_w * 0.14, height * 0.12, cx + body_w * 0.14, height * 0.21),
                fill=(*colour, 255))
    d.rounded_rectangle((cx - body_w * 0.17, height * 0.07, cx + body_w * 0.17, height * 0.13),
                        radius=round(body_w * 0.04), fill=(40, 110, 60, 255))
    d.rectangle((cx - body_w / 2, height * 0.55, cx + body_w / 2, height * 0.76),
                fill=(255, 252, 240, 255))
    d.ellipse((cx - body_w * 0.16, height * 0.59, cx + body_w * 0.16, height * 0.72),
              fill=(246, 206, 36, 255))
    d.rectangle((cx + body_w * 0.22, body_top + body_w * 0.3, cx + body_w * 0.32, height * 0.9),
                fill=(255, 255, 255, 90))
    return img


def logo(size: int = 400, colour: tuple[int, int, int] = (214, 0, 120),
         word: str = "Limoné") -> Image.Image:
    """An RGBA logo: a coloured disc mark and a wordmark in the same colour."""
    h = size
    font = load_font("league-spartan", "bold", round(h * 0.62))
    text_w = round(font.getlength(word))
    w = h + round(h * 0.18) + text_w
    img = Image.new("RGBA", (w * 4, h * 4), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.ellipse((0, 0, h * 4 - 1, h * 4 - 1), fill=(*colour, 255))
    d.ellipse((h * 1.2, h * 1.2, h * 2.8, h * 2.8), fill=(255, 255, 255, 255))
    img = img.reduce(4)
    d = ImageDraw.Draw(img)
    d.text((h + round(h * 0.18), h * 0.5), word, font=font, fill=(*colour, 255), anchor="lm")
    return img


def solid_logo(size: int = 300, colour: tuple[int, int, int] = (214, 0, 120)) -> Image.Image:
    """An opaque square of one distinctive colour: easy to find in an output."""
    return Image.new("RGBA", (size, size), (*colour, 255))
