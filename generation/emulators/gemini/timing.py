"""Added latency per mode: what a user watching the app would see.

"instant": none. "fast": tens of milliseconds. "realistic": text in about half a
second to a second, images in 1-3 s growing with the size tier (3 Pro is slowest).
Latency is random within its band; it never changes what is answered.
"""

from __future__ import annotations

import random

from .request import GenerateRequest

_IMAGE_BANDS = {"512": (0.9, 1.4), "1K": (1.2, 2.0), "2K": (1.7, 2.5), "4K": (2.3, 2.9)}


def response_delay(mode: str, req: GenerateRequest | None, *, rng: random.Random) -> float:
    """Seconds to wait before the first byte of a generate answer."""
    if mode == "instant":
        return 0.0
    image = req is not None and req.wants_image and req.model.kind == "image"
    if mode == "fast":
        return rng.uniform(0.03, 0.08) if image else rng.uniform(0.01, 0.03)
    if not image or req is None:
        return rng.uniform(0.4, 1.0)
    low, high = _IMAGE_BANDS.get(req.image_size or "1K", _IMAGE_BANDS["1K"])
    extra = 0.3 if req.model.thinking == "always" else 0.0
    return min(3.0, rng.uniform(low, high) + extra)


def chunk_gap(mode: str, *, rng: random.Random) -> float:
    """Seconds between streamed chunks."""
    if mode == "instant":
        return 0.0
    if mode == "fast":
        return rng.uniform(0.003, 0.01)
    return rng.uniform(0.05, 0.15)


def metadata_delay(mode: str, *, rng: random.Random) -> float:
    """Seconds for models.get/list and countTokens."""
    if mode == "instant":
        return 0.0
    return rng.uniform(0.002, 0.01) if mode == "fast" else rng.uniform(0.05, 0.2)
