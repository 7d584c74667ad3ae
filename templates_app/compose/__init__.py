"""Brenia's composition engine: typography and final composition of ad images with Pillow.

AI models make the background and the copy; this package sets every letter (diffusion
models garble lettering), checks it reads against the real pixels, and encodes the result.
Pure Python and Pillow: no Django, no network.
"""

from .fonts import FONTS
from .formats import COPY_FIELDS, FORMATS, KIND_FORMATS, KINDS, REQUIRED_FIELDS, Format
from .images import normalise_logo
from .layout import negative_space_hint
from .model import BoxFit, Brand, Composition, CopyDoesNotFit, RenderedBox
from .plan import measure_copy
from .render import PROVENANCE_KEY, compose

__all__ = [
    "COPY_FIELDS",
    "FONTS",
    "FORMATS",
    "KINDS",
    "KIND_FORMATS",
    "PROVENANCE_KEY",
    "REQUIRED_FIELDS",
    "BoxFit",
    "Brand",
    "Composition",
    "CopyDoesNotFit",
    "Format",
    "RenderedBox",
    "compose",
    "measure_copy",
    "negative_space_hint",
    "normalise_logo",
]
