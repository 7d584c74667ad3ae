"""What a request may ask of a model beyond what the model's own schema says.

Input schemas come from admins and from fal's OpenAPI documents, and not every one
says how long a prompt may be or how large an image; none says what a data URI must
hold. ``check_inputs`` (``validation.py``) applies these on top of the schema:

- free text (a string with no ``format``, ``enum`` or ``const``) loses its control
  characters and is at most its ``maxLength``, else ``DEFAULT_TEXT_MAX`` characters;
- an image size is at most ``MAX_SIDE`` pixels a side and ``MAX_PIXELS`` in all, and
  ``num_images`` at most ``MAX_NUM_IMAGES``, whatever a schema allows;
- an image given as a data URI is decoded, checked and normalised
  (``brenia.images.normalise_image``): what is stored and sent is the plain image.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from typing import Any, TypeGuard

from brenia.errors import FieldProblem
from brenia.images import ImageRefused, normalise_image, read_data_uri
from brenia.inputs import clean_text
from generation.providers.reference_cache import normalised

DEFAULT_TEXT_MAX = 10_000
# 14142² is 200 MP, so a side reaches it only on a narrow banner; MAX_PIXELS binds first.
MAX_SIDE = 14_142
MAX_PIXELS = 40_000_000
MAX_NUM_IMAGES = 8
URL_FORMATS = ("uri", "image-url")


def _types(prop: dict[str, Any]) -> list[Any]:
    kind = prop.get("type")
    return kind if isinstance(kind, list) else [kind]


def is_free_text(prop: Any) -> bool:
    return isinstance(prop, dict) and "string" in _types(prop) \
        and not any(key in prop for key in ("format", "enum", "const"))


def _free_text_props(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(name, property, whether it is an array of free text) for the free text fields."""
    properties = schema.get("properties")
    for name, prop in (properties.items() if isinstance(properties, dict) else ()):
        if is_free_text(prop):
            yield name, prop, False
        elif isinstance(prop, dict) and "array" in _types(prop) \
                and is_free_text(prop.get("items")):
            yield name, prop["items"], True


def with_text_limits(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with ``DEFAULT_TEXT_MAX`` on each free text field that has no maxLength
    (a copy: the registry row is not changed). The API document shows it too."""
    limited = copy.deepcopy(schema)
    for _name, prop, _listed in _free_text_props(limited):
        prop.setdefault("maxLength", DEFAULT_TEXT_MAX)
    return limited


def clean_free_text(schema: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """``inputs`` with control characters taken out of every free text value."""
    cleaned = dict(inputs)
    for name, _prop, listed in _free_text_props(schema):
        value = cleaned.get(name)
        if isinstance(value, str):
            cleaned[name] = clean_text(value)
        elif listed and isinstance(value, list):
            cleaned[name] = [clean_text(v) if isinstance(v, str) else v for v in value]
    return cleaned


# --- sizes ------------------------------------------------------------------------------------

def _whole(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _side_problems(width: Any, height: Any, fields: tuple[str, str],
                   whole: str) -> list[FieldProblem]:
    problems = [FieldProblem(field, f"must be <= {MAX_SIDE}")
                for field, side in ((fields[0], width), (fields[1], height))
                if _whole(side) and side > MAX_SIDE]
    if not problems and _whole(width) and _whole(height) and width * height > MAX_PIXELS:
        problems.append(FieldProblem(
            whole, f"must be at most {MAX_PIXELS // 1_000_000} megapixels (width × height)"))
    return problems


def size_problems(values: Any, prefix: str) -> list[FieldProblem]:
    """The global caps on the sizes ``values`` (inputs or options) ask for."""
    if not isinstance(values, dict):
        return []
    problems: list[FieldProblem] = []
    size = values.get("image_size")
    if isinstance(size, dict):
        here = f"{prefix}.image_size"
        problems += _side_problems(size.get("width"), size.get("height"),
                                   (f"{here}.width", f"{here}.height"), here)
    problems += _side_problems(values.get("width"), values.get("height"),
                               (f"{prefix}.width", f"{prefix}.height"), f"{prefix}.width")
    count = values.get("num_images")
    if _whole(count) and count > MAX_NUM_IMAGES:
        problems.append(FieldProblem(f"{prefix}.num_images", f"must be <= {MAX_NUM_IMAGES}"))
    return problems


# --- images given as data URIs ----------------------------------------------------------------

def _url_slots(schema: dict[str, Any],
               inputs: dict[str, Any]) -> Iterator[tuple[str, str, int | None, Any]]:
    """(name, format, index in its array or None, value) of each URL-format value."""
    properties = schema.get("properties")
    for name, prop in (properties.items() if isinstance(properties, dict) else ()):
        if not isinstance(prop, dict) or name not in inputs:
            continue
        value = inputs[name]
        if prop.get("format") in URL_FORMATS:
            yield name, prop["format"], None, value
        items = prop.get("items")
        if isinstance(items, dict) and items.get("format") in URL_FORMATS \
                and isinstance(value, list):
            for index, item in enumerate(value):
                yield name, items["format"], index, item


def _max_length(schema: dict[str, Any], name: str, listed: bool) -> int | None:
    prop = (schema.get("properties") or {}).get(name) or {}
    if listed:
        prop = prop.get("items") or {}
    length = prop.get("maxLength")
    return length if _whole(length) else None


def _normalise(raw: bytes) -> tuple[bytes, str]:
    image = normalise_image(raw)
    return image.data, image.mime


def normalise_data_uris(schema: dict[str, Any], inputs: dict[str, Any], prefix: str, *,
                        skip: set[str]) -> tuple[dict[str, Any], list[FieldProblem]]:
    """``inputs`` with each image data URI replaced by its normalised image, and the
    problems of those that are not images Brenia takes, each naming its field.

    Every ``image-url`` data URI is an image; in a ``uri`` field only one that says it
    is (``data:image/…``): such a field may carry other data. Fields named in ``skip``
    (already refused) are left alone.
    """
    result = {key: list(value) if isinstance(value, list) else value
              for key, value in inputs.items()}
    problems: list[FieldProblem] = []
    for name, fmt, index, value in _url_slots(schema, inputs):
        field = f"{prefix}.{name}" + ("" if index is None else f".{index}")
        if field in skip or f"{prefix}.{name}" in skip or not isinstance(value, str) \
                or value[:5].lower() != "data:":
            continue
        if fmt == "uri" and value[5:11].lower() != "image/":
            continue
        try:
            _media, raw = read_data_uri(value)
            data, mime = normalised(raw, _normalise)
            uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        except ImageRefused as exc:
            problems.append(FieldProblem(field, exc.problem))
            continue
        limit = _max_length(schema, name, index is not None)
        if limit is not None and len(uri) > limit:
            problems.append(FieldProblem(field, f"is an image too large once made plain "
                                         f"(at most {limit} characters): send a smaller one"))
            continue
        if index is None:
            result[name] = uri
        else:
            result[name][index] = uri
    return result, problems
