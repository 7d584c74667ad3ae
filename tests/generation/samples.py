"""Valid inputs for every seeded model, built from real small images."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image, ImageDraw


def png_data_uri(width: int = 96, height: int = 96, colour: str = "#e2572c") -> str:
    image = Image.new("RGB", (width, height), "#f4f1ea")
    ImageDraw.Draw(image).ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4),
                                  fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def valid_inputs(slug: str) -> dict[str, Any]:
    photo = png_data_uri()
    return {
        "flux-schnell": {"prompt": "Lemonade billboard"},
        "flux-dev": {"prompt": "Lemonade billboard", "guidance_scale": 4.0},
        "flux-pro": {"prompt": "Lemonade billboard", "safety_tolerance": "3"},
        "flux-lora": {"prompt": "Our mascot waving", "lora_url": "https://example.com/mascot.safetensors",
                      "lora_scale": 0.8},
        "image-to-image": {"prompt": "Make it autumn", "image_url": photo, "strength": 0.6},
        "face-swap": {"base_image_url": photo, "swap_image_url": png_data_uri(colour="#2c7be2")},
        "background-removal": {"image_url": photo},
        "nano-banana": {"prompt": "A product shot of a lemon", "aspect_ratio": "16:9"},
        "nano-banana-2": {"prompt": "A product shot of a lemon", "image_size": "512",
                          "reference_image_urls": [photo]},
        "nano-banana-pro": {"prompt": "A poster that says SALE", "aspect_ratio": "3:4"},
        "gemini-copy": {"prompt": "Three headlines for a summer lemonade sale",
                        "response_schema": {"type": "object", "required": ["headlines"],
                                            "properties": {"headlines": {
                                                "type": "array", "minItems": 3,
                                                "items": {"type": "string"}}}}},
    }[slug]
