"""The output formats: pixel sizes, channels and the layout family each belongs to."""

from __future__ import annotations

from dataclasses import dataclass

OUT_OF_HOME = "Out of home"
DIGITAL_OUT_OF_HOME = "Digital out of home"
IAB_DISPLAY = "IAB display"
SOCIAL = "Social"
SOCIAL_ECOMMERCE = "Social / e-commerce"

FAMILIES = ("strip", "wide", "landscape", "square", "portrait", "skyscraper")


def family_for(width: int, height: int) -> str:
    """The layout family of a width × height canvas, by aspect ratio r = w / h."""
    r = width / height
    if r >= 5:
        return "strip"
    if r >= 2.2:
        return "wide"
    if r >= 1.3:
        return "landscape"
    if r >= 0.8:
        return "square"
    if r >= 0.4:
        return "portrait"
    return "skyscraper"


@dataclass(frozen=True)
class Format:
    slug: str
    label: str
    width: int
    height: int
    channel: str

    @property
    def family(self) -> str:
        return family_for(self.width, self.height)

    @property
    def size_label(self) -> str:
        """"728×90 (leaderboard)": how messages name a format."""
        return f"{self.width}×{self.height} ({self.slug})"

    @property
    def is_iab(self) -> bool:
        return self.channel == IAB_DISPLAY

    @property
    def is_ooh(self) -> bool:
        return self.channel in (OUT_OF_HOME, DIGITAL_OUT_OF_HOME)

    @property
    def is_story(self) -> bool:
        """A full-screen vertical social format, whose top and bottom the app's UI covers."""
        return self.channel in (SOCIAL, SOCIAL_ECOMMERCE) and self.height / self.width >= 1.7


_ALL = (
    # billboard
    Format("48-sheet", "48-sheet poster", 6096, 2032, OUT_OF_HOME),
    Format("bulletin", "14×48 ft bulletin", 4800, 1400, OUT_OF_HOME),
    Format("digital-landscape", "Digital screen, landscape", 1920, 1080, DIGITAL_OUT_OF_HOME),
    Format("digital-portrait", "Digital screen, portrait", 1080, 1920, DIGITAL_OUT_OF_HOME),
    # discount banner
    Format("leaderboard", "Leaderboard", 728, 90, IAB_DISPLAY),
    Format("medium-rectangle", "Medium rectangle", 300, 250, IAB_DISPLAY),
    Format("wide-skyscraper", "Wide skyscraper", 160, 600, IAB_DISPLAY),
    Format("mobile-banner", "Mobile banner", 320, 50, IAB_DISPLAY),
    Format("half-page", "Half page", 300, 600, IAB_DISPLAY),
    Format("billboard-970", "Billboard (970×250)", 970, 250, IAB_DISPLAY),
    Format("social-landscape", "Social, landscape link", 1200, 628, SOCIAL),
    Format("social-square", "Social, square", 1080, 1080, SOCIAL),
    Format("social-story", "Social, story", 1080, 1920, SOCIAL),
    # product shot
    Format("square", "Square", 1080, 1080, SOCIAL_ECOMMERCE),
    Format("portrait-4x5", "Portrait 4:5", 1080, 1350, SOCIAL_ECOMMERCE),
    Format("landscape-16x9", "Landscape 16:9", 1920, 1080, SOCIAL_ECOMMERCE),
    Format("story-9x16", "Story 9:16", 1080, 1920, SOCIAL_ECOMMERCE),
)

FORMATS: dict[str, Format] = {f.slug: f for f in _ALL}

KINDS = ("billboard", "discount_banner", "product_shot")

KIND_FORMATS: dict[str, tuple[str, ...]] = {
    "billboard": ("48-sheet", "bulletin", "digital-landscape", "digital-portrait"),
    "discount_banner": (
        "leaderboard",
        "medium-rectangle",
        "wide-skyscraper",
        "mobile-banner",
        "half-page",
        "billboard-970",
        "social-landscape",
        "social-square",
        "social-story",
    ),
    "product_shot": ("square", "portrait-4x5", "landscape-16x9", "story-9x16"),
}

COPY_FIELDS: dict[str, tuple[str, ...]] = {
    "billboard": ("headline", "subline", "cta"),
    "discount_banner": ("discount", "product_name", "cta", "disclaimer"),
    "product_shot": ("headline", "cta"),
}

REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "billboard": ("headline",),
    "discount_banner": ("discount", "product_name"),
    "product_shot": (),
}
