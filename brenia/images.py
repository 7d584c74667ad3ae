"""Images people hand Brenia, checked and made plain before anything else reads them.

Uploads, data URIs in model inputs and brand logos all come from strangers. So every
one is decoded here once, under limits, before a model, a page or the composition
engine sees it: a format allow-list (PNG, JPEG, WebP, GIF), a byte cap and a pixel cap
checked on the header before any pixel is decoded, and Pillow's decompression-bomb
warning turned into an error. :func:`normalise_image` then applies the EXIF
orientation, converts the colours to sRGB and re-encodes without metadata (EXIF with
its GPS position, XMP, comments), so what a model is sent is upright, plain and the
colours the person saw.

Pillow only, no Django: the composition engine (``templates_app.compose``) shares the
colour handling, and it may not import Django.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import struct
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageCms, ImageOps

# Pillow's format name → the MIME type it travels as. MPO (a phone's JPEG with a
# second, depth or preview, picture appended) is read as the JPEG it starts with.
ALLOWED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp",
                   "GIF": "image/gif"}
_READ_AS = {**ALLOWED_FORMATS, "MPO": "image/jpeg"}
MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
# High enough that a photograph re-encoded once (EXIF turned, profile converted)
# shows no loss a person would see.
JPEG_QUALITY = 92
# What a malformed file makes Pillow raise, depending on the format and the damage.
UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError)
# Images already checked and found plain, by SHA-256: a template's product photo is
# checked for the run and again for each step that sends it, and need be decoded once.
_PLAIN_SEEN = 512


class ImageRefused(ValueError):
    """Bytes Brenia will not take as an image. ``str()`` is a sentence for a person
    (a form shows it), ``problem`` the phrase an API error names the field with, and
    ``reason`` which check failed (``not_an_image``, ``too_many_pixels``,
    ``too_large``, ``empty``, ``bad_base64``)."""

    def __init__(self, sentence: str, *, problem: str, reason: str) -> None:
        super().__init__(sentence)
        self.problem = problem
        self.reason = reason


def _not_an_image() -> ImageRefused:
    return ImageRefused("Upload a PNG, JPEG, WebP or GIF image; this file is not one or is "
                        "damaged.", problem="is not a PNG, JPEG, WebP or GIF image, or is "
                        "damaged", reason="not_an_image")


def _too_many_pixels(max_pixels: int) -> ImageRefused:
    mp = f"{max_pixels / 1_000_000:g}"
    return ImageRefused(f"The image has more than {mp} megapixels; upload a smaller one.",
                        problem=f"is an image of more than {mp} megapixels",
                        reason="too_many_pixels")


def _too_large(max_bytes: int) -> ImageRefused:
    mb = f"{max_bytes / 1024 / 1024:g}"
    return ImageRefused(f"The image is larger than {mb} MB; upload a smaller one.",
                        problem=f"is an image larger than {mb} MB", reason="too_large")


# --- colour -----------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=1)
def srgb_icc_bytes() -> bytes:
    return srgb_profile().tobytes()


def to_srgb(img: Image.Image, *, keep_alpha: bool = False) -> Image.Image:
    """RGB (or RGBA with keep_alpha) in sRGB, colour-managed when the image carries an ICC
    profile; palette, greyscale, 16-bit, CMYK and LA/PA images all come out as RGB(A)."""
    icc = img.info.get("icc_profile")
    alpha: Image.Image | None = None
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in ("PA", "RGBa"):
        img = img.convert("RGBA")
    elif img.mode == "La":
        img = img.convert("LA")
    if img.mode == "LA":
        alpha, base = img.getchannel("A"), img.getchannel("L")
    elif img.mode == "RGBA":
        alpha, base = img.getchannel("A"), img.convert("RGB")
    elif img.mode.startswith("I;16"):
        base = img.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    elif img.mode in ("I", "F", "1"):
        base = img.convert("L")
    else:
        base = img  # RGB, L, CMYK, YCbCr, LAB
    converted: Image.Image | None = None
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(
                base, src, srgb_profile(), outputMode="RGB",
                renderingIntent=ImageCms.Intent.PERCEPTUAL,
            )
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            converted = None  # a broken or mismatched profile: fall back to the plain values
    if converted is None:
        converted = base if base.mode == "RGB" else base.convert("RGB")
    if keep_alpha:
        converted = converted.convert("RGBA")
        if alpha is not None:
            converted.putalpha(alpha)
    elif alpha is not None and alpha.point(lambda a: 255 - a).getbbox() is not None:
        # a see-through background: flattened over white, as a viewer would show it
        white = Image.new("RGB", converted.size, (255, 255, 255))
        converted = Image.composite(converted, white, alpha)
    return converted


# --- reading ----------------------------------------------------------------------------------

def open_image(data: bytes, *, max_bytes: int = MAX_IMAGE_BYTES,
               max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """The image in ``data``, decoded (its first frame), once it has passed every check.

    The size is read from the header and checked before a pixel is decoded, and
    Pillow's own bomb warning is an error, so a small file claiming a huge picture
    costs nothing. Raises :class:`ImageRefused`.
    """
    if not data:
        raise ImageRefused("The file is empty.", problem="is an empty image", reason="empty")
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
            if img.width * img.height > max_pixels:
                raise _too_many_pixels(max_pixels)
            if getattr(img, "is_animated", False):
                img.seek(0)  # an animation: its first frame stands for it
            img.load()
    except ImageRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels(max_pixels) from None
    except UNREADABLE:
        raise _not_an_image() from None
    if img.format not in _READ_AS:
        raise _not_an_image()
    return img


def read_data_uri(uri: str) -> tuple[str, bytes]:
    """The media type and bytes of a ``data:…;base64,`` URI (ImageRefused if not base64)."""
    header, _, payload = uri.partition(",")
    media = header[5:].split(";", 1)[0].strip().lower()
    not_base64 = ImageRefused("The image is not valid base64.", problem="is not valid base64",
                              reason="bad_base64")
    if not header.lower().startswith("data:") or ";base64" not in header.lower():
        raise not_base64
    try:
        return media, base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise not_base64 from None


# --- normalising ------------------------------------------------------------------------------

@dataclass(frozen=True)
class NormalisedImage:
    data: bytes
    mime: str
    width: int
    height: int

    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


_plain_lock = threading.Lock()
_plain: OrderedDict[str, tuple[str, int, int]] = OrderedDict()


def _remember(key: str, image: NormalisedImage) -> None:
    with _plain_lock:
        _plain[key] = (image.mime, image.width, image.height)
        _plain.move_to_end(key)
        while len(_plain) > _PLAIN_SEEN:
            _plain.popitem(last=False)


def _recalled(key: str, data: bytes) -> NormalisedImage | None:
    with _plain_lock:
        known = _plain.get(key)
    return NormalisedImage(data, *known) if known else None


def _is_plain(img: Image.Image) -> bool:
    """Whether ``img`` is already what :func:`normalise_image` makes: a single 8-bit
    RGB(A) PNG or RGB JPEG with no metadata but, at most, the sRGB profile. Such
    bytes are kept as they are, so a picture normalised once is never re-encoded."""
    if getattr(img, "n_frames", 1) != 1:
        return False
    icc = img.info.get("icc_profile")
    if icc and icc != srgb_icc_bytes():
        return False
    if img.format == "PNG":
        return img.mode in ("RGB", "RGBA") and set(img.info) <= {"icc_profile"}
    if img.format == "JPEG":
        markers = getattr(img, "applist", [])
        return img.mode == "RGB" and "exif" not in img.info and "comment" not in img.info \
            and all((marker, data[:5]) == ("APP0", b"JFIF\x00")
                    or (marker, data[:12]) == ("APP2", b"ICC_PROFILE\x00")
                    for marker, data in markers)
    return False


def _has_alpha(img: Image.Image) -> bool:
    """Whether any pixel is see-through (an alpha channel all opaque does not count)."""
    if img.mode not in ("RGBA", "LA", "PA", "RGBa", "La", "P") \
            or (img.mode == "P" and "transparency" not in img.info):
        return False
    alpha = img.convert("RGBA").getchannel("A")
    return alpha.getextrema() != (255, 255)


def normalise_image(data: bytes, *, max_bytes: int = MAX_IMAGE_BYTES,
                    max_pixels: int = MAX_IMAGE_PIXELS) -> NormalisedImage:
    """``data`` checked (see :func:`open_image`) and made plain: upright, sRGB, no metadata.

    A picture with see-through pixels, or from a lossless format (PNG, GIF), becomes a
    PNG, so nothing is lost that was not lost before; any other a JPEG at
    ``JPEG_QUALITY``. Both carry the sRGB profile. An image that is plain already is
    returned as given. Raises :class:`ImageRefused`.
    """
    limits = f"{max_bytes}:{max_pixels}"  # found plain under these limits, not others
    known = _recalled(f"{hashlib.sha256(data).hexdigest()}:{limits}", data)
    if known is not None:
        return known
    img = open_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    if _is_plain(img):
        result = NormalisedImage(data, ALLOWED_FORMATS[img.format or "PNG"], *img.size)
    else:
        lossless = img.format in ("PNG", "GIF")
        try:
            upright: Image.Image = ImageOps.exif_transpose(img) or img
        except UNREADABLE:  # EXIF too damaged to read an orientation from: as stored
            upright = img
        if upright.mode in ("L", "RGB") and "transparency" in upright.info:
            upright = upright.convert("RGBA")  # a colour key (tRNS): one see-through colour
        alpha = _has_alpha(upright)
        pixels = to_srgb(upright, keep_alpha=alpha)
        pixels.info = {}  # Pillow writes a comment, EXIF or profile it finds here
        out = io.BytesIO()
        if alpha or lossless:
            pixels.save(out, "PNG", icc_profile=srgb_icc_bytes())
            mime = "image/png"
        else:
            pixels.save(out, "JPEG", quality=JPEG_QUALITY, icc_profile=srgb_icc_bytes())
            mime = "image/jpeg"
        result = NormalisedImage(out.getvalue(), mime, *pixels.size)
    if len(result.data) <= max_bytes:  # else it would not pass these limits as given
        _remember(f"{hashlib.sha256(result.data).hexdigest()}:{limits}", result)
    return result
