"""Pixels in: backgrounds, cut-outs and logos brought to sRGB and to size."""

from __future__ import annotations

import io
import os
import weakref
from concurrent.futures import ThreadPoolExecutor

from PIL import Image, ImageFilter, ImageOps, ImageStat

# Colour handling is shared with every image Brenia takes in (``brenia.images``, Pillow
# only like this package); the engine's modules import it from here.
from brenia.images import MAX_IMAGE_BYTES, ImageRefused, open_image, to_srgb
from brenia.images import srgb_icc_bytes as srgb_icc_bytes

# Uploaded logos larger than this are refused before they are decoded.
LOGO_PIXEL_LIMIT = 40_000_000

# Large resizes are split into horizontal bands done on two threads (Pillow releases the
# GIL while it resamples); the bands use fractional source boxes, so they join seamlessly.
_PARALLEL_PIXELS = 2_000_000
_pool: ThreadPoolExecutor | None = None


def use_block_cache(blocks: int = 8) -> None:
    """Let Pillow keep up to `blocks` freed 16 MB memory blocks for reuse (unless the
    operator chose with PILLOW_BLOCKS_MAX). Every 12 MP canvas otherwise costs ~30 ms of
    fresh page faults; this keeps at most 128 MB for reuse."""
    if "PILLOW_BLOCKS_MAX" not in os.environ and Image.core.get_blocks_max() < blocks:
        Image.core.set_blocks_max(blocks)


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="compose")
    return _pool


def _resize(img: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float],
            resample: Image.Resampling) -> Image.Image:
    w, h = size
    if w * h < _PARALLEL_PIXELS:
        return img.resize(size, resample, box=box)
    x0, y0, x1, y1 = box
    scale_y = (y1 - y0) / h
    cut = h // 2

    def band(rows: tuple[int, int]) -> Image.Image:
        a, b = rows
        return img.resize((w, b - a), resample, box=(x0, y0 + a * scale_y, x1, y0 + b * scale_y))

    top, bottom = _executor().map(band, [(0, cut), (cut, h)])
    out = Image.new(img.mode, size, None)  # uninitialised: both bands cover it
    out.paste(top, (0, 0))
    out.paste(bottom, (0, cut))
    return out


def cover_fit(img: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to fill width × height and centre-crop; sRGB RGB out."""
    use_block_cache()
    img = to_srgb(img)
    sw, sh = img.size
    scale = max(width / sw, height / sh)
    cw, ch = width / scale, height / scale
    x0, y0 = (sw - cw) / 2, (sh - ch) / 2
    # Clamped: floating point makes 992 → 1080 a crop from -5e-14, which Pillow refuses.
    box = (max(0.0, x0), max(0.0, y0), min(float(sw), x0 + cw), min(float(sh), y0 + ch))
    if (sw, sh) == (width, height):
        return img.copy()  # never draw on the caller's image
    if scale < 0.5:
        # Shrink by an integer factor first (cheap box filter), then resample the rest.
        factor = int(1 / scale / 1.5) or 1
        if factor > 1:
            img = img.reduce(factor)
            box = tuple(v / factor for v in box)  # type: ignore[assignment]
    resample = Image.Resampling.BILINEAR if scale > 1 else Image.Resampling.BICUBIC
    return _resize(img, (width, height), box, resample)


def contain_size(w: int, h: int, box_w: int, box_h: int) -> tuple[int, int]:
    scale = min(box_w / w, box_h / h)
    return max(1, round(w * scale)), max(1, round(h * scale))


_fitted_logos: dict[int, tuple[weakref.ref, dict[tuple[int, int], Image.Image]]] = {}


def fit_logo(logo: Image.Image, box_w: int, box_h: int) -> Image.Image:
    """The logo trimmed to its ink and scaled to fit box_w × box_h (kept per logo object and
    box size while the logo lives: a run composes the same logo into many formats)."""
    key = id(logo)
    entry = _fitted_logos.get(key)
    if entry is None or entry[0]() is not logo:

        def forget(_ref: weakref.ref, k: int = key) -> None:
            _fitted_logos.pop(k, None)

        entry = (weakref.ref(logo, forget), {})
        _fitted_logos[key] = entry
    sizes = entry[1]
    if (box_w, box_h) not in sizes:
        sizes[(box_w, box_h)] = _fit_logo(logo, box_w, box_h)
    return sizes[(box_w, box_h)]


def _fit_logo(logo: Image.Image, box_w: int, box_h: int) -> Image.Image:
    logo = logo if logo.mode == "RGBA" else logo.convert("RGBA")
    bbox = logo.getchannel("A").getbbox()
    if bbox:
        logo = logo.crop(bbox)
    size = contain_size(logo.width, logo.height, box_w, box_h)
    if size != logo.size:
        logo = logo.resize(size, Image.Resampling.LANCZOS)
    return logo


# --- cut-outs -------------------------------------------------------------------------------


def trim_cutout(cutout: Image.Image) -> Image.Image:
    """RGBA sRGB, cropped to where it is meaningfully opaque."""
    rgba = to_srgb(cutout, keep_alpha=True)
    solid = rgba.getchannel("A").point(lambda a: 255 if a > 8 else 0)
    bbox = solid.getbbox()
    if not bbox:
        raise ValueError("The cut-out is fully transparent: there is no product in it.")
    return rgba.crop(bbox)


def colour_match(product: Image.Image, scene_mean: tuple[float, float, float],
                 strength: float = 0.18, limit: float = 0.12) -> Image.Image:
    """Shift the product's mean colour part of the way towards the scene's, per channel,
    with a gentle gain (blacks stay black) clamped to ±limit."""
    alpha = product.getchannel("A")
    mask = alpha.point(lambda a: 255 if a > 128 else 0)
    stat = ImageStat.Stat(product.convert("RGB"), mask)
    means = stat.mean
    scene_lum = sum(scene_mean) / 3
    prod_lum = sum(means) / 3
    gains = []
    for c in range(3):
        # colour cast: towards the scene's channel balance; brightness: towards its level
        cast = (scene_mean[c] / max(scene_lum, 1.0)) / max(means[c] / max(prod_lum, 1.0), 1e-3)
        level = scene_lum / max(prod_lum, 1.0)
        gain = 1 + strength * ((cast - 1) + 0.5 * (level - 1))
        gains.append(min(1 + limit, max(1 - limit, gain)))
    bands = product.convert("RGB").split()
    matched = [
        band.point([min(255, round(v * g)) for v in range(256)])
        for band, g in zip(bands, gains, strict=True)
    ]
    out = Image.merge("RGB", matched)
    out.putalpha(alpha)
    return out


def contact_shadow(width: int, height: int, opacity: float = 0.55) -> Image.Image:
    """An 'L' mask of a soft, flattened ellipse, width × height, to darken under a product."""
    scale = 4  # draw and blur small, then scale up: a blur this soft hides the resampling
    sw, sh = max(4, width // scale), max(4, height // scale)
    mask = Image.new("L", (sw, sh), 0)
    from PIL import ImageDraw

    draw = ImageDraw.Draw(mask)
    draw.ellipse((sw * 0.12, sh * 0.3, sw * 0.88, sh * 0.7), fill=round(255 * opacity))
    mask = mask.filter(ImageFilter.GaussianBlur(max(1.0, sh * 0.18)))
    return mask.resize((width, height), Image.Resampling.BILINEAR)


# --- logos ------------------------------------------------------------------------------------


def normalise_logo(data: bytes, *, max_side: int = 1024) -> bytes:
    """Any uploaded raster logo -> an sRGB RGBA PNG whose longest side is at most max_side.

    Read through ``brenia.images.open_image`` (format allow-list, byte and pixel caps,
    bomb guard), as every image people give Brenia is. Raises ValueError, with a message
    for a person, when the bytes are not an image, or an image too large to decode safely.
    """
    if not data:
        raise ValueError("The logo file is empty.")
    megapixels = f"{LOGO_PIXEL_LIMIT / 1_000_000:g}"
    try:
        img = open_image(data, max_bytes=MAX_IMAGE_BYTES, max_pixels=LOGO_PIXEL_LIMIT)
    except ImageRefused as exc:
        if exc.reason == "too_many_pixels":
            raise ValueError(f"The logo is too large to process safely; please upload one "
                             f"under {megapixels} megapixels.") from None
        if exc.reason == "too_large":
            raise ValueError(f"The logo file is larger than "
                             f"{MAX_IMAGE_BYTES // (1024 * 1024)} MB; please upload a "
                             "smaller one.") from None
        raise ValueError("The logo could not be read as an image; please upload a PNG, "
                         "JPEG, WebP or GIF.") from None
    upright: Image.Image = ImageOps.exif_transpose(img) or img
    rgba = to_srgb(upright, keep_alpha=True)
    if max(rgba.size) > max_side:
        rgba.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgba.save(out, "PNG", icc_profile=srgb_icc_bytes(), optimize=False)
    return out.getvalue()
