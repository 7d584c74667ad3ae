"""The model table: every model the emulator serves, with sizes, token counts and prices.

Numbers follow shared/protocols/gemini.md §1. Entries marked UNCONFIRMED there are
marked here too; the emulator only reports prices (it bills nothing), so a wrong
price here is harmless to the wire protocol but worth checking before billing code
copies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BASE_RATIOS: tuple[str, ...] = (
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
)
# The 3.1 models add four extreme ratios (Vertex card).
EXTRA_RATIOS_31: tuple[str, ...] = ("1:4", "4:1", "1:8", "8:1")

# Pixel sizes at the 1K tier. 2.5 Flash has its own table; 3 Pro and 3.1 Flash share
# the 3 Pro table (3.1 is UNCONFIRMED). 2K is x2 and 4K is x4; "512" is half of 1K.
PIXELS_FLASH_25: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024), "2:3": (832, 1248), "3:2": (1248, 832), "3:4": (864, 1184),
    "4:3": (1184, 864), "4:5": (896, 1152), "5:4": (1152, 896), "9:16": (768, 1344),
    "16:9": (1344, 768), "21:9": (1536, 672),
}
PIXELS_PRO_3: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024), "2:3": (848, 1264), "3:2": (1264, 848), "3:4": (896, 1200),
    "4:3": (1200, 896), "4:5": (928, 1152), "5:4": (1152, 928), "9:16": (768, 1376),
    "16:9": (1376, 768), "21:9": (1584, 672),
    # UNCONFIRMED: the extreme 3.1 ratios, chosen near 1 MP on a 16-pixel grid.
    "1:4": (512, 2048), "4:1": (2048, 512), "1:8": (384, 3072), "8:1": (3072, 384),
}
SIZE_SCALE: dict[str, float] = {"512": 0.5, "1K": 1.0, "2K": 2.0, "4K": 4.0}

Thinking = Literal["never", "optional", "default", "always"]


@dataclass(frozen=True)
class ModelSpec:
    id: str
    display_name: str
    description: str
    kind: Literal["image", "text"]
    version: str = "001"
    input_token_limit: int = 1_048_576
    output_token_limit: int = 65_536
    # Image models: accepted imageSize values (empty = the field is rejected) and the
    # image tokens billed per output image at each tier.
    image_sizes: tuple[str, ...] = ()
    image_tokens: dict[str, int] = field(default_factory=dict)
    aspect_ratios: tuple[str, ...] = BASE_RATIOS
    pixels: dict[str, tuple[int, int]] = field(default_factory=dict)
    max_reference_images: int = 14
    # "never": no thinking; "optional": off unless a budget asks; "default": on unless
    # budget 0; "always": cannot be turned off.
    thinking: Thinking = "never"
    supports_search: bool = False
    supports_image_search: bool = False
    accepts_system_instruction: bool = True
    multiple_candidates: bool = True
    # USD per 1M tokens (standard tier).
    price_input_per_m: float = 0.0
    price_output_text_per_m: float = 0.0
    price_output_image_per_m: float = 0.0
    gemini3: bool = False
    unconfirmed: bool = False

    @property
    def name(self) -> str:
        return f"models/{self.id}"

    @property
    def default_size(self) -> str:
        return "1K"

    def image_price(self, size: str) -> float:
        """USD for one output image at ``size`` (standard tier)."""
        return round(self.image_tokens[size] * self.price_output_image_per_m / 1e6, 4)

    def pixel_size(self, ratio: str, size: str) -> tuple[int, int]:
        width, height = self.pixels[ratio]
        scale = SIZE_SCALE[size]
        return int(width * scale), int(height * scale)

    def resource(self) -> dict[str, object]:
        """The Model resource as ``GET models/{id}`` returns it."""
        methods = ["generateContent", "countTokens", "batchGenerateContent"]
        if self.kind == "text":
            methods.insert(2, "createCachedContent")
        body: dict[str, object] = {
            "name": self.name,
            "version": self.version,
            "displayName": self.display_name,
            "description": self.description,
            "inputTokenLimit": self.input_token_limit,
            "outputTokenLimit": self.output_token_limit,
            "supportedGenerationMethods": methods,
            "temperature": 1,
            "topP": 0.95,
            "topK": 64,
            "maxTemperature": 2,
        }
        if self.thinking != "never":
            body["thinking"] = True
        return body


def _flash_25_image(model_id: str) -> ModelSpec:
    return ModelSpec(
        id=model_id, display_name="Nano Banana", kind="image",
        description="Gemini 2.5 Flash Image: fast image generation and editing.",
        version="2.5", input_token_limit=32_768, output_token_limit=32_768,
        image_sizes=(), image_tokens={"1K": 1290}, pixels=PIXELS_FLASH_25,
        max_reference_images=3, accepts_system_instruction=False, multiple_candidates=False,
        price_input_per_m=0.30, price_output_text_per_m=2.50, price_output_image_per_m=30.0,
    )


def _pro_3_image(model_id: str) -> ModelSpec:
    return ModelSpec(
        id=model_id, display_name="Nano Banana Pro", kind="image",
        description="Gemini 3 Pro Image: studio-quality generation up to 4K, with thinking.",
        version="3.0", input_token_limit=65_536, output_token_limit=32_768,
        image_sizes=("1K", "2K", "4K"), image_tokens={"1K": 1120, "2K": 1120, "4K": 2000},
        pixels=PIXELS_PRO_3, thinking="always", supports_search=True, gemini3=True,
        multiple_candidates=False,
        price_input_per_m=2.0, price_output_text_per_m=12.0, price_output_image_per_m=120.0,
    )


def _flash_31_image(model_id: str) -> ModelSpec:
    return ModelSpec(
        id=model_id, display_name="Nano Banana 2", kind="image",
        description="Gemini 3.1 Flash Image: fast generation from 512 px to 4K.",
        version="3.1", input_token_limit=131_072, output_token_limit=32_768,
        image_sizes=("512", "1K", "2K", "4K"),
        image_tokens={"512": 747, "1K": 1120, "2K": 1680, "4K": 2520},
        aspect_ratios=BASE_RATIOS + EXTRA_RATIOS_31, pixels=PIXELS_PRO_3,
        thinking="default", supports_search=True, supports_image_search=True, gemini3=True,
        multiple_candidates=False,
        price_input_per_m=0.25, price_output_text_per_m=1.50, price_output_image_per_m=60.0,
    )


def _text(model_id: str, display: str, *, thinking: Thinking, price_in: float,
          price_out: float, gemini3: bool = False, unconfirmed: bool = False) -> ModelSpec:
    return ModelSpec(
        id=model_id, display_name=display, kind="text",
        description=f"{display}: text and structured output.",
        version="3.0" if gemini3 else "001", thinking=thinking, supports_search=True,
        price_input_per_m=price_in, price_output_text_per_m=price_out, gemini3=gemini3,
        unconfirmed=unconfirmed,
    )


MODELS: tuple[ModelSpec, ...] = (
    _flash_25_image("gemini-2.5-flash-image"),
    _pro_3_image("gemini-3-pro-image-preview"),
    _pro_3_image("gemini-3-pro-image"),
    _flash_31_image("gemini-3.1-flash-image-preview"),
    _flash_31_image("gemini-3.1-flash-image"),
    ModelSpec(  # UNCONFIRMED throughout (spec §1)
        id="gemini-3.1-flash-lite-image", display_name="Nano Banana 2 Lite", kind="image",
        description="Gemini 3.1 Flash Lite Image: low-cost 1K generation.", version="3.1",
        input_token_limit=131_072, output_token_limit=32_768, image_sizes=("1K",),
        image_tokens={"1K": 1120}, aspect_ratios=BASE_RATIOS + EXTRA_RATIOS_31,
        pixels=PIXELS_PRO_3, gemini3=True, multiple_candidates=False,
        price_input_per_m=0.10, price_output_text_per_m=0.40, price_output_image_per_m=30.0,
        unconfirmed=True,
    ),
    _text("gemini-2.5-flash", "Gemini 2.5 Flash", thinking="default",
          price_in=0.30, price_out=2.50),
    _text("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", thinking="optional",
          price_in=0.10, price_out=0.40, unconfirmed=True),
    _text("gemini-3-flash-preview", "Gemini 3 Flash", thinking="always",
          price_in=0.50, price_out=3.00, gemini3=True, unconfirmed=True),
    _text("gemini-3-flash", "Gemini 3 Flash", thinking="always",
          price_in=0.50, price_out=3.00, gemini3=True, unconfirmed=True),
)

# Alias -> canonical id (the SDK 3.3.0 model enum carries this one).
ALIASES: dict[str, str] = {"nano-banana-pro-preview": "gemini-3-pro-image-preview"}

_BY_ID: dict[str, ModelSpec] = {spec.id: spec for spec in MODELS}


def find_model(model_id: str) -> ModelSpec | None:
    """The spec for ``model_id`` (with or without ``models/``), or None if unknown."""
    bare = model_id.removeprefix("models/")
    return _BY_ID.get(ALIASES.get(bare, bare))
