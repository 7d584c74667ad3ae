"""Measuring copy with the real font: greedy word wrap and the largest size that fits."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from .fonts import average_char_width, text_bbox, text_length, vertical_extents

# space(size) -> (width, height) available to the text block at that font size; boxes
# whose padding grows with the type (buttons, badges) pass a function of the size.
Space = Callable[[int], tuple[float, float]]

# How much wider than the average glyph of typical copy a budgeted character is taken
# to be, so that copy written to the budget fits in practice.
_BUDGET_SLACK = 1.08


@dataclass(frozen=True)
class Fitted:
    size: int
    lines: tuple[str, ...]
    advances: tuple[float, ...]  # advance width of each line
    ink_left: tuple[int, ...]  # ink extent of each line relative to its origin
    ink_right: tuple[int, ...]
    above: int  # from the block's top to the first baseline
    below: int  # from the last baseline to the block's bottom
    pitch: int  # baseline to baseline
    width: int  # the widest line's extent (advance or ink, whichever reaches further)
    height: int

    def line_extent(self, i: int) -> int:
        return math.ceil(max(self.advances[i], self.ink_right[i]) - min(0, self.ink_left[i]))


_NUMBER = re.compile(r"^[\d.,:/-]+$")


def words_of(text: str) -> list[list[str]]:
    """Paragraphs (hard line breaks kept) of unbreakable units: words, and a number held
    together with the short unit after it ("1 L", "31 Dec.", "500 ml")."""
    out = []
    for para in text.strip().splitlines():
        units: list[str] = []
        for word in para.split():
            if units and _NUMBER.match(units[-1]) and len(word) <= 4 and not _NUMBER.match(word):
                units[-1] = f"{units[-1]} {word}"
            else:
                units.append(word)
        if units:
            out.append(units)
    return out


def wrap(paragraphs: list[list[str]], font: tuple[str, str, int],
         max_width: float) -> list[str] | None:
    """Greedy word wrap with font (key, weight, size); None when a single word is wider
    than the line (words are never broken)."""
    lines: list[str] = []
    for words in paragraphs:
        current = ""
        for word in words:
            candidate = f"{current} {word}" if current else word
            if text_length(*font, candidate) <= max_width:
                current = candidate
                continue
            if not current:
                return None  # one word alone is too wide: never broken
            lines.append(current)
            if text_length(*font, word) > max_width:
                return None
            current = word
        if current:
            lines.append(current)
    return lines


def layout_at(
    paragraphs: list[list[str]],
    font_key: str,
    weight: str,
    size: int,
    max_lines: int,
    space: Space,
    line_height: float,
) -> Fitted | None:
    """The wrapped block at this size, or None if it breaks the width, lines or height."""
    width, height = space(size)
    if width <= 0 or height <= 0:
        return None
    font = (font_key, weight, size)
    lines = wrap(paragraphs, font, width)
    if not lines or len(lines) > max_lines:
        return None
    above, below = vertical_extents(font_key, weight, size)
    advances, lefts, rights = [], [], []
    for line in lines:
        x0, y0, x1, y1 = text_bbox(*font, line)
        advances.append(text_length(*font, line))
        lefts.append(x0)
        rights.append(x1)
        above = max(above, -y0)
        below = max(below, y1)
    pitch = max(1, round(size * line_height))
    total_h = above + pitch * (len(lines) - 1) + below
    fitted = Fitted(
        size=size,
        lines=tuple(lines),
        advances=tuple(advances),
        ink_left=tuple(lefts),
        ink_right=tuple(rights),
        above=above,
        below=below,
        pitch=pitch,
        width=0,
        height=total_h,
    )
    widest = max(fitted.line_extent(i) for i in range(len(lines)))
    if widest > width or total_h > height:
        return None
    return Fitted(**{**fitted.__dict__, "width": widest})


def fit(
    text: str,
    font_key: str,
    weight: str,
    min_size: int,
    max_size: int,
    max_lines: int,
    space: Space,
    line_height: float,
) -> Fitted | None:
    """The largest size in [min_size, max_size] at which the text fits, by binary search."""
    paragraphs = words_of(text)
    if not paragraphs:
        return None
    max_size = max(min_size, max_size)
    best = layout_at(paragraphs, font_key, weight, min_size, max_lines, space, line_height)
    if best is None:
        return None
    lo, hi = min_size + 1, max_size
    while lo <= hi:
        mid = (lo + hi) // 2
        got = layout_at(paragraphs, font_key, weight, mid, max_lines, space, line_height)
        if got is None:
            hi = mid - 1
        else:
            best, lo = got, mid + 1
    return _balanced(paragraphs, font_key, weight, best, space, line_height)


def _balanced(paragraphs: list[list[str]], font_key: str, weight: str, got: Fitted,
              space: Space, line_height: float) -> Fitted:
    """The same lines count at the narrowest width that keeps it: even lines, no widow."""
    n = len(got.lines)
    if n < 2:
        return got
    font = (font_key, weight, got.size)
    width, height = space(got.size)
    lo = max(text_length(*font, w) for words in paragraphs for w in words)
    hi = float(width)
    while hi - lo > 1:
        mid = (lo + hi) / 2
        lines = wrap(paragraphs, font, mid)
        if lines is not None and len(lines) <= n:
            hi = mid
        else:
            lo = mid
    # a hair wider than the wrap width: ink may overhang the advance by a pixel or two
    narrow_w = min(float(width), hi + 0.1 * got.size)
    narrow = layout_at(paragraphs, font_key, weight, got.size, n,
                       lambda _s: (narrow_w, height), line_height)
    return narrow if narrow is not None else got


def budget(
    font_key: str, weight: str, size: int, max_lines: int, space: Space, line_height: float
) -> tuple[int, int]:
    """(characters per line, lines) that fit at this size: what to ask a copy model for."""
    width, height = space(size)
    per_line = int(max(0.0, width) // (average_char_width(font_key, weight, size) * _BUDGET_SLACK))
    above, below = vertical_extents(font_key, weight, size)
    pitch = max(1, round(size * line_height))
    room = height - above - below
    lines = 0 if room < 0 else 1 + int(room // pitch)
    return per_line, min(max_lines, lines)


def wrap_to_budget(text: str, chars_per_line: int, max_lines: int) -> str:
    """Copy cut at word boundaries to at most max_lines lines of chars_per_line characters:
    what a copy model that honours the budget would return (used by tests and tooling)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= chars_per_line:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word if len(word) <= chars_per_line else ""
        if len(lines) >= max_lines:
            break
    if current and len(lines) < max_lines:
        lines.append(current)
    return " ".join(lines[:max_lines])
