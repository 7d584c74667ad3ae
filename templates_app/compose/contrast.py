"""WCAG 2.x relative luminance and contrast, measured on real pixels."""

from __future__ import annotations

from PIL import Image

RGB = tuple[int, int, int]

WHITE: RGB = (255, 255, 255)
NEAR_BLACK: RGB = (17, 17, 17)
BLACK: RGB = (0, 0, 0)

# The most pixels a region is sampled at: enough for stable percentiles, cheap in Python.
_SAMPLE_SIDE = 48


def _linear(c: int) -> float:
    s = c / 255
    return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4


_LIN = [_linear(c) for c in range(256)]
_LR = [0.2126 * v for v in _LIN]
_LG = [0.7152 * v for v in _LIN]
_LB = [0.0722 * v for v in _LIN]


def parse_hex(value: str) -> RGB:
    """'#1d4ed8' or '1d4ed8' or '#fff' -> (29, 78, 216)."""
    h = value.strip().lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    if len(h) != 6:
        raise ValueError(f"{value!r} is not a hex colour like #1d4ed8.")
    try:
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
    except ValueError:
        raise ValueError(f"{value!r} is not a hex colour like #1d4ed8.") from None


def to_hex(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def luminance(rgb: RGB) -> float:
    """WCAG relative luminance, 0 (black) .. 1 (white)."""
    r, g, b = rgb[:3]
    return _LR[r] + _LG[g] + _LB[b]


def ratio(l1: float, l2: float) -> float:
    hi, lo = (l1, l2) if l1 >= l2 else (l2, l1)
    return (hi + 0.05) / (lo + 0.05)


def colour_ratio(a: RGB, b: RGB) -> float:
    return ratio(luminance(a), luminance(b))


def sample(img: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """img's RGB pixels inside box, on a grid of at most 48 × 48 points (nearest neighbour,
    so real pixel values, never averages)."""
    x0, y0, x1, y1 = box
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(img.width, x1), min(img.height, y1)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"Empty region {box} on a {img.size} image.")
    w, h = x1 - x0, y1 - y0
    if w > _SAMPLE_SIDE or h > _SAMPLE_SIDE:
        region = img.resize(
            (min(w, _SAMPLE_SIDE), min(h, _SAMPLE_SIDE)), Image.Resampling.NEAREST,
            box=(x0, y0, x1, y1),
        )
    else:
        region = img.crop((x0, y0, x1, y1))
    return region if region.mode == "RGB" else region.convert("RGB")


def percentiles(
    region: Image.Image, lo: float = 0.10, hi: float = 0.90
) -> tuple[float, float]:
    """The lo-th and hi-th percentile of the luminance of an RGB image's pixels."""
    lr, lg, lb = _LR, _LG, _LB
    r, g, b = (band.tobytes() for band in region.split())
    values = sorted(lr[r[i]] + lg[g[i]] + lb[b[i]] for i in range(len(r)))
    n = len(values) - 1
    return values[round(lo * n)], values[round(hi * n)]


def luminance_percentiles(
    img: Image.Image, box: tuple[int, int, int, int], lo: float = 0.10, hi: float = 0.90
) -> tuple[float, float]:
    """The lo-th and hi-th percentile of luminance of img's pixels inside box."""
    return percentiles(sample(img, box), lo, hi)


def worst_ratio(colour: RGB, lows_highs: tuple[float, float]) -> float:
    """The lower of the colour's contrast against the dark and the light end of a region."""
    lc = luminance(colour)
    return min(ratio(lc, lows_highs[0]), ratio(lc, lows_highs[1]))


def best_colour(
    candidates: list[RGB], lows_highs: tuple[float, float]
) -> tuple[RGB, float]:
    """The candidate with the highest worst-case contrast (first wins ties)."""
    best, best_r = candidates[0], -1.0
    for c in candidates:
        r = worst_ratio(c, lows_highs)
        if r > best_r + 1e-9:
            best, best_r = c, r
    return best, best_r
