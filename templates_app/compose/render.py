"""Fitting the copy into the layout, and composing the final image."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from PIL import Image, ImageChops, ImageDraw, ImageStat

from . import contrast as cx
from .contrast import RGB
from .fonts import cap_height, load_font, text_bbox
from .formats import COPY_FIELDS, KINDS, REQUIRED_FIELDS, Format
from .images import (
    _executor,
    colour_match,
    contact_shadow,
    contain_size,
    cover_fit,
    fit_logo,
    srgb_icc_bytes,
    trim_cutout,
)
from .layout import Layout, Stack, TextSpec, layout_for, safe_area, size_range, to_px, unit
from .model import BoxFit, Brand, Composition, CopyDoesNotFit, Rect, RenderedBox
from .text import Fitted, budget, fit

OUTPUT_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
PROVENANCE_KEY = "brenia:provenance"

# Opacities tried, in order, until the text behind reaches its contrast threshold.
_SCRIM_STEPS = (0.35, 0.5, 0.65, 0.8)
_PLATE_STEPS = (0.78, 0.9, 1.0)
_DARK_SCRIM: RGB = (8, 10, 16)
_PLATE_DARK: RGB = (17, 17, 17)


# --- padding of shaped boxes, as a function of the type size -------------------------------


def _button_pad(size: int) -> tuple[int, int]:
    return round(0.95 * size), round(0.55 * size)


def _pill_pad(size: int) -> tuple[int, int]:
    return round(0.42 * size), round(0.3 * size)


def _plate_pad(sizes: list[int]) -> int:
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


def _clean_copy(kind: str, copy: dict[str, str], *, required: bool = True) -> dict[str, str]:
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


def _plan(
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
    if stack.valign == "top":
        y = ry0
    elif stack.valign == "bottom":
        y = ry1 - total
    else:
        y = ry0 + (rh - total) // 2
    out: list[Placed] = []
    for i, ((spec, font_key, f, _aw, _ah), (w, h)) in enumerate(zip(items, shapes, strict=True)):
        if spec.align == "left":
            x = rx0
        elif spec.align == "right":
            x = rx1 - w
        else:
            x = rx0 + (rw - w) // 2
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


def _line_origins(p: Placed) -> list[tuple[int, int]]:
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


def _ink_bbox(p: Placed) -> Rect:
    boxes = []
    for (x, y), line in zip(_line_origins(p), p.fitted.lines, strict=True):
        bx0, by0, bx1, by1 = text_bbox(p.font_key, p.weight, p.size, line)
        boxes.append((x + bx0, y + by0, x + bx1, y + by1))
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _first_failure(plan: Plan) -> BoxFit | None:
    return next((f for f in plan.fits if not f.fits), None)


def _raise_for(plan: Plan, failure: BoxFit) -> None:
    raise CopyDoesNotFit(
        failure.box, plan.fmt.size_label, plan.fmt.slug,
        (failure.chars_per_line, failure.max_lines),
    )


def measure_copy(*, kind: str, fmt: Format, brand: Brand, copy: dict[str, str]) -> list[BoxFit]:
    """How each non-empty text box's copy fits this format: cheap, no pixels drawn.

    Required fields are not enforced here, so a single field can be measured on its own
    (its budget does not depend on the other boxes' text)."""
    return _plan(kind, fmt, brand, _clean_copy(kind, copy, required=False)).fits


# --- contrast and treatments ----------------------------------------------------------------


def _threshold(p: Placed) -> float:
    if p.spec.style == "button":
        return 4.5
    large = p.size >= 24 or (p.weight == "bold" and p.size >= 18.66)
    return 3.0 if large else 4.5


def _aim(p: Placed) -> float:
    """The contrast the engine aims for: the WCAG threshold, but 4.5 for everything that is
    not display type (a 34 px disclaimer on a 1080 px story is read at phone size)."""
    return _threshold(p) if p.spec.role == "heading" else 4.5


def _text_candidates(brand: Brand) -> list[RGB]:
    if brand.text_colours:
        return [cx.parse_hex(c) for c in brand.text_colours]
    seen: list[RGB] = []
    for c in [*(cx.parse_hex(c) for c in brand.palette), cx.WHITE, cx.NEAR_BLACK]:
        if c not in seen:
            seen.append(c)
    return seen


def _pick_colour(
    candidates: list[RGB], regions: list[tuple[tuple[float, float], float]]
) -> tuple[RGB, float]:
    """The candidate whose worst (ratio / threshold) over the regions is highest. A palette
    colour close to the best is preferred to a neutral one: it keeps the piece on-brand."""
    scored = []
    for c in candidates:
        score = min(cx.worst_ratio(c, lh) / thr for lh, thr in regions)
        scored.append((score, c))
    best_score = max(s for s, _ in scored)
    for score, c in scored:  # candidates come palette first
        if score >= 1.0 and score >= 0.85 * best_score:
            return c, score
    return max(scored, key=lambda sc: sc[0])[1], best_score


def _measure_box(p: Placed) -> Rect:
    """The pixels 'behind the text': its ink bounds, a little outset."""
    x0, y0, x1, y1 = _ink_bbox(p)
    m = max(1, round(0.12 * p.size))
    return x0 - m, y0 - m, x1 + m, y1 + m


def _clip(rect: Rect, w: int, h: int) -> Rect:
    return max(0, rect[0]), max(0, rect[1]), min(w, rect[2]), min(h, rect[3])


def _union(rects: list[Rect]) -> Rect:
    return (
        min(r[0] for r in rects),
        min(r[1] for r in rects),
        max(r[2] for r in rects),
        max(r[3] for r in rects),
    )


def _smooth_ramp(n: int) -> bytes:
    """n bytes falling 255 -> 0 along a smoothstep."""
    if n <= 0:
        return b""
    out = bytearray(n)
    for i in range(n):
        t = 1 - (i + 0.5) / n
        out[i] = round(255 * t * t * (3 - 2 * t))
    return bytes(out)


def _scrim_profile(side: str, canvas_size: tuple[int, int], content: Rect, feather: int,
                   pad: int, alpha: float) -> tuple[Rect, bytes]:
    """An edge scrim's region and its 1-D opacity profile (across x for left/right, down y
    for top/bottom): alpha over the content plus pad, easing to nothing over feather px."""
    cw, ch = canvas_size
    x0, y0, x1, y1 = content
    region = _scrim_region(side, canvas_size, content, feather, pad)
    rx0, ry0, rx1, ry1 = region
    if side == "left":
        solid = min(cw, x1 + pad)
        profile = b"\xff" * solid + _smooth_ramp(rx1 - solid)
    elif side == "right":
        solid_start = max(0, x0 - pad)
        profile = _smooth_ramp(solid_start - rx0)[::-1] + b"\xff" * (cw - solid_start)
    elif side == "top":
        solid = min(ch, y1 + pad)
        profile = b"\xff" * solid + _smooth_ramp(ry1 - solid)
    else:
        solid_start = max(0, y0 - pad)
        profile = _smooth_ramp(solid_start - ry0)[::-1] + b"\xff" * (ch - solid_start)
    lut = bytes(round(v * alpha) for v in range(256))
    return region, profile.translate(lut)


def _box_scrim_mask(canvas_size: tuple[int, int], content: Rect, feather: int, pad: int,
                    alpha: float) -> tuple[Rect, Image.Image]:
    """A feathered box: the product of a horizontal and a vertical profile."""
    x0, y0, x1, y1 = content
    region = _scrim_region("box", canvas_size, content, feather, pad)
    rx0, ry0, rx1, ry1 = region
    rw, rh = rx1 - rx0, ry1 - ry0
    lut = bytes(round(v * alpha) for v in range(256))
    xs = _edge_profile(rw, x0 - pad - rx0, rx1 - (x1 + pad)).translate(lut)
    ys = _edge_profile(rh, y0 - pad - ry0, ry1 - (y1 + pad))
    hx = Image.frombytes("L", (rw, 1), xs).resize((rw, rh), Image.Resampling.NEAREST)
    vy = Image.frombytes("L", (1, rh), ys).resize((rw, rh), Image.Resampling.NEAREST)
    return region, ImageChops.multiply(hx, vy)


def _scrim_region(side: str, canvas_size: tuple[int, int], content: Rect, feather: int,
                  pad: int) -> Rect:
    cw, ch = canvas_size
    x0, y0, x1, y1 = content
    if side == "left":
        return 0, 0, min(cw, min(cw, x1 + pad) + feather), ch
    if side == "right":
        return max(0, max(0, x0 - pad) - feather), 0, cw, ch
    if side == "top":
        return 0, 0, cw, min(ch, min(ch, y1 + pad) + feather)
    if side == "bottom":
        return 0, max(0, max(0, y0 - pad) - feather), cw, ch
    return _clip((x0 - pad - feather, y0 - pad - feather, x1 + pad + feather,
                  y1 + pad + feather), cw, ch)


def _edge_profile(n: int, rise: int, fall: int) -> bytes:
    rise, fall = max(0, rise), max(0, fall)
    mid = max(0, n - rise - fall)
    return (_smooth_ramp(rise)[::-1] + b"\xff" * mid + _smooth_ramp(fall))[:n].ljust(n, b"\xff")


def _scrim_paint(canvas: Image.Image, side: str, content: Rect, feather: int, pad: int,
                 colour: RGB, alpha: float) -> None:
    """Paint a scrim. An edge scrim's mask is its 1-D profile stretched over the region;
    large regions are painted in two bands on two threads (Pillow releases the GIL)."""
    if side not in ("left", "right", "top", "bottom"):
        region, mask = _box_scrim_mask(canvas.size, content, feather, pad, alpha)
        canvas.paste(colour, region, mask)
        return
    region, profile = _scrim_profile(side, canvas.size, content, feather, pad, alpha)
    x0, y0, x1, y1 = region
    w, h = x1 - x0, y1 - y0
    horizontal = side in ("left", "right")

    def band(rows: tuple[int, int]) -> None:
        a, b = rows
        if horizontal:
            line = Image.frombytes("L", (len(profile), 1), profile)
            mask = line.resize((w, b - a), Image.Resampling.NEAREST)
        else:
            seg = profile[a:b]
            mask = Image.frombytes("L", (1, len(seg)), seg).resize(
                (w, b - a), Image.Resampling.NEAREST
            )
        canvas.paste(colour, (x0, y0 + a, x1, y0 + b), mask)

    if w * h < 2_000_000:
        band((0, h))
    else:
        list(_executor().map(band, [(0, h // 2), (h // 2, h)]))


def _scaled(mask: Image.Image, alpha: float) -> Image.Image:
    if alpha >= 1:
        return mask
    return mask.point([round(v * alpha) for v in range(256)])


def _shape_mask(size: tuple[int, int], shape: str, radius: int = 0) -> Image.Image:
    """An anti-aliased 'L' mask of a rounded rectangle or an ellipse filling size."""
    w, h = size
    ss = 4 if w * h < 250_000 else 2
    big = Image.new("L", (w * ss, h * ss), 0)
    draw = ImageDraw.Draw(big)
    if shape == "ellipse":
        draw.ellipse((0, 0, w * ss - 1, h * ss - 1), fill=255)
    else:
        draw.rounded_rectangle((0, 0, w * ss - 1, h * ss - 1), radius=radius * ss, fill=255)
    return big.reduce(ss)


def _paint(canvas: Image.Image, rect: Rect, colour: RGB, mask: Image.Image,
           alpha: float = 1.0) -> None:
    canvas.paste(colour, (rect[0], rect[1]), _scaled(mask, alpha))


@dataclass
class _Ink:
    placed: Placed
    colour: RGB
    treatment: str
    backing: Rect | None


# A trial on samples must clear the threshold by this much: the real paint is then measured
# again, and rounding in the paint must not take it back under.
_MARGIN = 1.03


def _blend(samples: list[tuple[Image.Image, float]], colour: RGB, alpha: float):
    """The samples as they would read under a solid layer of colour at alpha."""
    out = []
    for img, thr in samples:
        blended = Image.blend(img, Image.new("RGB", img.size, colour), alpha)
        out.append((cx.percentiles(blended), thr))
    return out


@dataclass
class _Decision:
    inks: list[_Ink]
    paint: Callable[[Image.Image], None] | None
    needs_plate: bool


def _decide_stack(canvas: Image.Image, plan: Plan, boxes: list[Placed], brand: Brand,
                  force_plate: bool = False) -> _Decision:
    """Choose the text colour of a stack's plain text and, when the picture is not calm
    enough behind it, a scrim or a plate (at the lowest opacity that holds)."""
    candidates = _text_candidates(brand)
    samples = [(cx.sample(canvas, _measure_box(p)), _aim(p)) for p in boxes]
    colour, score = _pick_colour(candidates, [(cx.percentiles(img), t) for img, t in samples])
    if score >= 1.0 and not force_plate:
        return _Decision([_Ink(p, colour, "none", None) for p in boxes], None, False)
    cw, ch = canvas.size
    stack = plan.layout.stacks[boxes[0].stack]
    content = _union([_ink_bbox(p) for p in boxes])
    small = min(p.size for p in boxes)
    light_text = cx.luminance(colour) > 0.35
    if plan.layout.escalation == "scrim" and not force_plate:
        scrim_colour = _DARK_SCRIM if light_text else cx.WHITE
        extent = (content[2] - content[0]) if stack.scrim in ("left", "right") else (
            content[3] - content[1]
        )
        feather = max(12, round(0.45 * extent))
        pad = max(6, round(0.6 * small), max(round(0.15 * p.size) for p in boxes))
        side = stack.scrim
        for alpha in _SCRIM_STEPS:
            colour, score = _pick_colour(candidates, _blend(samples, scrim_colour, alpha))
            if score >= _MARGIN:
                region = _scrim_region(side, (cw, ch), content, feather, pad)

                def paint_scrim(img: Image.Image, a: float = alpha,
                                c: RGB = scrim_colour) -> None:
                    _scrim_paint(img, side, content, feather, pad, c, a)

                return _Decision(
                    [_Ink(p, colour, "scrim", region) for p in boxes], paint_scrim, False
                )
    # A plate: a rounded card behind the stack's text, more opaque until it holds.
    pad = _plate_pad([p.size for p in boxes])
    plate = _clip((content[0] - pad, content[1] - pad, content[2] + pad, content[3] + pad), cw, ch)
    pw, ph = plate[2] - plate[0], plate[3] - plate[1]
    text_colour = colour if brand.text_colours else (cx.WHITE if light_text else cx.NEAR_BLACK)
    chosen: tuple[RGB, RGB, float] | None = None
    for plate_colour in _plate_colours(brand, text_colour):
        for alpha in _PLATE_STEPS:
            colour, score = _pick_colour(candidates, _blend(samples, plate_colour, alpha))
            if score >= _MARGIN or (alpha >= 1 and score >= 1.0):
                chosen = (plate_colour, colour, alpha)
                break
        if chosen:
            break
    if chosen is None:  # cannot happen: some text colour reads on solid black or white
        chosen = (cx.BLACK, cx.WHITE, 1.0)
    plate_colour, colour, alpha = chosen
    radius = max(3, round(0.35 * pad))

    def paint_plate(img: Image.Image) -> None:
        _paint(img, plate, plate_colour, _shape_mask((pw, ph), "rounded", radius=radius), alpha)

    return _Decision([_Ink(p, colour, "plate", plate) for p in boxes], paint_plate, True)


def _plate_colours(brand: Brand, text: RGB) -> list[RGB]:
    """Plate colours to try behind text of this colour: a quiet (unsaturated) brand colour
    that contrasts well, then neutral near-black and white, then pure black and white (one
    of which always works)."""
    out: list[RGB] = []
    lt = cx.luminance(text)
    for c in (cx.parse_hex(h) for h in brand.palette):
        quiet = max(c) - min(c) <= 40
        if quiet and cx.ratio(cx.luminance(c), lt) >= 7.0:
            out.append(c)
    neutrals = [_PLATE_DARK, cx.WHITE] if lt > 0.35 else [cx.WHITE, _PLATE_DARK]
    for c in [*neutrals, cx.BLACK, cx.WHITE]:
        if c not in out:
            out.append(c)
    return out


def _shape_colours(fill: RGB, brand: Brand, kind: str) -> list[RGB]:
    """Fills to try for a button or badge: the brand's, then a neutral one."""
    out = [fill]
    for c in (cx.parse_hex(h) for h in brand.palette):
        if kind == "badge" and c not in out:
            out.append(c)
    for c in (_PLATE_DARK, cx.WHITE, cx.BLACK):
        if c not in out:
            out.append(c)
    return out


def _draw_shape(canvas: Image.Image, p: Placed, fill: RGB, shape: str) -> None:
    x0, y0, x1, y1 = p.rect
    if shape == "ellipse":
        mask = _shape_mask((x1 - x0, y1 - y0), "ellipse")
    else:
        h = y1 - y0
        radius = round(h * (0.5 if shape == "pill" else 0.22))
        mask = _shape_mask((x1 - x0, h), "rounded", radius=radius)
    _paint(canvas, p.rect, fill, mask)


def _treat_shape(canvas: Image.Image, p: Placed, brand: Brand, layout: Layout) -> _Ink:
    """A button (primary) or a badge (secondary) and the text colour that reads on it."""
    if p.spec.style == "button":
        fills = _shape_colours(cx.parse_hex(brand.primary), brand, "button")
        shape = "rounded"
    else:
        fills = _shape_colours(cx.parse_hex(brand.secondary), brand, "badge")
        shape = "ellipse" if layout.badge == "circle" else "pill"
    thr = _threshold(p)
    candidates = _text_candidates(brand)
    for c in (cx.WHITE, cx.NEAR_BLACK):
        if c not in candidates:
            candidates.append(c)
    # the brand's text colours first; white/black only when no fill suits them
    ordered = [cx.parse_hex(c) for c in brand.text_colours] if brand.text_colours else candidates
    for fill in fills:
        for pool in (ordered, candidates):
            colour, score = _pick_colour(pool, [(_solid(fill), thr)])
            if score >= 1.0:
                _draw_shape(canvas, p, fill, shape)
                return _Ink(p, colour, "button" if p.spec.style == "button" else "plate",
                            p.rect)
    _draw_shape(canvas, p, cx.BLACK, shape)  # unreachable in practice: white on black is 21:1
    return _Ink(p, cx.WHITE, "button" if p.spec.style == "button" else "plate", p.rect)


def _solid(c: RGB) -> tuple[float, float]:
    lum = cx.luminance(c)
    return lum, lum


# --- products and logos -----------------------------------------------------------------------


def _place_product(canvas: Image.Image, cutout: Image.Image, box: Rect) -> Rect:
    product = trim_cutout(cutout)
    bx0, by0, bx1, by1 = box
    bw, bh = bx1 - bx0, by1 - by0
    base_gap = round(0.05 * bh)  # room for the shadow under the base
    w, h = contain_size(product.width, product.height, bw, bh - base_gap)
    if (w, h) != product.size:
        product = product.resize((w, h), Image.Resampling.LANCZOS)
    x = bx0 + (bw - w) // 2
    y = by1 - base_gap - h
    around = _clip((x - w // 4, y, x + w + w // 4, y + h + base_gap), *canvas.size)
    scene = ImageStat.Stat(canvas.crop(around).reduce(4) if min(
        around[2] - around[0], around[3] - around[1]) > 64 else canvas.crop(around)).mean
    product = colour_match(product, (scene[0], scene[1], scene[2]))
    # contact shadow: a soft flattened ellipse centred on the base line
    sw, sh = round(w * 1.2), max(8, round(min(h, w) * 0.22))
    sx, sy = x + (w - sw) // 2, y + h - round(sh * 0.42)
    shadow_rect = _clip((sx, sy, sx + sw, sy + sh), *canvas.size)
    mask = contact_shadow(sw, sh, opacity=0.62)
    mask = mask.crop((shadow_rect[0] - sx, shadow_rect[1] - sy, shadow_rect[2] - sx,
                      shadow_rect[3] - sy))
    shade = (round(scene[0] * 0.22), round(scene[1] * 0.22), round(scene[2] * 0.22))
    canvas.paste(shade, shadow_rect[:2], mask)
    canvas.paste(product, (x, y), product)
    return x, y, x + w, y + h


_ANCHORS = {
    "tl": (0.0, 0.0), "tc": (0.5, 0.0), "tr": (1.0, 0.0),
    "cl": (0.0, 0.5), "cc": (0.5, 0.5), "cr": (1.0, 0.5),
    "bl": (0.0, 1.0), "bc": (0.5, 1.0), "br": (1.0, 1.0),
}


def _place_logo(canvas: Image.Image, logo: Image.Image, box: Rect, anchor: str) -> Rect:
    bx0, by0, bx1, by1 = box
    fitted = fit_logo(logo, bx1 - bx0, by1 - by0)
    ax, ay = _ANCHORS[anchor]
    x = bx0 + round((bx1 - bx0 - fitted.width) * ax)
    y = by0 + round((by1 - by0 - fitted.height) * ay)
    canvas.paste(fitted, (x, y), fitted)
    return x, y, x + fitted.width, y + fitted.height


# --- the composition ------------------------------------------------------------------------


def compose(
    *,
    kind: str,
    fmt: Format,
    brand: Brand,
    copy: dict[str, str],
    background: Image.Image,
    cutout: Image.Image | None = None,
    output_format: str = "png",
    provenance: dict | None = None,
) -> Composition:
    """The finished image, encoded, with where everything went and how legible it is."""
    out_format = OUTPUT_FORMATS.get(output_format.lower())
    if out_format is None:
        raise ValueError(f"Unknown output format {output_format!r}; choose png, jpeg or webp.")
    canvas, made = compose_canvas(
        kind=kind, fmt=fmt, brand=brand, copy=copy, background=background, cutout=cutout
    )
    return replace(made, data=encode(canvas, out_format, provenance), format=out_format)


def compose_canvas(
    *,
    kind: str,
    fmt: Format,
    brand: Brand,
    copy: dict[str, str],
    background: Image.Image,
    cutout: Image.Image | None = None,
) -> tuple[Image.Image, Composition]:
    """compose() without the encoding: the finished RGB canvas, and the Composition with
    empty data (for benchmarks and previews)."""
    canvas, plan, inks, logo_rect, product_rect = render(
        kind=kind, fmt=fmt, brand=brand, copy=copy, background=background, cutout=cutout
    )
    boxes = [_rendered(canvas, ink) for ink in inks]
    draw = ImageDraw.Draw(canvas)
    for ink in inks:
        _draw_text(draw, ink)
    return canvas, Composition(
        data=b"",
        width=canvas.width,
        height=canvas.height,
        format="",
        safe_area=plan.safe,
        boxes=boxes,
        logo_rect=logo_rect,
        product_rect=product_rect,
        omitted=plan.omitted,
    )


def render(
    *,
    kind: str,
    fmt: Format,
    brand: Brand,
    copy: dict[str, str],
    background: Image.Image,
    cutout: Image.Image | None = None,
) -> tuple[Image.Image, Plan, list[_Ink], Rect | None, Rect | None]:
    """Everything but the lettering and the encoding: the canvas with background, product,
    scrims, plates, buttons, badges and logo, the plan, and each box's ink."""
    clean = _clean_copy(kind, copy)
    plan = _plan(kind, fmt, brand, clean)
    failure = _first_failure(plan)
    if failure:
        _raise_for(plan, failure)
    canvas = cover_fit(background, fmt.width, fmt.height)
    product_rect = None
    if plan.product_box is not None and cutout is not None:
        product_rect = _place_product(canvas, cutout, plan.product_box)

    # Decide every stack's treatment. Stacks that need a plate are laid out again inside
    # the plate's padding, so that the card stays inside the stack's region (and the safe
    # area), and decided again.
    decisions = {si: _decide_stack(canvas, plan, plain, brand)
                 for si, plain in _plain_by_stack(plan).items()}
    insets = {si: _plate_pad([i.placed.size for i in d.inks])
              for si, d in decisions.items() if d.needs_plate}
    if insets:
        replanned = _plan(kind, fmt, brand, clean, insets)
        if _first_failure(replanned) is None:
            plan = replanned
            decisions = {si: _decide_stack(canvas, plan, plain, brand)
                         for si, plain in _plain_by_stack(plan).items()}
    inks: list[_Ink] = []
    for decision in decisions.values():
        if decision.paint is not None:
            decision.paint(canvas)
    for si, plain in _plain_by_stack(plan).items():
        decision = decisions[si]
        # Overlapping treatments of two stacks could undo each other: check on the real
        # pixels, and put a plate behind any stack that no longer reads.
        if decision.paint is not None or len(decisions) > 1:
            final = [(cx.luminance_percentiles(canvas, _clip(_measure_box(i.placed), *canvas.size)),
                      _threshold(i.placed), i.colour) for i in decision.inks]
            if any(cx.worst_ratio(c, lh) < thr for lh, thr, c in final):
                decision = _decide_stack(canvas, plan, plain, brand, force_plate=True)
                assert decision.paint is not None
                decision.paint(canvas)
        inks.extend(decision.inks)
    for p in plan.placed:
        if p.spec.style != "text":
            inks.append(_treat_shape(canvas, p, brand, plan.layout))
    order = {id(p): i for i, p in enumerate(plan.placed)}
    inks.sort(key=lambda ink: order[id(ink.placed)])

    logo_rect = None
    if brand.logo is not None and plan.logo_box is not None and plan.layout.logo is not None:
        logo_rect = _place_logo(canvas, brand.logo, plan.logo_box, plan.layout.logo[1])
    return canvas, plan, inks, logo_rect, product_rect


def _plain_by_stack(plan: Plan) -> dict[int, list[Placed]]:
    out: dict[int, list[Placed]] = {}
    for p in plan.placed:
        if p.spec.style == "text":
            out.setdefault(p.stack, []).append(p)
    return out


def _rendered(canvas: Image.Image, ink: _Ink) -> RenderedBox:
    p = ink.placed
    lh = cx.luminance_percentiles(canvas, _clip(_measure_box(p), *canvas.size))
    return RenderedBox(
        name=p.spec.name,
        rect=p.rect,
        text_bbox=_ink_bbox(p),
        size=p.size,
        lines=list(p.fitted.lines),
        contrast=round(cx.worst_ratio(ink.colour, lh), 2),
        threshold=_threshold(p),
        treatment=ink.treatment,
        colour=cx.to_hex(ink.colour),
        font=f"{p.font_key}/{p.weight}",
        backing=ink.backing,
    )


def _draw_text(draw: ImageDraw.ImageDraw, ink: _Ink) -> None:
    p = ink.placed
    font = load_font(p.font_key, p.weight, p.size)
    for (x, y), line in zip(_line_origins(p), p.fitted.lines, strict=True):
        draw.text((x, y), line, font=font, fill=ink.colour, anchor="ls")


# --- output ---------------------------------------------------------------------------------


def encode(canvas: Image.Image, out_format: str, provenance: dict | None) -> bytes:
    buf = io.BytesIO()
    icc = srgb_icc_bytes()
    text = (
        json.dumps(provenance, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
        if provenance is not None
        else None
    )
    if out_format == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        if text is not None:
            info.add_text(PROVENANCE_KEY, text)
        canvas.save(buf, "PNG", icc_profile=icc, pnginfo=info, compress_level=6)
    else:
        kwargs: dict = {"icc_profile": icc}
        if text is not None:
            exif = Image.Exif()
            exif[0x010E] = f"{PROVENANCE_KEY} {text}"  # ImageDescription
            exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00" + text.encode("ascii")
            kwargs["exif"] = exif.tobytes()
        if out_format == "JPEG":
            canvas.save(buf, "JPEG", quality=90, subsampling=0, optimize=False, **kwargs)
        else:
            canvas.save(buf, "WEBP", quality=90, method=4, **kwargs)
    return buf.getvalue()
