"""Tolerant reading of request JSON, as a proto-JSON parser reads it (spec §3).

Field names are accepted in camelCase and snake_case, bytes in standard or URL-safe
base64 (padded or not), numbers as JSON numbers or numeric strings, enums in any case.
Unknown fields are ignored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
import re
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, UnidentifiedImageError

from .catalog import ModelSpec
from .errors import TROUBLESHOOTING, bad_request, invalid_value
from .faults import strip_tokens

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])([A-Z])")
VALID_ROLES = ("user", "model", "function", "tool")
# Accepted without decoding: Pillow here cannot read HEIC/HEIF.
OPAQUE_IMAGE_TYPES = ("image/heic", "image/heif")
PART_DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse",
                    "executableCode", "codeExecutionResult")
# Gemini 3 accepts these documented placeholders in place of a real signature.
DUMMY_SIGNATURES = ("skip_thought_signature_validator", "context_engineering_is_the_way_to_go")


def snake(name: str) -> str:
    return _CAMEL_BOUNDARY.sub(r"_\1", name).lower()


def get(obj: Any, camel: str, default: Any = None) -> Any:
    """``obj[camel]``, else ``obj[snake_case(camel)]``, else ``default``."""
    if not isinstance(obj, dict):
        return default
    if camel in obj:
        return obj[camel]
    return obj.get(snake(camel), default)


def decode_b64(value: Any, *, field_path: str) -> bytes:
    """Decode standard or URL-safe base64, with or without padding."""
    if not isinstance(value, str):
        raise invalid_value(field_path, "TYPE_BYTES", value)
    text = "".join(value.split()).replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"Invalid value at '{field_path}' (TYPE_BYTES), Base64 decoding "
                          "failed for \"" + value[:40] + "\"", field=field_path) from None


def enum_value(value: Any, allowed: tuple[str, ...], *, field_path: str, type_name: str) -> str:
    """Upper-case an enum string (any case accepted); 400 if it is not in ``allowed``."""
    if isinstance(value, str) and value.strip().upper() in allowed:
        return value.strip().upper()
    raise invalid_value(field_path, type_name, value)


def number(value: Any, *, field_path: str, integer: bool = False) -> float | int | None:
    """A JSON number or numeric string; integral floats are accepted for integers."""
    if value is None:
        return None
    type_name = "TYPE_INT32" if integer else "TYPE_FLOAT"
    if isinstance(value, bool):
        raise invalid_value(field_path, type_name, value)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise invalid_value(field_path, type_name, value) from None
    if not isinstance(value, int | float) or math.isnan(value):
        raise invalid_value(field_path, type_name, value)
    if integer:
        if float(value) != int(value):
            raise invalid_value(field_path, type_name, value)
        return int(value)
    return float(value)


def text_tokens(text: str) -> int:
    """About four characters a token, as Google's tokenizer averages for English."""
    return math.ceil(len(text) / 4) if text else 0


def image_input_tokens(model: ModelSpec, size: tuple[int, int] | None) -> int:
    """Prompt tokens for one input image.

    Gemini 2.x: 258 per image up to 384 px, else 258 per 768-px-ish tile. Gemini 3:
    1120 (the default "high" media resolution). UNCONFIRMED for the image models.
    """
    if model.gemini3:
        return 1120
    if size is None:
        return 258
    width, height = size
    if width <= 384 and height <= 384:
        return 258
    unit = max(256, min(768, int(min(width, height) / 1.5)))
    return 258 * math.ceil(width / unit) * math.ceil(height / unit)


@dataclass
class InputImage:
    data: bytes
    mime_type: str
    size: tuple[int, int] | None
    from_model: bool

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.data).hexdigest()[:16]

    def open(self) -> Image.Image | None:
        if self.size is None:
            return None
        return Image.open(io.BytesIO(self.data))


@dataclass
class Conversation:
    """The contents of a request, reduced to what the emulator answers from."""

    prompt: str = ""                      # last user turn's text, fault tokens removed
    images: list[InputImage] = field(default_factory=list)          # last user turn
    history_images: list[InputImage] = field(default_factory=list)  # earlier turns
    fault_words: list[str] = field(default_factory=list)
    text_tokens: int = 0
    image_tokens: int = 0
    other_tokens: int = 0
    canonical: list[Any] = field(default_factory=list)  # for the determinism digest


def read_contents(raw: Any, model: ModelSpec, *, image_model: bool,
                  field_name: str = "contents") -> Conversation:
    if raw is None or raw == []:
        raise bad_request(f"* GenerateContentRequest.{field_name}: contents is not specified\n",
                          field=field_name)
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise invalid_value(field_name, "TYPE_MESSAGE", raw)
    conv = Conversation()
    last_user = max((i for i, c in enumerate(raw)
                     if (get(c, "role") or "user") == "user"), default=len(raw) - 1)
    for ci, content in enumerate(raw):
        if not isinstance(content, dict):
            raise invalid_value(f"{field_name}[{ci}]", "TYPE_MESSAGE", content)
        role = get(content, "role") or "user"
        if role not in VALID_ROLES:
            raise bad_request("Please use a valid role: user, model.")
        parts = get(content, "parts") or []
        if not isinstance(parts, list) or not parts:
            raise bad_request(f"* GenerateContentRequest.{field_name}[{ci}].parts: "
                              "contents.parts must not be empty.\n")
        canonical_parts: list[Any] = []
        for pi, part in enumerate(parts):
            where = f"{field_name}[{ci}].parts[{pi}]"
            canonical_parts.append(_read_part(part, where, role, ci == last_user, conv,
                                              model, image_model=image_model))
        conv.canonical.append([role, canonical_parts])
    return conv


def _read_part(part: Any, where: str, role: str, is_last_user: bool, conv: Conversation,
               model: ModelSpec, *, image_model: bool) -> Any:
    if not isinstance(part, dict) or not any(get(part, name) is not None
                                             for name in PART_DATA_FIELDS):
        raise bad_request(f"* GenerateContentRequest.{where}.data: required oneof field "
                          "'data' must have one initialized field\n", field=f"{where}.data")
    thought = bool(get(part, "thought", False))
    text = get(part, "text")
    if text is not None:
        if not isinstance(text, str):
            raise invalid_value(f"{where}.text", "TYPE_STRING", text)
        if role == "user":
            text, words = strip_tokens(text)
            conv.fault_words.extend(words if is_last_user else [])
        if is_last_user and not thought:
            conv.prompt = f"{conv.prompt} {text}".strip()
        conv.text_tokens += text_tokens(text)
        return ["text", text, thought]
    inline = get(part, "inlineData")
    if inline is not None:
        image = _read_inline(inline, f"{where}.inline_data", role, model,
                             image_model=image_model)
        _check_signature(part, role, where, model, image_model=image_model, thought=thought)
        if image is None:
            conv.other_tokens += 258
            return ["blob", "non-image"]
        conv.image_tokens += image_input_tokens(model, image.size)
        if thought:
            return ["thought-image", image.sha]
        (conv.images if is_last_user else conv.history_images).append(image)
        return ["image", image.sha]
    file_data = get(part, "fileData")
    if file_data is not None:
        uri = get(file_data, "fileUri") or ""
        mime = (get(file_data, "mimeType") or "").lower()
        if not uri:
            raise bad_request(f"* GenerateContentRequest.{where}.file_data.file_uri: "
                              "file_uri must not be empty\n")
        conv.image_tokens += 258 if mime.startswith("image/") else 0
        conv.other_tokens += 0 if mime.startswith("image/") else 258
        return ["file", uri]
    conv.other_tokens += 8
    return ["other", sorted(part)]


def _read_inline(inline: Any, where: str, role: str, model: ModelSpec, *,
                 image_model: bool) -> InputImage | None:
    data = decode_b64(get(inline, "data", ""), field_path=f"{where}.data")
    mime = str(get(inline, "mimeType") or "").lower().strip()
    if not mime:
        raise bad_request(f"* GenerateContentRequest.{where}.mime_type: "
                          "mime_type must not be empty\n")
    if not mime.startswith("image/"):
        video_ok = mime.startswith("video/") and model.id.startswith("gemini-3.1-flash")
        if image_model and not video_ok:
            raise bad_request(f"Unsupported MIME type: {mime}")
        return None
    if mime in OPAQUE_IMAGE_TYPES:
        return InputImage(data=data, mime_type=mime, size=None, from_model=role == "model")
    try:
        with Image.open(io.BytesIO(data)) as img:
            size = img.size
    except (UnidentifiedImageError, OSError, ValueError):
        raise bad_request("Unable to process input image. Please retry or report in "
                          f"{TROUBLESHOOTING}") from None
    return InputImage(data=data, mime_type=mime, size=size, from_model=role == "model")


def _check_signature(part: dict[str, Any], role: str, where: str, model: ModelSpec, *,
                     image_model: bool, thought: bool) -> None:
    """Gemini 3 image models require the thoughtSignature they issued on model images.

    UNCONFIRMED wording; the rule follows Google's thought-signature guide.
    """
    if role != "model" or thought or not (model.gemini3 and image_model):
        return
    signature = get(part, "thoughtSignature")
    if isinstance(signature, str) and signature:
        return
    match = re.search(r"\[(\d+)\]\.parts\[(\d+)\]", where)
    content_pos, part_pos = (int(match.group(1)) + 1, int(match.group(2)) + 1) if match else (0, 0)
    raise bad_request(f"Image part is missing a thought_signature in content position "
                      f"{content_pos}, part position {part_pos}. Please refer to "
                      "https://ai.google.dev/gemini-api/docs/thought-signatures for more "
                      "details.")


def system_text(raw: Any) -> str:
    """The text of a systemInstruction (a Content, or leniently a plain string)."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, dict):
        raise invalid_value("system_instruction", "TYPE_MESSAGE", raw)
    parts = get(raw, "parts") or []
    if not isinstance(parts, list):
        raise invalid_value("system_instruction.parts", "TYPE_MESSAGE", parts)
    return "\n".join(str(get(p, "text")) for p in parts if get(p, "text") is not None)


def ensure_object(value: Any, field_path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_value(field_path, "TYPE_MESSAGE", value)
    return value

