"""Layouts: where each box goes, per kind and per format family, and how big its type may be.

Every rectangle is a fraction (x0, y0, x1, y1) of the format's safe area. Text boxes live
in stacks: a stack is a region whose boxes are fitted one by one into their share of it,
then stacked with gaps sized from the type and aligned in the region (so a one-line
headline does not leave a hole where a third line could have gone).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .formats import Format

Frac = tuple[float, float, float, float]
Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class TextSpec:
    name: str  # the copy field
    role: str  # "heading" | "body": which of the brand's fonts
    weight: str  # "regular" | "bold"
    size: tuple[float, float]  # (min, max) font size as a fraction of the unit
    floor: str  # legibility floor class: "heading" | "body" | "small" | "button" | "badge"
    max_lines: int
    align: str = "left"  # "left" | "center" | "right"
    style: str = "text"  # "text" | "button" | "badge"
    share: float = 1.0  # the part of its stack's height it may take
    max_w: float = 1.0  # the part of its stack's width it may take
    gap_after: float = 0.45  # space below it, in ems of its own size
    rel: tuple[str, float] | None = None  # at most factor × the size given to box `name`
    line_height: float = 1.12


@dataclass(frozen=True)
class Stack:
    rect: Frac
    items: tuple[TextSpec, ...]
    valign: str = "center"  # "top" | "center" | "bottom"
    scrim: str = "box"  # where a scrim fades in from: left, right, top, bottom, box


@dataclass(frozen=True)
class Layout:
    stacks: tuple[Stack, ...]
    logo: tuple[Frac, str] | None = None  # rect and anchor ("tl", "tc", "tr", "cl", "cr", ...)
    product: Frac | None = None
    badge: str = "circle"  # "circle" | "pill"
    escalation: str = "scrim"  # what plain text gets first when contrast is short: scrim | plate
    hint: str = ""
    omits: tuple[str, ...] = field(default_factory=tuple)  # copy fields this layout has no box for

    def specs(self) -> list[TextSpec]:
        return [spec for stack in self.stacks for spec in stack.items]


# --- safe area and units -------------------------------------------------------------------


def safe_area(fmt: Format) -> Rect:
    w, h = fmt.width, fmt.height
    short = min(w, h)
    if fmt.is_iab:
        if fmt.family == "strip":
            mx, my = max(10, round(0.16 * h)), max(5, round(0.09 * h))
        else:
            mx = my = max(10, round(0.05 * short))
    elif fmt.is_ooh:
        mx = my = round((0.055 if fmt.channel == "Out of home" else 0.05) * short)
    else:
        mx = my = round(0.06 * short)
        if fmt.is_story:
            # Stories: the app's header and reply bar cover ~250 px at each end of 1920.
            my = round(0.13 * h)
    return mx, my, w - mx, h - my


def unit(safe: Rect) -> int:
    """The size type is scaled from: the safe area's short side."""
    return min(safe[2] - safe[0], safe[3] - safe[1])


# The smallest legible size per floor class, in px (IAB) or as a fraction of the unit.
_IAB_FLOORS = {"heading": 12, "body": 10, "small": 9, "button": 11, "badge": 14}
_SOCIAL_FLOORS = {"heading": 0.036, "body": 0.024, "small": 0.02, "button": 0.026, "badge": 0.05}
_OOH_FLOORS = {"heading": 0.05, "body": 0.032, "small": 0.024, "button": 0.034, "badge": 0.06}


def size_range(spec: TextSpec, fmt: Format, u: int) -> tuple[int, int]:
    if fmt.is_iab:
        floor = _IAB_FLOORS[spec.floor]
    elif fmt.is_ooh:
        floor = round(_OOH_FLOORS[spec.floor] * u)
    else:
        floor = round(_SOCIAL_FLOORS[spec.floor] * u)
    lo = max(floor, round(spec.size[0] * u))
    hi = max(lo, round(spec.size[1] * u))
    return lo, hi


def to_px(safe: Rect, frac: Frac) -> Rect:
    x0, y0, x1, y1 = safe
    w, h = x1 - x0, y1 - y0
    return (
        x0 + round(frac[0] * w),
        y0 + round(frac[1] * h),
        x0 + round(frac[2] * w),
        y0 + round(frac[3] * h),
    )


# --- the boxes ------------------------------------------------------------------------------


def _headline(size=(0.09, 0.2), lines=3, align="left", share=0.6, gap=0.6) -> TextSpec:
    return TextSpec(
        "headline", "heading", "bold", size, "heading", lines, align,
        share=share, gap_after=gap, line_height=1.08,
    )


def _subline(size=(0.04, 0.09), lines=2, align="left", share=0.2, rel=0.45, gap=1.1) -> TextSpec:
    return TextSpec(
        "subline", "body", "regular", size, "body", lines, align,
        share=share, gap_after=gap, rel=("headline", rel), line_height=1.25,
    )


def _cta(size=(0.04, 0.08), align="left", share=0.22, rel=("headline", 0.42), max_w=0.7,
         lines=1, gap=0.6) -> TextSpec:
    return TextSpec(
        "cta", "body", "bold", size, "button", lines, align, style="button",
        share=share, max_w=max_w, rel=rel, gap_after=gap, line_height=1.1,
    )


def _discount(size=(0.1, 0.5), lines=2, align="center", share=1.0, max_w=1.0) -> TextSpec:
    return TextSpec(
        "discount", "heading", "bold", size, "badge", lines, align, style="badge",
        share=share, max_w=max_w, line_height=0.98, gap_after=0.3,
    )


def _product_name(size=(0.05, 0.12), lines=2, align="left", share=0.4, rel=0.62,
                  gap=0.5) -> TextSpec:
    return TextSpec(
        "product_name", "heading", "bold", size, "heading", lines, align,
        share=share, rel=("discount", rel), gap_after=gap, line_height=1.1,
    )


def _disclaimer(size=(0.02, 0.035), lines=2, align="left", share=0.14) -> TextSpec:
    return TextSpec(
        "disclaimer", "body", "regular", size, "small", lines, align,
        share=share, gap_after=0.0, line_height=1.25,
    )


def _billboard(family: str) -> Layout:
    if family in ("wide", "landscape"):
        col = 0.46 if family == "wide" else 0.5
        return Layout(
            stacks=(
                Stack((0, 0.24, col, 1.0), (
                    _headline(size=(0.09, 0.2) if family == "wide" else (0.08, 0.15),
                              share=0.55),
                    _subline(share=0.17),
                    _cta(share=0.18),
                ), valign="center", scrim="left"),
            ),
            logo=((0, 0, 0.22, 0.16 if family == "wide" else 0.14), "tl"),
            hint="calm, uncluttered space on the left half for text, the subject on the right",
        )
    if family in ("portrait", "skyscraper"):
        return Layout(
            stacks=(
                Stack((0, 0.12, 1, 0.5), (
                    _headline(size=(0.1, 0.16), lines=4, align="center", share=0.64),
                    _subline(align="center", lines=3, share=0.22, rel=0.5),
                ), valign="top", scrim="top"),
                Stack((0.1, 0.86, 0.9, 1.0), (
                    _cta(align="center", share=1.0, max_w=1.0, size=(0.06, 0.1), rel=None),
                ), valign="bottom"),
            ),
            logo=((0.3, 0, 0.7, 0.07), "tc"),
            hint="calm, empty sky or plain space across the top half for text, "
            "the subject in the lower middle, a plain area along the bottom",
        )
    if family == "square":
        return Layout(
            stacks=(
                Stack((0, 0.16, 0.9, 0.62), (
                    _headline(size=(0.07, 0.13), lines=3, share=0.64),
                    _subline(share=0.22, rel=0.5),
                ), valign="top", scrim="top"),
                Stack((0, 0.84, 0.6, 1.0), (
                    _cta(share=1.0, max_w=1.0, size=(0.05, 0.07), rel=None),
                ), valign="bottom"),
            ),
            logo=((0, 0, 0.25, 0.11), "tl"),
            hint="calm, empty space across the top half for text, the subject low and to the right",
        )
    # strip
    return Layout(
        stacks=(
            Stack((0.17, 0, 0.72, 1), (
                _headline(size=(0.3, 0.55), lines=2, share=1.0),
            ), valign="center", scrim="box"),
            Stack((0.75, 0, 1, 1), (
                _cta(align="right", share=0.8, max_w=1.0, size=(0.25, 0.4), rel=None),
            ), valign="center"),
        ),
        logo=((0, 0, 0.14, 1), "cl"),
        escalation="plate",
        omits=("subline",),
        hint="a calm, even texture across the whole strip, no focal subject",
    )


def _discount_banner(family: str, fmt: Format, safe: Rect) -> Layout:
    small = fmt.is_iab
    esc = "plate" if small else "scrim"
    if family == "strip":
        safe_w = safe[2] - safe[0]
        if safe_w < 500:  # 320×50: no room for a logo or a legal line at a legible size
            return Layout(
                stacks=(
                    Stack((0, 0, 0.29, 1), (_discount(size=(0.35, 0.6), lines=1),), "center"),
                    Stack((0.32, 0, 0.68, 1), (
                        _product_name(size=(0.3, 0.42), lines=2, share=1.0, rel=0.85),
                    ), "center"),
                    Stack((0.71, 0, 1, 1), (
                        _cta(align="right", share=1.0, max_w=1.0, size=(0.26, 0.36), rel=None),
                    ), "center"),
                ),
                badge="pill",
                escalation="plate",
                omits=("disclaimer",),
                hint="a calm, even texture across the whole strip, no focal subject",
            )
        return Layout(
            stacks=(
                Stack((0.14, 0, 0.34, 1), (_discount(size=(0.3, 0.6), lines=1),), "center"),
                Stack((0.37, 0, 0.74, 1), (
                    _product_name(size=(0.2, 0.3), lines=2, share=0.64, rel=0.8, gap=0.3),
                    _disclaimer(size=(0.12, 0.14), lines=1, share=0.3),
                ), "center"),
                Stack((0.77, 0, 1, 1), (
                    _cta(align="right", share=1.0, max_w=1.0, size=(0.2, 0.27), rel=None),
                ), "center"),
            ),
            logo=((0, 0.05, 0.11, 0.95), "cl"),
            badge="pill",
            escalation="plate",
            hint="a calm, even texture across the whole strip, no focal subject",
        )
    if family == "wide":
        return Layout(
            stacks=(
                Stack((0, 0, 0.26, 1), (_discount(align="left"),), "center"),
                Stack((0.3, 0.04, 0.72, 0.96), (
                    _product_name(size=(0.09, 0.2), lines=2, share=0.62, rel=0.62),
                    _disclaimer(size=(0.05, 0.06), lines=2, share=0.26),
                ), "center", scrim="box"),
                Stack((0.76, 0.4, 1, 1), (
                    _cta(align="right", share=1.0, max_w=1.0, size=(0.08, 0.12), rel=None),
                ), "bottom"),
            ),
            logo=((0.8, 0, 1, 0.3), "tr"),
            escalation=esc,
            hint="calm, even space across the middle for text, the subject on the far right",
        )
    if family == "landscape":
        return Layout(
            stacks=(
                Stack((0.6, 0, 1, 0.7), (_discount(align="right"),), "top"),
                Stack((0, 0.22, 0.56, 1), (
                    _product_name(size=(0.07, 0.14), lines=3, share=0.48, rel=0.6),
                    _cta(share=0.2, rel=("product_name", 0.55), size=(0.045, 0.07), gap=0.9),
                    _disclaimer(size=(0.026, 0.032), lines=2, share=0.12),
                ), "bottom", scrim="left"),
            ),
            logo=((0, 0, 0.25, 0.13), "tl"),
            escalation=esc,
            hint="calm, uncluttered space on the left half for text, the subject on the right",
        )
    if family == "square":
        return Layout(
            stacks=(
                Stack((0.54, 0, 1, 0.46), (_discount(align="right"),), "top"),
                Stack((0, 0.46, 1, 1), (
                    _product_name(size=(0.06, 0.11), lines=2, share=0.36, rel=0.45),
                    _cta(share=0.28, rel=("product_name", 0.6), size=(0.05, 0.07), gap=0.6,
                         max_w=0.6),
                    _disclaimer(size=(0.03, 0.036), lines=2, share=0.22),
                ), "bottom", scrim="bottom"),
            ),
            logo=((0, 0, 0.3, 0.13), "tl"),
            escalation=esc,
            hint="calm, plain space along the bottom for text and in the top-right corner, "
            "the subject in the centre-left",
        )
    # portrait and skyscraper: stacked
    sky = family == "skyscraper"
    return Layout(
        stacks=(
            Stack((0, 0.1, 1, 0.42 if sky else 0.46), (_discount(),), "center"),
            Stack((0, 0.46 if sky else 0.5, 1, 1), (
                _product_name(size=(0.09, 0.14), lines=4 if sky else 3, align="center",
                              share=0.44, rel=0.5),
                _cta(align="center", share=0.22, max_w=1.0, rel=("product_name", 0.75),
                     size=(0.045, 0.08), gap=0.7),
                _disclaimer(size=(0.045 if sky else 0.03, 0.05), lines=3, align="center",
                            share=0.2),
            ), "bottom", scrim="bottom"),
        ),
        logo=((0.2, 0, 0.8, 0.07), "tc"),
        escalation=esc,
        hint="calm, plain space across the lower half for text, the subject near the top",
    )


def _product_shot(family: str) -> Layout:
    if family in ("wide", "landscape"):
        return Layout(
            stacks=(
                Stack((0, 0.2, 0.42, 1), (
                    _headline(size=(0.07, 0.13), lines=3, share=0.6),
                    _cta(share=0.2, size=(0.045, 0.07)),
                ), "center", scrim="left"),
            ),
            logo=((0, 0, 0.22, 0.13), "tl"),
            product=(0.5, 0.06, 0.98, 1),
            hint="a clean, empty surface in the right half where the product will stand, "
            "calm plain space on the left",
        )
    if family == "strip":
        return Layout(
            stacks=(
                Stack((0.33, 0, 0.73, 1), (_headline(size=(0.3, 0.5), lines=2, share=1.0),),
                      "center", scrim="box"),
                Stack((0.76, 0, 1, 1), (
                    _cta(align="right", share=1.0, max_w=1.0, size=(0.25, 0.38), rel=None),
                ), "center"),
            ),
            logo=((0, 0, 0.12, 1), "cl"),
            product=(0.14, 0, 0.3, 1),
            escalation="plate",
            hint="a calm, even texture across the whole strip",
        )
    story = family in ("portrait", "skyscraper")
    return Layout(
        stacks=(
            Stack((0, 0.08 if story else 0.12, 1, 0.25 if story else 0.3), (
                _headline(size=(0.07, 0.12), lines=2, align="center", share=1.0),
            ), "top", scrim="top"),
            Stack((0.15, 0.88, 0.85, 1), (
                _cta(align="center", share=1.0, max_w=1.0, size=(0.045, 0.065), rel=None),
            ), "bottom"),
        ),
        logo=((0.3, 0, 0.7, 0.06 if story else 0.085), "tc"),
        product=(0.08, 0.28, 0.92, 0.84) if story else (0.14, 0.32, 0.86, 0.85),
        hint="a clean, empty surface in the centre where the product will stand, "
        "calm plain space across the top",
    )


def layout_for(kind: str, fmt: Format) -> Layout:
    family = fmt.family
    if kind == "billboard":
        return _billboard(family)
    if kind == "discount_banner":
        return _discount_banner(family, fmt, safe_area(fmt))
    if kind == "product_shot":
        return _product_shot(family)
    raise ValueError(f"Unknown kind {kind!r}.")


_GENERIC_SIZES = {
    "strip": Format("_strip", "", 728, 90, "IAB display"),
    "wide": Format("_wide", "", 3000, 1000, "Out of home"),
    "landscape": Format("_landscape", "", 1920, 1080, "Social"),
    "square": Format("_square", "", 1080, 1080, "Social"),
    "portrait": Format("_portrait", "", 1080, 1920, "Digital out of home"),
    "skyscraper": Format("_skyscraper", "", 160, 600, "IAB display"),
}


def negative_space_hint(kind: str, family: str) -> str:
    """Where the background should leave calm, empty space for the text, for its prompt."""
    if family not in _GENERIC_SIZES:
        raise ValueError(f"Unknown format family {family!r}.")
    return layout_for(kind, _GENERIC_SIZES[family]).hint
