"""The composition engine: layouts, fitting, contrast on real pixels, logos, products, output.

Plain unit tests (no database). Contrast is re-measured here from the decoded output with
an independent WCAG implementation, not only read from the engine's report.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageDraw

from templates_app.compose import (
    COPY_FIELDS,
    FONTS,
    FORMATS,
    KIND_FORMATS,
    KINDS,
    Brand,
    Composition,
    CopyDoesNotFit,
    Format,
    compose,
    measure_copy,
    negative_space_hint,
    normalise_logo,
)
from templates_app.compose import images as images_mod
from templates_app.compose import synthetic as syn
from templates_app.compose.formats import FAMILIES, family_for
from templates_app.compose.layout import layout_for, safe_area, to_px
from templates_app.compose.text import wrap_to_budget

COPY = syn.SAMPLE_COPY
MAGENTA = (214, 0, 120)
ALL_COMBOS = [(kind, slug) for kind in KINDS for slug in KIND_FORMATS[kind]]


# --- an independent WCAG implementation ------------------------------------------------------


def _lin(c: int) -> float:
    s = c / 255
    return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4


def lum(rgb) -> float:
    return 0.2126 * _lin(rgb[0]) + 0.7152 * _lin(rgb[1]) + 0.0722 * _lin(rgb[2])


def ratio(a: float, b: float) -> float:
    hi, lo = max(a, b), min(a, b)
    return (hi + 0.05) / (lo + 0.05)


def hex_rgb(h: str) -> tuple[int, int, int]:
    h = h.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def ring_pixels(img: Image.Image, bbox, d: int, clip=None) -> list[tuple[int, int, int]]:
    """Pixels in a ring of width d around bbox (outside bbox grown by 1 px): behind the
    text, next to it, never part of its glyphs."""
    x0, y0, x1, y1 = bbox
    ox0, oy0, ox1, oy1 = x0 - 1 - d, y0 - 1 - d, x1 + 1 + d, y1 + 1 + d
    if clip:
        ox0, oy0 = max(ox0, clip[0]), max(oy0, clip[1])
        ox1, oy1 = min(ox1, clip[2]), min(oy1, clip[3])
    ox0, oy0, ox1, oy1 = max(0, ox0), max(0, oy0), min(img.width, ox1), min(img.height, oy1)
    px = img.load()
    out = []
    step = max(1, (ox1 - ox0) * (oy1 - oy0) // 40000)
    i = 0
    for y in range(oy0, oy1):
        for x in range(ox0, ox1):
            if x0 - 1 <= x < x1 + 1 and y0 - 1 <= y < y1 + 1:
                continue
            i += 1
            if i % step == 0:
                out.append(px[x, y])
    return out


def measured_contrast(img: Image.Image, box, other_ink=()) -> float:
    """The text colour's worst contrast (10th/90th percentile) against the pixels around
    its ink, skipping other boxes' ink."""
    d = max(2, box.size // 5)
    clip = box.backing if box.treatment in ("plate", "button") else None
    pixels = ring_pixels(img, box.text_bbox, d, clip)
    assert pixels, f"no pixels around {box.name}"
    values = sorted(lum(p) for p in pixels)
    lo, hi = values[len(values) // 10], values[(len(values) * 9) // 10]
    text = lum(hex_rgb(box.colour))
    return min(ratio(text, lo), ratio(text, hi))


def inside(inner, outer) -> bool:
    return (inner[0] >= outer[0] and inner[1] >= outer[1]
            and inner[2] <= outer[2] and inner[3] <= outer[3])


def overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def background_for(fmt: Format, kind: str) -> Image.Image:
    w, h = syn.model_size(fmt.width, fmt.height)
    subject = "none" if kind == "product_shot" else "right"
    return syn.scene(w, h, seed=11, subject=subject)


# --- every kind × format, rendered once ------------------------------------------------------


@pytest.fixture(scope="module")
def brand() -> Brand:
    return Brand(logo=syn.solid_logo(240, MAGENTA))


@pytest.fixture(scope="module")
def renders(brand) -> dict[tuple[str, str], tuple[Composition, Image.Image]]:
    out = {}
    cutout = syn.bottle_cutout(900)
    for kind, slug in ALL_COMBOS:
        fmt = FORMATS[slug]
        made = compose(kind=kind, fmt=fmt, brand=brand, copy=COPY,
                       background=background_for(fmt, kind),
                       cutout=cutout if kind == "product_shot" else None)
        img = Image.open(io.BytesIO(made.data))
        img.load()
        out[(kind, slug)] = (made, img)
    return out


def test_the_catalogue():
    assert len(FORMATS) == 17
    assert sum(len(v) for v in KIND_FORMATS.values()) == 17
    assert KINDS == ("billboard", "discount_banner", "product_shot")
    assert KIND_FORMATS["billboard"] == ("48-sheet", "bulletin", "digital-landscape",
                                         "digital-portrait")
    assert set(FONTS) == {"inter", "league-spartan", "bebas-neue", "lato", "open-sans"}
    assert COPY_FIELDS["discount_banner"] == ("discount", "product_name", "cta", "disclaimer")
    families = {slug: f.family for slug, f in FORMATS.items()}
    assert families["leaderboard"] == families["mobile-banner"] == "strip"
    assert families["48-sheet"] == families["bulletin"] == families["billboard-970"] == "wide"
    assert families["digital-landscape"] == families["social-landscape"] == "landscape"
    assert families["social-square"] == families["portrait-4x5"] == "square"
    assert families["digital-portrait"] == families["half-page"] == "portrait"
    assert families["wide-skyscraper"] == "skyscraper"
    # the boundaries belong to the family above them
    assert [family_for(w, 100) for w in (500, 220, 130, 80, 40, 39)] == [
        "strip", "wide", "landscape", "square", "portrait", "skyscraper"]


@pytest.mark.parametrize(("kind", "slug"), ALL_COMBOS)
def test_every_kind_and_format(renders, kind, slug):
    made, img = renders[(kind, slug)]
    fmt = FORMATS[slug]
    assert img.size == (fmt.width, fmt.height) == (made.width, made.height)
    assert img.format == "PNG" and img.mode == "RGB"
    profile = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
    assert "sRGB" in ImageCms.getProfileDescription(profile)

    sx0, sy0, sx1, sy1 = safe = made.safe_area
    assert 0 < sx0 < sx1 < fmt.width and 0 < sy0 < sy1 < fmt.height
    names = [b.name for b in made.boxes]
    assert set(names) == {k for k in COPY_FIELDS[kind] if k not in made.omitted}
    for box in made.boxes:
        assert inside(box.rect, safe), (box.name, box.rect, safe)
        assert inside(box.text_bbox, box.rect), (box.name, box.text_bbox, box.rect)
        assert box.contrast >= box.threshold, (box.name, box.contrast, box.threshold)
        large = box.size >= 24 or (box.font.endswith("bold") and box.size >= 18.66)
        assert box.threshold == (4.5 if box.treatment == "button" or not large else 3.0)
        # nothing cut: every word of the copy is on the lines, in order
        assert " ".join(box.lines).split() == COPY[box.name].split()
        # the reported colour is really drawn inside the ink box
        want = hex_rgb(box.colour)
        ink = img.crop(box.text_bbox).getcolors(1 << 20)
        assert any(max(abs(c[i] - want[i]) for i in range(3)) <= 8 for _, c in ink), box.name
        # and it reads against the pixels around it, measured here on the output
        others = [b.text_bbox for b in made.boxes if b is not box]
        measured = measured_contrast(img, box, others)
        tolerance = 1.0 if box.treatment in ("plate", "button") else 0.9
        assert measured >= box.threshold * tolerance, (box.name, measured, box.contrast)
    for a in made.boxes:  # no two boxes collide
        for b in made.boxes:
            if a is not b:
                assert not overlaps(a.rect, b.rect), (a.name, b.name)
    if layout_for(kind, fmt).logo is None:  # 320×50: no room for a legible logo
        assert made.logo_rect is None and slug == "mobile-banner"
    else:
        assert made.logo_rect is not None and inside(made.logo_rect, safe)
        assert not any(overlaps(made.logo_rect, b.rect) for b in made.boxes)
    if "cta" in names:
        assert made.box("cta").treatment == "button"
    if kind == "discount_banner":
        discount = made.box("discount")
        assert discount.size == max(b.size for b in made.boxes)  # the dominant element
        assert discount.treatment == "plate"  # on its badge
    if kind == "product_shot":
        assert made.product_rect is not None and inside(made.product_rect, (0, 0, *img.size))
        assert not any(overlaps(made.product_rect, b.rect) for b in made.boxes)
    # legible sizes: IAB body never below 10 px (a legal line never below 9), OOH larger
    for box in made.boxes:
        if fmt.is_iab:
            assert box.size >= (9 if box.name == "disclaimer" else 10), box.name
        if fmt.is_ooh:
            assert box.size >= 0.03 * min(sx1 - sx0, sy1 - sy0), box.name


def test_hierarchy_headline_above_subline_above_cta(renders):
    for slug in KIND_FORMATS["billboard"]:
        made, _ = renders[("billboard", slug)]
        head, sub, cta = made.box("headline"), made.box("subline"), made.box("cta")
        assert head.size > sub.size, slug
        assert head.rect[3] <= sub.rect[1] <= cta.rect[1], slug


def test_leaderboard_is_one_row(renders):
    made, _ = renders[("discount_banner", "leaderboard")]
    d, n, c = made.box("discount"), made.box("product_name"), made.box("cta")
    assert d.rect[2] <= n.rect[0] and n.rect[2] <= c.rect[0]  # side by side, in that order
    assert made.logo_rect[2] <= d.rect[0]
    small, _ = renders[("discount_banner", "mobile-banner")]
    assert small.omitted == ("disclaimer",)  # no legible room for it on 320×50


# --- contrast ---------------------------------------------------------------------------------


PALE = (0xFA, 0xFA, 0xF0)


@pytest.mark.parametrize(("kind", "slug", "allowed"), [
    ("billboard", "digital-landscape", {"scrim"}),
    ("billboard", "digital-portrait", {"scrim"}),
    ("discount_banner", "leaderboard", {"plate"}),
    ("discount_banner", "medium-rectangle", {"plate"}),
    ("discount_banner", "social-square", {"scrim"}),
    ("product_shot", "square", {"scrim"}),
])
def test_pale_background_forces_a_scrim_or_plate(kind, slug, allowed):
    fmt = FORMATS[slug]
    brand = Brand(palette=("#ffffff", "#fde68a", "#fef3c7"), text_colours=("#ffffff",))
    made = compose(kind=kind, fmt=fmt, brand=brand, copy=COPY,
                   background=Image.new("RGB", (1600, 1600), PALE))
    img = Image.open(io.BytesIO(made.data)).convert("RGB")
    plain = [b for b in made.boxes if b.treatment not in ("button",) and b.name != "discount"]
    assert plain
    for box in plain:
        assert box.treatment in allowed, (box.name, box.treatment)
        assert box.colour == "#ffffff"
        assert box.contrast >= box.threshold
        measured = measured_contrast(img, box)
        assert measured >= box.threshold * 0.9, (box.name, measured)
        # the picture behind the text really was darkened
        around = ring_pixels(img, box.text_bbox, 2)
        assert max(lum(p) for p in around) < lum(PALE) * 0.5
    for box in made.boxes:  # white text everywhere, so the buttons fell back to a dark one
        assert box.contrast >= box.threshold


def test_dark_background_gets_light_text_without_a_plate():
    for kind, slug in [("billboard", "48-sheet"), ("billboard", "digital-portrait"),
                       ("discount_banner", "social-story"), ("discount_banner", "half-page")]:
        fmt = FORMATS[slug]
        made = compose(kind=kind, fmt=fmt, brand=Brand(), copy=COPY,
                       background=Image.new("RGB", (1200, 800), (16, 20, 28)),
                       output_format="jpeg")
        for box in made.boxes:
            if box.treatment in ("button",) or box.name == "discount":
                continue
            assert box.treatment == "none", (slug, box.name, box.treatment)
            assert lum(hex_rgb(box.colour)) > 0.8, (slug, box.name, box.colour)
            assert box.contrast >= 12


def test_busy_background_still_reads():
    """Stripes of black and white under every box: the worst case for a plain colour."""
    stripes = Image.new("RGB", (1024, 1024), "white")
    draw = ImageDraw.Draw(stripes)
    for x in range(0, 1024, 16):
        draw.rectangle((x, 0, x + 7, 1024), fill="black")
    for kind, slug in [("billboard", "digital-landscape"), ("discount_banner", "leaderboard"),
                       ("discount_banner", "wide-skyscraper")]:
        made = compose(kind=kind, fmt=FORMATS[slug], brand=Brand(), copy=COPY,
                       background=stripes)
        img = Image.open(io.BytesIO(made.data)).convert("RGB")
        for box in made.boxes:
            assert box.treatment != "none", box.name
            assert box.contrast >= box.threshold
            assert measured_contrast(img, box) >= box.threshold * 0.9, (slug, box.name)


def test_cta_falls_back_to_a_neutral_button_when_the_primary_cannot_carry_text():
    brand = Brand(palette=("#777777", "#f59e0b"))  # mid grey: neither white nor #111 reach 4.5
    made = compose(kind="billboard", fmt=FORMATS["digital-landscape"], brand=brand, copy=COPY,
                   background=Image.new("RGB", (800, 450), (40, 40, 40)))
    img = Image.open(io.BytesIO(made.data)).convert("RGB")
    cta = made.box("cta")
    assert cta.contrast >= 4.5
    fill = img.getpixel((cta.rect[0] + 6, (cta.rect[1] + cta.rect[3]) // 2))
    assert max(abs(a - b) for a, b in zip(fill, (0x77, 0x77, 0x77), strict=True)) > 30


# --- logo -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "slug", "corner"), [
    ("billboard", "48-sheet", "tl"),
    ("billboard", "digital-portrait", "tc"),
    ("discount_banner", "billboard-970", "tr"),
    ("discount_banner", "leaderboard", "cl"),
    ("product_shot", "landscape-16x9", "tl"),
])
def test_logo_is_where_the_layout_puts_it(renders, kind, slug, corner):
    made, img = renders[(kind, slug)]
    x0, y0, x1, y1 = made.logo_rect
    assert x1 - x0 > 8 and y1 - y0 > 8
    for fx, fy in ((0.5, 0.5), (0.15, 0.15), (0.85, 0.85)):
        px = img.getpixel((round(x0 + (x1 - x0) * fx), round(y0 + (y1 - y0) * fy)))
        assert max(abs(a - b) for a, b in zip(px, MAGENTA, strict=True)) <= 3, px
    layout = layout_for(kind, FORMATS[slug])
    bx0, by0, bx1, by1 = to_px(safe_area(FORMATS[slug]), layout.logo[0])
    assert inside(made.logo_rect, (bx0, by0, bx1, by1))
    assert x1 - x0 == bx1 - bx0 or y1 - y0 == by1 - by0  # as large as its box allows
    if corner[0] == "t":
        assert y0 == by0
    if corner[1] == "l":
        assert x0 == bx0
    if corner[1] == "r":
        assert x1 == bx1
    if corner[1] == "c":
        assert abs((x0 + x1) - (bx0 + bx1)) <= 1
    # outside the logo, no magenta: it was pasted once, where reported
    outside = img.crop((min(x1 + 2, img.width - 1), y0, img.width, y1)).getcolors(1 << 22) or []
    assert not any(max(abs(a - b) for a, b in zip(c, MAGENTA, strict=True)) <= 3
                   for _, c in outside)


# --- copy that does not fit -------------------------------------------------------------------


LONG_NAME = ("Organic Sparkling Sicilian Lemonade with Wild Mint, Elderflower and a Hint of "
             "Ginger, Family Size 1.5 L")


def test_copy_too_long_for_the_leaderboard():
    fmt = FORMATS["leaderboard"]
    copy = {**COPY, "product_name": LONG_NAME}
    fits = {f.box: f for f in measure_copy(kind="discount_banner", fmt=fmt, brand=Brand(),
                                           copy=copy)}
    name = fits["product_name"]
    assert not name.fits and name.size is None and name.lines == []
    assert name.chars_per_line > 5 and name.max_lines >= 1 and name.format == "leaderboard"
    assert name.max_chars == name.chars_per_line * name.max_lines < len(LONG_NAME)
    assert fits["discount"].fits and fits["cta"].fits
    with pytest.raises(CopyDoesNotFit) as err:
        compose(kind="discount_banner", fmt=fmt, brand=Brand(), copy=copy,
                background=Image.new("RGB", (2048, 878), (90, 120, 140)))
    assert err.value.box == "product_name" and err.value.format == "leaderboard"
    assert err.value.budget == (name.chars_per_line, name.max_lines)
    message = str(err.value)
    assert "product name" in message and "728×90 (leaderboard)" in message
    assert re.search(rf"at most {name.max_lines} lines? of {name.chars_per_line} characters",
                     message)
    # copy written to the budget fits, and composes
    short = wrap_to_budget(LONG_NAME, name.chars_per_line, name.max_lines)
    assert 0 < len(short) <= name.max_chars
    copy["product_name"] = short
    refit = {f.box: f for f in measure_copy(kind="discount_banner", fmt=fmt, brand=Brand(),
                                            copy=copy)}
    assert refit["product_name"].fits
    made = compose(kind="discount_banner", fmt=fmt, brand=Brand(), copy=copy,
                   background=Image.new("RGB", (2048, 878), (90, 120, 140)))
    assert " ".join(made.box("product_name").lines) == short


@pytest.mark.parametrize(("kind", "slug", "field"), [
    ("billboard", "digital-landscape", "headline"),
    ("discount_banner", "mobile-banner", "product_name"),
    ("discount_banner", "wide-skyscraper", "disclaimer"),
    ("product_shot", "story-9x16", "headline"),
])
def test_budgets_are_honest(kind, slug, field):
    """Copy cut to the reported budget fits; twice as much does not."""
    fmt = FORMATS[slug]
    text = ("Sparkling lemonade squeezed fresh from sun ripened Sicilian lemons every single "
            "morning by our small team in Palermo since nineteen sixty two") * 2
    fits = {f.box: f for f in measure_copy(kind=kind, fmt=fmt, brand=Brand(),
                                           copy={**COPY, field: text})}
    budget = fits[field]
    assert not budget.fits
    short = wrap_to_budget(text, budget.chars_per_line, budget.max_lines)
    refit = {f.box: f for f in measure_copy(kind=kind, fmt=fmt, brand=Brand(),
                                            copy={**COPY, field: short})}
    assert refit[field].fits, (short, refit[field])


@pytest.mark.parametrize("font", sorted(FONTS))
def test_every_font_fits_and_never_cuts(font):
    brand = Brand(heading_font=font, body_font=font)
    for kind, slug in [("discount_banner", "wide-skyscraper"), ("billboard", "digital-portrait"),
                       ("discount_banner", "mobile-banner")]:
        fmt = FORMATS[slug]
        for n in (1, 3, 6, 12):
            copy = {**COPY, "product_name": " ".join(["Lemonade"] * n),
                    "headline": " ".join(["Lemon"] * n)}
            try:
                made = compose(kind=kind, fmt=fmt, brand=brand, copy=copy,
                               background=Image.new("RGB", (600, 900), (30, 90, 60)),
                               output_format="jpeg")
            except CopyDoesNotFit as exc:
                assert exc.format == slug and exc.box in copy
                continue
            for box in made.boxes:
                assert inside(box.text_bbox, box.rect) and inside(box.rect, made.safe_area)
                assert " ".join(box.lines).split() == copy[box.name].split()


def test_measure_copy_agrees_with_compose(renders, brand):
    for kind, slug in [("billboard", "bulletin"), ("discount_banner", "billboard-970"),
                       ("product_shot", "portrait-4x5")]:
        made, _ = renders[(kind, slug)]
        fits = measure_copy(kind=kind, fmt=FORMATS[slug], brand=brand, copy=COPY)
        by_name = {f.box: f for f in fits}
        assert set(by_name) == {b.name for b in made.boxes}
        for box in made.boxes:
            f = by_name[box.name]
            assert f.fits and f.min_size <= f.size <= f.max_size
            if box.treatment != "plate" or box.name == "discount":
                assert f.size == box.size and f.lines == box.lines


def test_required_fields():
    bg = Image.new("RGB", (100, 100))
    with pytest.raises(ValueError, match="headline"):
        compose(kind="billboard", fmt=FORMATS["bulletin"], brand=Brand(), copy={"cta": "Go"},
                background=bg)
    with pytest.raises(ValueError, match="product name"):
        compose(kind="discount_banner", fmt=FORMATS["leaderboard"], brand=Brand(),
                copy={"discount": "10%"}, background=bg)
    # measuring a single field on its own is allowed (for budgets)
    fits = measure_copy(kind="discount_banner", fmt=FORMATS["leaderboard"], brand=Brand(),
                        copy={"cta": "Shop now"})
    assert [f.box for f in fits] == ["cta"] and fits[0].fits
    with pytest.raises(ValueError):
        Brand(palette=("blue",))
    with pytest.raises(ValueError):
        Brand(heading_font="comic-sans")


# --- product shot -----------------------------------------------------------------------------


def test_product_is_drawn_with_a_contact_shadow():
    fmt = FORMATS["square"]
    green = (40, 160, 70)
    grey = (150, 150, 150)
    cutout = syn.bottle_cutout(800, colour=green)
    made = compose(kind="product_shot", fmt=fmt, brand=Brand(), copy={"headline": "Fresh"},
                   background=Image.new("RGB", (2048, 2048), grey), cutout=cutout)
    img = Image.open(io.BytesIO(made.data)).convert("RGB")
    x0, y0, x1, y1 = made.product_rect
    # trimmed to its opaque pixels and scaled into the product box
    box = to_px(safe_area(fmt), layout_for("product_shot", fmt).product)
    assert inside(made.product_rect, box)
    assert y1 - y0 == pytest.approx((box[3] - box[1]) * 0.95, abs=3)
    # the body of the bottle keeps its colour (colour-matched only part of the way)
    body = img.getpixel(((x0 + x1) // 2, y0 + (y1 - y0) * 85 // 100))
    assert max(abs(a - b) for a, b in zip(body, green, strict=True)) <= 25, body
    # a soft shadow darkens the floor just under it, and fades out sideways
    cx = (x0 + x1) // 2
    under = img.getpixel((cx, y1 + 3))
    assert sum(under) < sum(grey) - 45, under
    far = img.getpixel((min(img.width - 1, x1 + (x1 - x0)), y1 + 3))
    assert far == grey
    assert img.getpixel((cx, y1 + 3))[1] <= img.getpixel((cx, y1 + 3))[0] + 2  # no green halo


def test_product_shot_without_a_cutout_still_composes():
    made = compose(kind="product_shot", fmt=FORMATS["story-9x16"], brand=Brand(),
                   copy={"cta": "Shop"}, background=Image.new("RGB", (300, 300), (200, 80, 40)))
    assert made.product_rect is None and [b.name for b in made.boxes] == ["cta"]


# --- backgrounds and output -------------------------------------------------------------------


def test_backgrounds_of_any_size_mode_and_profile_are_cover_fitted():
    fmt = FORMATS["medium-rectangle"]
    tall = Image.new("RGB", (300, 3000), (10, 200, 10))
    ImageDraw.Draw(tall).rectangle((0, 1400, 300, 1600), fill=(200, 10, 10))
    made = compose(kind="discount_banner", fmt=fmt, brand=Brand(), copy=COPY, background=tall)
    img = Image.open(io.BytesIO(made.data)).convert("RGB")
    assert img.size == (300, 250)
    assert img.getpixel((2, 125)) == (200, 10, 10)  # centre-cropped: the red band is centred
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for bg in (Image.new("L", (640, 480), 90), Image.new("RGBA", (640, 480), (9, 9, 9, 255)),
               Image.new("CMYK", (640, 480), (0, 0, 0, 200)), Image.new("P", (64, 64))):
        made = compose(kind="discount_banner", fmt=fmt, brand=Brand(), copy=COPY, background=bg)
        assert Image.open(io.BytesIO(made.data)).size == (300, 250)
    tagged = Image.new("RGB", (640, 480), (120, 60, 30))
    tagged.info["icc_profile"] = srgb
    made = compose(kind="discount_banner", fmt=fmt, brand=Brand(), copy=COPY, background=tagged)
    corner = Image.open(io.BytesIO(made.data)).convert("RGB").getpixel((1, 1))
    assert max(abs(a - b) for a, b in zip(corner, (120, 60, 30), strict=True)) <= 2


def test_inputs_are_left_untouched_and_transparent_backgrounds_flattened():
    fmt = FORMATS["medium-rectangle"]
    bg = Image.new("RGB", (300, 250), (30, 30, 30))
    before = bg.tobytes()
    compose(kind="discount_banner", fmt=fmt, brand=Brand(), copy=COPY, background=bg)
    assert bg.tobytes() == before  # same size as the format: drawn on a copy
    clear = Image.new("RGBA", (600, 500), (0, 0, 0, 0))
    made = compose(kind="discount_banner", fmt=fmt, brand=Brand(), copy=COPY, background=clear)
    assert Image.open(io.BytesIO(made.data)).convert("RGB").getpixel((150, 2)) == (255, 255, 255)


def test_copy_does_not_fit_survives_a_job_queue():
    import pickle

    err = CopyDoesNotFit("headline", "728×90 (leaderboard)", "leaderboard", (18, 2))
    assert str(err) == ("The headline does not fit its box in 728×90 (leaderboard) at the "
                        "smallest size: at most 2 lines of 18 characters.")
    again = pickle.loads(pickle.dumps(err))
    assert (again.box, again.format, again.budget, str(again)) == (
        "headline", "leaderboard", (18, 2), str(err))


def test_output_formats_carry_srgb_and_provenance():
    provenance = {"run": "r-1", "models": {"background": {"model": "flux", "seed": 7}}}
    args = dict(kind="discount_banner", fmt=FORMATS["social-landscape"], brand=Brand(),
                copy=COPY, background=syn.scene(1024, 576))
    png = compose(**args, provenance=provenance)
    img = Image.open(io.BytesIO(png.data))
    assert png.format == "PNG" and json.loads(img.text["brenia:provenance"]) == provenance
    jpeg = compose(**args, output_format="jpeg", provenance=provenance)
    img = Image.open(io.BytesIO(jpeg.data))
    assert jpeg.format == "JPEG" and img.mode == "RGB" and img.size == (1200, 628)
    assert img.info.get("icc_profile")
    exif = img.getexif()
    assert json.loads(exif[0x010E].split(" ", 1)[1]) == provenance
    comment = exif.get_ifd(0x8769)[0x9286]
    assert json.loads(comment[8:].decode("ascii")) == provenance
    webp = compose(**args, output_format="webp", provenance=provenance)
    img = Image.open(io.BytesIO(webp.data))
    assert webp.format == "WEBP" and img.size == (1200, 628) and img.info.get("icc_profile")
    assert json.loads(img.getexif()[0x010E].split(" ", 1)[1]) == provenance
    with pytest.raises(ValueError, match="output format"):
        compose(**args, output_format="gif")


def test_the_same_inputs_give_the_same_bytes():
    for fmt_name, out in (("bulletin", "png"), ("social-square", "jpeg"), ("half-page", "webp")):
        kind = "billboard" if fmt_name == "bulletin" else "discount_banner"
        fmt = FORMATS[fmt_name]
        runs = [compose(kind=kind, fmt=fmt, brand=Brand(logo=syn.logo(120)), copy=COPY,
                        background=syn.scene(*syn.model_size(fmt.width, fmt.height)),
                        output_format=out, provenance={"n": 1}).data for _ in range(2)]
        assert runs[0] == runs[1]


def test_negative_space_hints():
    for kind in KINDS:
        for family in FAMILIES:
            assert len(negative_space_hint(kind, family)) > 20
    assert "left" in negative_space_hint("billboard", "wide")
    assert "top" in negative_space_hint("billboard", "portrait")
    with pytest.raises(ValueError):
        negative_space_hint("billboard", "round")


# --- logos ------------------------------------------------------------------------------------


def _decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.mode == "RGBA"
    profile = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
    assert "sRGB" in ImageCms.getProfileDescription(profile)
    return img


def test_normalise_logo_cmyk_jpeg():
    buf = io.BytesIO()
    Image.new("CMYK", (300, 200), (0, 255, 255, 0)).save(buf, "JPEG", quality=95)  # red ink
    img = _decode(normalise_logo(buf.getvalue()))
    r, g, b, a = img.getpixel((150, 100))
    assert a == 255 and r > 200 and g < 60 and b < 60


def test_normalise_logo_palette_png_with_transparency():
    pal = Image.new("P", (120, 80), 0)
    pal.putpalette([0, 0, 0, 214, 0, 120] + [0] * 762)
    ImageDraw.Draw(pal).rectangle((20, 20, 100, 60), fill=1)
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=0)
    img = _decode(normalise_logo(buf.getvalue()))
    assert img.getpixel((2, 2))[3] == 0
    assert img.getpixel((60, 40)) == (*MAGENTA, 255)


def test_normalise_logo_greyscale_la_16_bit_and_large():
    for img in (Image.new("L", (50, 40), 128), Image.new("LA", (50, 40), (128, 100)),
                Image.new("I;16", (50, 40), 32896)):
        buf = io.BytesIO()
        img.save(buf, "PNG")
        out = _decode(normalise_logo(buf.getvalue()))
        r, g, b, a = out.getpixel((10, 10))
        assert r == g == b and abs(r - 128) <= 1
        assert a == (100 if img.mode == "LA" else 255)
    buf = io.BytesIO()
    Image.new("RGB", (3000, 1500), (1, 2, 3)).save(buf, "JPEG")
    out = _decode(normalise_logo(buf.getvalue()))
    assert out.size == (1024, 512)
    assert _decode(normalise_logo(buf.getvalue(), max_side=200)).size == (200, 100)


def test_normalise_logo_with_icc_profile_and_animation():
    buf = io.BytesIO()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGB", (40, 40), (10, 120, 200)).save(buf, "JPEG", quality=100, icc_profile=srgb)
    px = _decode(normalise_logo(buf.getvalue())).getpixel((20, 20))
    assert max(abs(a - b) for a, b in zip(px[:3], (10, 120, 200), strict=True)) <= 3
    frames = [Image.new("RGB", (30, 30), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    out = _decode(normalise_logo(buf.getvalue()))
    assert out.getpixel((15, 15))[:3] == (255, 0, 0)  # the first frame


def test_normalise_logo_refuses_what_is_not_a_safe_image(monkeypatch):
    for garbage in (b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40):
        with pytest.raises(ValueError, match="logo"):
            normalise_logo(garbage)
    monkeypatch.setattr(images_mod, "LOGO_PIXEL_LIMIT", 10_000)
    buf = io.BytesIO()
    Image.new("RGB", (200, 200)).save(buf, "PNG")
    with pytest.raises(ValueError, match="too large"):
        normalise_logo(buf.getvalue())


@pytest.mark.parametrize(("source", "target"), [
    ((992, 992), (1080, 1080)), ((1328, 744), (1920, 1080)), ((744, 1328), (1080, 1920)),
    ((2048, 688), (970, 250)), ((512, 1536), (160, 600)), ((2048, 256), (320, 50)),
])
def test_cover_fit_fills_every_format_from_every_painted_size(source, target):
    # A crop box computed in floating point can start a hair below zero (992 → 1080).
    fitted = images_mod.cover_fit(Image.new("RGB", source, (120, 80, 40)), *target)
    assert fitted.size == target
    assert fitted.getpixel((0, 0)) == (120, 80, 40)


@settings(max_examples=60, deadline=None)
@given(sw=st.integers(16, 1600), sh=st.integers(16, 1600),
       tw=st.integers(16, 1200), th=st.integers(16, 1200))
def test_cover_fit_never_fails_on_any_sizes(sw, sh, tw, th):
    assert images_mod.cover_fit(Image.new("RGB", (sw, sh)), tw, th).size == (tw, th)
