"""Fitting the copy into the layout: every box sized with the real font and placed."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .fonts import cap_height, text_bbox
from .formats import COPY_FIELDS, KINDS, REQUIRED_FIELDS, Format
from .layout import Layout, Stack, TextSpec, layout_for, safe_area, size_range, to_px, unit
from .model import BoxFit, Brand, CopyDoesNotFit, Rect
from .text import Fitted, budget, fit

# --- padding of shaped boxes, as a function of the type size -------------------------------


def _aligned(low: int, high: int, size: int, *, start: bool, end: bool) -> int:
    """Where a ``size`` long run begins in [low, high]: at the start, the end, or centred."""
    if start:
        return low
    if end:
        return high - size
    return low + (high - low - size) // 2


def _button_pad(size: int) -> tuple[int, int]:
    return round(0.95 * size), round(0.55 * size)


def _pill_pad(size: int) -> tuple[int, int]:
    return round(0.42 * size), round(0.3 * size)


def plate_pad(sizes: list[int]) -> int:
    """A plate's padding around its text, from the stack's largest and smallest type."""
    return max(5, round(0.3 * max(sizes) + 0.2 * min(sizes)))


# --- planning: fit every box and place it ---------------------------------------------------


@dataclass
class Placed:
    spec: TextSpec
    stack: int
    font_key: str
    weight: str
    fitted: Fitted
    rect: Rect  # the box: text block (full stack width), button or badge shape
    inner: Rect  # where the text block is set inside the box
    optical: bool  # centre on the cap height (buttons, badges) rather than the block

    @property
    def size(self) -> int:
        return self.fitted.size


@dataclass
class Plan:
    fmt: Format
    layout: Layout
    safe: Rect
    placed: list[Placed]
    fits: list[BoxFit]
    stack_rects: list[Rect]
    logo_box: Rect | None
    product_box: Rect | None
    omitted: tuple[str, ...]


def clean_copy(kind: str, copy: dict[str, str], *, required: bool = True) -> dict[str, str]:
    """The kind's copy fields that have text, whitespace collapsed (hard line breaks kept)."""
    if kind not in KINDS:
        raise ValueError(f"Unknown kind {kind!r}; choose one of {', '.join(KINDS)}.")
    fields = COPY_FIELDS[kind]
    out = {}
    for k, v in (copy or {}).items():
        if k in fields and v and str(v).strip():
            out[k] = "\n".join(" ".join(line.split()) for line in str(v).strip().splitlines()
                               if line.strip())
    if required:
        for name in REQUIRED_FIELDS[kind]:
            if not out.get(name):
                raise ValueError(
                    f"A {kind.replace('_', ' ')} needs a {name.replace('_', ' ')}."
                )
    return out


def _font_for(spec: TextSpec, brand: Brand) -> str:
    return brand.heading_font if spec.role == "heading" else brand.body_font


def _space_fn(spec: TextSpec, avail_w: int, avail_h: int, badge: str):
    if spec.style == "button":

        def space(s: int) -> tuple[float, float]:
            px, py = _button_pad(s)
            return avail_w - 2 * px, avail_h - 2 * py

    elif spec.style == "badge" and badge == "circle":
        d = min(avail_w, avail_h)

        def space(s: int) -> tuple[float, float]:
            return 0.8 * d, 0.56 * d

    elif spec.style == "badge":

        def space(s: int) -> tuple[float, float]:
            px, py = _pill_pad(s)
            return avail_w - 2 * px, avail_h - 2 * py

    else:

        def space(s: int) -> tuple[float, float]:
            return avail_w, avail_h

    return space


def plan_boxes(
    kind: str, fmt: Format, brand: Brand, copy: dict[str, str], insets: dict[int, int] | None = None
) -> Plan:
    layout = layout_for(kind, fmt)
    safe = safe_area(fmt)
    u = unit(safe)
    insets = insets or {}
    sizes: dict[str, int] = {}
    placed: list[Placed] = []
    fits: list[BoxFit] = []
    stack_rects: list[Rect] = []
    for si, stack in enumerate(layout.stacks):
        rx0, ry0, rx1, ry1 = to_px(safe, stack.rect)
        pad = insets.get(si, 0)
        rx0, ry0, rx1, ry1 = rx0 + pad, ry0 + pad, rx1 - pad, ry1 - pad
        stack_rects.append((rx0, ry0, rx1, ry1))
        rw, rh = rx1 - rx0, ry1 - ry0
        fitted_items: list[tuple[TextSpec, str, Fitted, int, int]] = []
        for spec in stack.items:
            text = copy.get(spec.name)
            if not text:
                continue
            font_key = _font_for(spec, brand)
            lo, hi = size_range(spec, fmt, u)
            if spec.rel and spec.rel[0] in sizes:
                hi = max(lo, min(hi, math.floor(spec.rel[1] * sizes[spec.rel[0]])))
            avail_w, avail_h = math.floor(spec.max_w * rw), math.floor(spec.share * rh)
            space = _space_fn(spec, avail_w, avail_h, layout.badge)
            got = fit(text, font_key, spec.weight, lo, hi, spec.max_lines, space, spec.line_height)
            per_line, lines = budget(font_key, spec.weight, lo, spec.max_lines, space,
                                     spec.line_height)
            if got is None:
                fits.append(BoxFit(spec.name, fmt.slug, False, None, [], per_line, lines, lo, hi))
                sizes[spec.name] = hi
                continue
            fits.append(
                BoxFit(spec.name, fmt.slug, True, got.size, list(got.lines), per_line, lines,
                       lo, hi)
            )
            sizes[spec.name] = got.size
            fitted_items.append((spec, font_key, got, avail_w, avail_h))
        placed.extend(_stack_up(si, stack, layout, (rx0, ry0, rx1, ry1), fitted_items))
    logo_box = None
    if layout.logo is not None:
        logo_box = to_px(safe, layout.logo[0])
    product_box = to_px(safe, layout.product) if layout.product else None
    omitted = tuple(name for name in layout.omits if copy.get(name))
    return Plan(fmt, layout, safe, placed, fits, stack_rects, logo_box, product_box, omitted)


def _stack_up(
    si: int,
    stack: Stack,
    layout: Layout,
    region: Rect,
    items: list[tuple[TextSpec, str, Fitted, int, int]],
) -> list[Placed]:
    """Size each fitted box's outer shape, then stack them with gaps, aligned in the region."""
    rx0, ry0, rx1, ry1 = region
    rw, rh = rx1 - rx0, ry1 - ry0
    shapes: list[tuple[int, int]] = []
    for spec, _font, f, avail_w, avail_h in items:
        if spec.style == "button":
            px, py = _button_pad(f.size)
            w = min(avail_w, max(f.width + 2 * px, round(3.6 * f.size)))
            shapes.append((w, f.height + 2 * py))
        elif spec.style == "badge" and layout.badge == "circle":
            d = min(avail_w, avail_h)
            shapes.append((d, d))
        elif spec.style == "badge":
            px, py = _pill_pad(f.size)
            shapes.append((f.width + 2 * px, f.height + 2 * py))
        else:
            shapes.append((rw, f.height))
    gaps = [round(spec.gap_after * f.size) for spec, _, f, _, _ in items[:-1]]
    total = sum(h for _, h in shapes) + sum(gaps)
    if total > rh and gaps:
        spare = max(0, rh - sum(h for _, h in shapes))
        gaps = [math.floor(g * spare / sum(gaps)) for g in gaps] if sum(gaps) else gaps
        total = sum(h for _, h in shapes) + sum(gaps)
    y = _aligned(ry0, ry1, total, start=stack.valign == "top", end=stack.valign == "bottom")
    out: list[Placed] = []
    for i, ((spec, font_key, f, _aw, _ah), (w, h)) in enumerate(zip(items, shapes, strict=True)):
        x = _aligned(rx0, rx1, w, start=spec.align == "left", end=spec.align == "right")
        rect = (x, y, x + w, y + h)
        if spec.style == "button":
            px, py = _button_pad(f.size)
            inner = (x + px, y + py, x + w - px, y + h - py)
        elif spec.style == "badge" and layout.badge == "circle":
            iw, ih = round(0.8 * w), round(0.56 * h)
            inner = (x + (w - iw) // 2, y + (h - ih) // 2, x + (w + iw) // 2, y + (h + ih) // 2)
        elif spec.style == "badge":
            px, py = _pill_pad(f.size)
            inner = (x + px, y + py, x + w - px, y + h - py)
        else:
            inner = rect
        optical = spec.style in ("button", "badge")
        out.append(Placed(spec, si, font_key, spec.weight, f, rect, inner, optical))
        y += h + (gaps[i] if i < len(gaps) else 0)
    return out


def line_origins(p: Placed) -> list[tuple[int, int]]:
    """Where each line's baseline starts (anchor 'ls')."""
    f = p.fitted
    x0, y0, x1, y1 = p.inner
    n = len(f.lines)
    if p.optical:
        cap = cap_height(p.font_key, p.weight, f.size)
        block = cap + f.pitch * (n - 1)
        first = round((y0 + y1) / 2 - block / 2 + cap)
        # never let ink leave the inner box
        first = max(first, y0 + f.above)
        first = min(first, y1 - f.below - f.pitch * (n - 1))
    else:
        first = y0 + f.above
    align = "center" if p.optical else p.spec.align
    out = []
    for i in range(n):
        adv, left, right = f.advances[i], f.ink_left[i], f.ink_right[i]
        lo = x0 - min(0, left)  # leftmost origin keeping ink inside
        hi = x1 - math.ceil(max(adv, right))  # rightmost
        if align == "left":
            x = lo
        elif align == "right":
            x = hi
        else:
            x = round((x0 + x1) / 2 - adv / 2)
        x = max(lo, min(x, hi)) if lo <= hi else lo
        out.append((x, first + i * f.pitch))
    return out


def ink_bbox(p: Placed) -> Rect:
    boxes = []
    for (x, y), line in zip(line_origins(p), p.fitted.lines, strict=True):
        bx0, by0, bx1, by1 = text_bbox(p.font_key, p.weight, p.size, line)
        boxes.append((x + bx0, y + by0, x + bx1, y + by1))
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def first_failure(plan: Plan) -> BoxFit | None:
    return next((f for f in plan.fits if not f.fits), None)


def raise_for(plan: Plan, failure: BoxFit) -> None:
    raise CopyDoesNotFit(
        failure.box, plan.fmt.size_label, plan.fmt.slug,
        (failure.chars_per_line, failure.max_lines),
    )


def measure_copy(*, kind: str, fmt: Format, brand: Brand, copy: dict[str, str]) -> list[BoxFit]:
    """How each non-empty text box's copy fits this format: cheap, no pixels drawn.

    Required fields are not enforced here, so a single field can be measured on its own
    (its budget does not depend on the other boxes' text)."""
    return plan_boxes(kind, fmt, brand, clean_copy(kind, copy, required=False)).fits
