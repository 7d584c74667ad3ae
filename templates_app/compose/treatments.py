"""Making every text box read: text colour, scrims, plates, buttons and badges, each
chosen by the contrast measured against the pixels behind it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageDraw

from . import contrast as cx
from .contrast import RGB
from .images import (
    _executor,
)
from .layout import Layout
from .model import Brand, Rect
from .plan import Placed, Plan, ink_bbox, plate_pad

# Opacities tried, in order, until the text behind reaches its contrast threshold.
_SCRIM_STEPS = (0.35, 0.5, 0.65, 0.8)
_PLATE_STEPS = (0.78, 0.9, 1.0)
_DARK_SCRIM: RGB = (8, 10, 16)
_PLATE_DARK: RGB = (17, 17, 17)



def threshold_for(p: Placed) -> float:
    if p.spec.style == "button":
        return 4.5
    large = p.size >= 24 or (p.weight == "bold" and p.size >= 18.66)
    return 3.0 if large else 4.5


def _aim(p: Placed) -> float:
    """The contrast the engine aims for: the WCAG threshold, but 4.5 for everything that is
    not display type (a 34 px disclaimer on a 1080 px story is read at phone size)."""
    return threshold_for(p) if p.spec.role == "heading" else 4.5


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


def measure_box(p: Placed) -> Rect:
    """The pixels 'behind the text': its ink bounds, a little outset."""
    x0, y0, x1, y1 = ink_bbox(p)
    m = max(1, round(0.12 * p.size))
    return x0 - m, y0 - m, x1 + m, y1 + m


def clip_rect(rect: Rect, w: int, h: int) -> Rect:
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
    return clip_rect((x0 - pad - feather, y0 - pad - feather, x1 + pad + feather,
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
class Ink:
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
    inks: list[Ink]
    paint: Callable[[Image.Image], None] | None
    needs_plate: bool


def decide_stack(canvas: Image.Image, plan: Plan, boxes: list[Placed], brand: Brand,
                  force_plate: bool = False) -> _Decision:
    """Choose the text colour of a stack's plain text and, when the picture is not calm
    enough behind it, a scrim or a plate (at the lowest opacity that holds)."""
    candidates = _text_candidates(brand)
    samples = [(cx.sample(canvas, measure_box(p)), _aim(p)) for p in boxes]
    colour, score = _pick_colour(candidates, [(cx.percentiles(img), t) for img, t in samples])
    if score >= 1.0 and not force_plate:
        return _Decision([Ink(p, colour, "none", None) for p in boxes], None, False)
    cw, ch = canvas.size
    stack = plan.layout.stacks[boxes[0].stack]
    content = _union([ink_bbox(p) for p in boxes])
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
                    [Ink(p, colour, "scrim", region) for p in boxes], paint_scrim, False
                )
    # A plate: a rounded card behind the stack's text, more opaque until it holds.
    pad = plate_pad([p.size for p in boxes])
    plate = clip_rect((content[0] - pad, content[1] - pad, content[2] + pad, content[3] + pad),
                      cw, ch)
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

    return _Decision([Ink(p, colour, "plate", plate) for p in boxes], paint_plate, True)


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


def treat_shape(canvas: Image.Image, p: Placed, brand: Brand, layout: Layout) -> Ink:
    """A button (primary) or a badge (secondary) and the text colour that reads on it."""
    if p.spec.style == "button":
        fills = _shape_colours(cx.parse_hex(brand.primary), brand, "button")
        shape = "rounded"
    else:
        fills = _shape_colours(cx.parse_hex(brand.secondary), brand, "badge")
        shape = "ellipse" if layout.badge == "circle" else "pill"
    thr = threshold_for(p)
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
                return Ink(p, colour, "button" if p.spec.style == "button" else "plate",
                            p.rect)
    _draw_shape(canvas, p, cx.BLACK, shape)  # unreachable in practice: white on black is 21:1
    return Ink(p, cx.WHITE, "button" if p.spec.style == "button" else "plate", p.rect)


def _solid(c: RGB) -> tuple[float, float]:
    lum = cx.luminance(c)
    return lum, lum
