"""The bundled typefaces, loaded once per (key, weight, size)."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

FONT_DIR = Path(__file__).resolve().parents[2] / "static" / "fonts"

FONTS: dict[str, str] = {
    "inter": "Inter",
    "league-spartan": "League Spartan",
    "bebas-neue": "Bebas Neue",
    "lato": "Lato",
    "open-sans": "Open Sans",
}

_FILES: dict[str, str] = {
    "inter": "Inter-{weight}.otf",
    "league-spartan": "LeagueSpartan-{weight}.otf",
    "bebas-neue": "BebasNeue-{weight}.otf",
    "lato": "Lato-{weight}.ttf",
    "open-sans": "OpenSans-{weight}.ttf",
}

WEIGHTS = ("regular", "bold")

# Typical copy, to estimate how many characters fit on a line.
TYPICAL_COPY = "Fresh deals on summer drinks, made today. Order now: 30% off everything"

# Glyphs that reach the usual ascender and descender, so that every line of a block
# gets the same vertical rhythm whatever letters it happens to hold.
_ASCENDERS = "HÉdfhklbt"
_DESCENDERS = "gjpqy,"


def font_path(key: str, weight: str) -> Path:
    if key not in _FILES:
        raise ValueError(f"Unknown font {key!r}; choose one of {', '.join(FONTS)}.")
    if weight not in WEIGHTS:
        raise ValueError(f"Unknown weight {weight!r}; choose regular or bold.")
    return FONT_DIR / _FILES[key].format(weight=weight.capitalize())


@lru_cache(maxsize=512)
def load_font(key: str, weight: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(key, weight)), size)


@lru_cache(maxsize=2048)
def vertical_extents(key: str, weight: str, size: int) -> tuple[int, int]:
    """(above, below): how far the ink of ordinary text reaches above and below the baseline."""
    font = load_font(key, weight, size)
    top = font.getbbox(_ASCENDERS, anchor="ls")[1]
    bottom = font.getbbox(_DESCENDERS, anchor="ls")[3]
    return math.ceil(-top), math.ceil(bottom)


@lru_cache(maxsize=2048)
def cap_height(key: str, weight: str, size: int) -> int:
    font = load_font(key, weight, size)
    return round(-font.getbbox("H", anchor="ls")[1])


@lru_cache(maxsize=1024)
def average_char_width(key: str, weight: str, size: int) -> float:
    font = load_font(key, weight, size)
    return font.getlength(TYPICAL_COPY) / len(TYPICAL_COPY)


@lru_cache(maxsize=16384)
def text_length(key: str, weight: str, size: int, text: str) -> float:
    """The advance width of text (cached: the same copy is measured for every format)."""
    return load_font(key, weight, size).getlength(text)


@lru_cache(maxsize=8192)
def text_bbox(key: str, weight: str, size: int, text: str) -> tuple[int, int, int, int]:
    """The ink box of text relative to its baseline origin (anchor 'ls')."""
    x0, y0, x1, y1 = load_font(key, weight, size).getbbox(text, anchor="ls")
    return math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1)
