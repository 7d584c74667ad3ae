"""The values the engine takes and gives back."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from .contrast import parse_hex
from .fonts import FONTS

Rect = tuple[int, int, int, int]

BOX_LABELS = {
    "headline": "headline",
    "subline": "subline",
    "cta": "call to action",
    "discount": "discount",
    "product_name": "product name",
    "disclaimer": "disclaimer",
}


@dataclass(frozen=True)
class Brand:
    # [0] primary (CTA button, accents), [1] secondary (discount badge), others optional.
    palette: tuple[str, ...] = ("#1d4ed8", "#f59e0b", "#111827", "#ffffff")
    heading_font: str = "inter"
    body_font: str = "inter"
    logo: Image.Image | None = None  # RGBA, sRGB
    # Brand-approved colours for text set on the picture. Empty: the engine chooses among
    # white, near-black and the palette. A brand that only allows, say, white text gets a
    # scrim or a plate wherever the picture is too light for it.
    text_colours: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.palette:
            raise ValueError("A brand needs at least one palette colour.")
        for colour in (*self.palette, *self.text_colours):
            parse_hex(colour)
        for key in (self.heading_font, self.body_font):
            if key not in FONTS:
                raise ValueError(f"Unknown font {key!r}; choose one of {', '.join(FONTS)}.")

    @property
    def primary(self) -> str:
        return self.palette[0]

    @property
    def secondary(self) -> str:
        return self.palette[1] if len(self.palette) > 1 else self.palette[0]


@dataclass(frozen=True)
class BoxFit:
    box: str
    format: str
    fits: bool
    size: int | None
    lines: list[str]
    # The budget at the smallest allowed size, to re-ask a copy model with.
    chars_per_line: int
    max_lines: int
    min_size: int = 0
    max_size: int = 0

    @property
    def max_chars(self) -> int:
        return self.chars_per_line * self.max_lines


class CopyDoesNotFit(Exception):
    def __init__(self, box: str, fmt_label: str, fmt_slug: str, budget: tuple[int, int]):
        self.box = box
        self.format = fmt_slug
        self.budget = budget
        chars, lines = budget
        label = BOX_LABELS.get(box, box.replace("_", " "))
        if lines <= 0 or chars <= 0:
            detail = "there is no room for it at a legible size."
        else:
            detail = (
                f"at most {lines} line{'s' if lines != 1 else ''} of {chars} characters."
            )
        self._args = (box, fmt_label, fmt_slug, budget)
        super().__init__(
            f"The {label} does not fit its box in {fmt_label} at the smallest size: {detail}"
        )

    def __reduce__(self):  # picklable (for job queues), despite the custom constructor
        return (type(self), self._args)


@dataclass(frozen=True)
class RenderedBox:
    name: str
    rect: Rect  # the box (for a button or badge: the shape)
    text_bbox: Rect  # the ink bounds of the drawn text
    size: int
    lines: list[str]
    contrast: float  # WCAG ratio, text colour vs the pixels behind the text
    threshold: float  # 4.5, or 3.0 for large text
    treatment: str  # "none" | "scrim" | "plate" | "button"
    colour: str = "#000000"  # the text colour, hex
    font: str = ""  # "inter/bold"
    backing: Rect | None = None  # the scrim, plate, button or badge shape behind the text


@dataclass(frozen=True)
class Composition:
    data: bytes
    width: int
    height: int
    format: str  # "PNG" | "JPEG" | "WEBP"
    safe_area: Rect
    boxes: list[RenderedBox]
    logo_rect: Rect | None
    product_rect: Rect | None
    omitted: tuple[str, ...] = field(default_factory=tuple)  # copy given but with no box here

    def box(self, name: str) -> RenderedBox:
        for b in self.boxes:
            if b.name == name:
                return b
        raise KeyError(name)
