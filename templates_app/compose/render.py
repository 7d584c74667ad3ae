"""Composing the final image: background, product, logo and the treated text, encoded."""

from __future__ import annotations

import io
import json
from dataclasses import replace

from PIL import Image, ImageDraw, ImageStat

from . import contrast as cx
from .fonts import load_font
from .formats import Format
from .images import (
    colour_match,
    contact_shadow,
    contain_size,
    cover_fit,
    fit_logo,
    srgb_icc_bytes,
    trim_cutout,
)
from .model import Brand, Composition, Rect, RenderedBox
from .plan import (
    Placed,
    Plan,
    clean_copy,
    first_failure,
    ink_bbox,
    line_origins,
    plan_boxes,
    plate_pad,
    raise_for,
)
from .treatments import Ink, clip_rect, decide_stack, measure_box, threshold_for, treat_shape

OUTPUT_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
PROVENANCE_KEY = "brenia:provenance"

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
    around = clip_rect((x - w // 4, y, x + w + w // 4, y + h + base_gap), *canvas.size)
    scene = ImageStat.Stat(canvas.crop(around).reduce(4) if min(
        around[2] - around[0], around[3] - around[1]) > 64 else canvas.crop(around)).mean
    product = colour_match(product, (scene[0], scene[1], scene[2]))
    # contact shadow: a soft flattened ellipse centred on the base line
    sw, sh = round(w * 1.2), max(8, round(min(h, w) * 0.22))
    sx, sy = x + (w - sw) // 2, y + h - round(sh * 0.42)
    shadow_rect = clip_rect((sx, sy, sx + sw, sy + sh), *canvas.size)
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
) -> tuple[Image.Image, Plan, list[Ink], Rect | None, Rect | None]:
    """Everything but the lettering and the encoding: the canvas with background, product,
    scrims, plates, buttons, badges and logo, the plan, and each box's ink."""
    clean = clean_copy(kind, copy)
    plan = plan_boxes(kind, fmt, brand, clean)
    failure = first_failure(plan)
    if failure:
        raise_for(plan, failure)
    canvas = cover_fit(background, fmt.width, fmt.height)
    product_rect = None
    if plan.product_box is not None and cutout is not None:
        product_rect = _place_product(canvas, cutout, plan.product_box)

    # Decide every stack's treatment. Stacks that need a plate are laid out again inside
    # the plate's padding, so that the card stays inside the stack's region (and the safe
    # area), and decided again.
    decisions = {si: decide_stack(canvas, plan, plain, brand)
                 for si, plain in _plain_by_stack(plan).items()}
    insets = {si: plate_pad([i.placed.size for i in d.inks])
              for si, d in decisions.items() if d.needs_plate}
    if insets:
        replanned = plan_boxes(kind, fmt, brand, clean, insets)
        if first_failure(replanned) is None:
            plan = replanned
            decisions = {si: decide_stack(canvas, plan, plain, brand)
                         for si, plain in _plain_by_stack(plan).items()}
    inks: list[Ink] = []
    for decision in decisions.values():
        if decision.paint is not None:
            decision.paint(canvas)
    for si, plain in _plain_by_stack(plan).items():
        decision = decisions[si]
        # Overlapping treatments of two stacks could undo each other: check on the real
        # pixels, and put a plate behind any stack that no longer reads.
        if decision.paint is not None or len(decisions) > 1:
            final = [(cx.luminance_percentiles(
                          canvas, clip_rect(measure_box(i.placed), *canvas.size)),
                      threshold_for(i.placed), i.colour) for i in decision.inks]
            if any(cx.worst_ratio(c, lh) < thr for lh, thr, c in final):
                decision = decide_stack(canvas, plan, plain, brand, force_plate=True)
                assert decision.paint is not None
                decision.paint(canvas)
        inks.extend(decision.inks)
    for p in plan.placed:
        if p.spec.style != "text":
            inks.append(treat_shape(canvas, p, brand, plan.layout))
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


def _rendered(canvas: Image.Image, ink: Ink) -> RenderedBox:
    p = ink.placed
    lh = cx.luminance_percentiles(canvas, clip_rect(measure_box(p), *canvas.size))
    return RenderedBox(
        name=p.spec.name,
        rect=p.rect,
        text_bbox=ink_bbox(p),
        size=p.size,
        lines=list(p.fitted.lines),
        contrast=round(cx.worst_ratio(ink.colour, lh), 2),
        threshold=threshold_for(p),
        treatment=ink.treatment,
        colour=cx.to_hex(ink.colour),
        font=f"{p.font_key}/{p.weight}",
        backing=ink.backing,
    )


def _draw_text(draw: ImageDraw.ImageDraw, ink: Ink) -> None:
    p = ink.placed
    font = load_font(p.font_key, p.weight, p.size)
    for (x, y), line in zip(line_origins(p), p.fitted.lines, strict=True):
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
