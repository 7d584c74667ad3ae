"""The fields a schema property becomes: choices, strings and URLs, image uploads,
numbers with their bounds, lists one per line, and JSON for the rest.

Each is a plain Django field with its validators; ``SchemaForm`` (``form.py``) picks one
per property and reads the JSON back from them.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import struct
from collections.abc import Callable
from fractions import Fraction
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.validators import (
    BaseValidator,
    MaxLengthValidator,
    MinLengthValidator,
    RegexValidator,
    URLValidator,
)
from django.forms.boundfield import BoundField
from django.template.defaultfilters import filesizeformat
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString
from PIL import Image

from generation.registry.validation import IMAGE_URL_REGEX, URI_REGEX, anchored

# Longer than this (or unbounded) and a string gets a textarea, not a one-line input.
SHORT_STRING_MAX = 255
# Objects nested this deep are edited as JSON rather than flattened into fields.
MAX_DEPTH = 3
UPLOAD_SUFFIX = "__upload"
# What an upload may be (Pillow's format name → MIME type), and how big.
IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_IMAGE_PIXELS = 50_000_000
# The longest data URI prefix an upload gets ("data:image/jpeg;base64,").
_DATA_URI_PREFIX = len("data:image/jpeg;base64,")
REQUIRED = "This field is required."

_URI = re.compile(anchored(URI_REGEX))
_IMAGE_URL = re.compile(anchored(IMAGE_URL_REGEX))
# Pillow raises all of these on malformed files, depending on the format and the damage.
_UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, struct.error)



# --- values that are not JSON --------------------------------------------------------------

class _Marker:
    """A cleaned value that is not JSON itself; ``inputs()`` reads each for what it means."""

    def __init__(self, meaning: str) -> None:
        self.meaning = meaning

    def __repr__(self) -> str:
        return f"<{self.meaning}>"


MISSING = _Marker("no value: a blank optional field")
CUSTOM = _Marker('the "custom" choice: the value is the object\'s own fields')
# An enum's null option: a choice field's None would read as "left blank".
NULL = _Marker("null, chosen")


SCALARS = ("string", "integer", "number", "boolean")


def property_field(prop: dict[str, Any], kind: str, common: dict[str, Any], *,
           initial: Any) -> forms.Field:
    """The field for a value asked in one control (or a JSON box when nothing fits)."""
    if isinstance(prop.get("enum"), list):
        options = choice_options(prop["enum"])
        return choice_field(options, key_of(options, initial), **common)
    if kind == "boolean":
        return forms.BooleanField(**{**common, "required": False}, initial=initial is True)
    if kind in ("integer", "number"):
        return _number_field(prop, integer=kind == "integer", initial=initial, **common)
    if kind == "string":
        return string_field(prop, initial=initial, **common)
    items = _line_items(prop) if kind == "array" else None
    if items is not None:
        return _lines_field(prop, items, common, initial=initial)
    return json_field(prop, kind, common, initial=initial)


def collapse_nullable(prop: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``anyOf: [X, {type: null}]`` (and ``type: [X, "null"]``) reads as an optional X."""
    kind = prop.get("type")
    if isinstance(kind, list) and "null" in kind:
        rest = [k for k in kind if k != "null"]
        return {**prop, "type": rest[0] if len(rest) == 1 else rest}, True
    for key in ("anyOf", "oneOf"):
        branches = prop.get(key)
        if not isinstance(branches, list):
            continue
        real = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
        if len(real) == len(branches) or not real:
            continue
        others = {k: v for k, v in prop.items() if k != key}
        if len(real) == 1 and isinstance(real[0], dict):
            return {**real[0], **others}, True
        return {**others, key: real}, True
    return prop, False


def json_type(prop: dict[str, Any]) -> str:
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "")
    if not kind and isinstance(prop.get("properties"), dict):
        kind = "object"
    return kind if isinstance(kind, str) else ""


def help_html(prop: dict[str, Any], extra: str = "") -> SafeString:
    description = prop.get("description")
    return escape(" ".join(t for t in (str(description) if description else "", extra) if t))


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else _json(value)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def count_of(value: Any) -> int | None:
    """A schema length or item count, if it is one."""
    return value if isinstance(value, int) and not isinstance(value, bool) \
        and value >= 0 else None


def _number(value: Any) -> int | float | None:
    """A schema bound, if it is one (and finite)."""
    if isinstance(value, int | float) and not isinstance(value, bool) \
            and math.isfinite(value):
        return value
    return None


# --- choices --------------------------------------------------------------------------------

def choice_options(values: list[Any]) -> dict[str, Any]:
    """Option value → the JSON value it stands for.

    Strings stand for themselves; other values are written as JSON. Should two options
    read the same (1 and "1"), or one be empty, every option is JSON, so none is lost.
    """
    texts = [as_text(v) for v in values]
    if len(set(texts)) < len(texts) or "" in texts:
        texts = [_json(v) for v in values]
    return dict(zip(texts, values, strict=True))


def key_of(options: dict[str, Any], value: Any) -> str | None:
    if value is None:
        return None
    return next((key for key, option in options.items()
                 if option is not CUSTOM and _json(option) == _json(value)), None)


def choice_field(options: dict[str, Any], initial_key: str | None, *,
                  labels: dict[str, str] | None = None, required: bool,
                  **common: Any) -> forms.TypedChoiceField:
    """A select whose cleaned value is the option's JSON value (ints stay ints).

    Without a default there is an empty first option: "(none)" leaves an optional
    value to the model, "Choose…" makes the user pick a required one deliberately.
    """
    choices = [(key, (labels or {}).get(key, key)) for key in options]
    if initial_key is None:
        choices.insert(0, ("", "Choose…" if required else "(none)"))
    return forms.TypedChoiceField(choices=choices, coerce=_coercion(options),
                                  empty_value=None, required=required,
                                  initial=initial_key, **common)


def _coercion(options: dict[str, Any]) -> Callable[[str], Any]:
    """Option value → JSON value; an unknown option is a ValueError, which Django reports
    as an invalid choice (and counts as a change)."""
    def coerce(key: str) -> Any:
        try:
            value = options[key]
        except KeyError:
            raise ValueError(key) from None
        return NULL if value is None else value
    return coerce


# --- strings and URLs -----------------------------------------------------------------------

class _ColorInput(forms.TextInput):
    input_type = "color"


def string_field(prop: dict[str, Any], *, initial: Any, alt: str = "",
                  **common: Any) -> forms.Field:
    lengths: dict[str, Any] = {"min_length": count_of(prop.get("minLength")),
                               "max_length": count_of(prop.get("maxLength"))}
    fmt = prop.get("format")
    string: forms.CharField
    if fmt in ("uri", "url"):
        string = _HttpURLField(**lengths, initial=initial, **common)
    elif fmt == "image-url":
        string = ImageURLField(**lengths, initial=initial, alt=alt, **common)
    else:
        string = forms.CharField(**lengths, initial=initial, widget=_text_widget(prop),
                                 **common)
    pattern = prop.get("pattern")
    if isinstance(pattern, str):
        with_pattern = _pattern_validator(pattern, prop.get("examples"))
        if with_pattern is not None:
            string.validators.append(with_pattern)
    return string


def _text_widget(prop: dict[str, Any]) -> forms.Widget:
    hint = prop.get("x-widget")
    if hint == "color":
        return _ColorInput()
    max_length = count_of(prop.get("maxLength"))
    short = max_length is not None and max_length <= SHORT_STRING_MAX
    if hint != "textarea" and (short or prop.get("format") or prop.get("pattern")):
        return forms.TextInput()
    return forms.Textarea(attrs={"rows": 4})


def _pattern_validator(pattern: str, examples: Any) -> RegexValidator | None:
    """The schema's ``pattern`` (searched, as JSON Schema does), said in words."""
    try:
        regex = re.compile(pattern)
    except (re.error, OverflowError, RecursionError):
        return None  # not a Python regex: the server's check has the last word
    example = examples[0] if isinstance(examples, list) and examples else None
    message = "Enter a value in the format this field expects" + (
        f", for example {as_text(example)}." if example is not None else ".")
    return RegexValidator(regex, message=message, code="pattern")


HTTP_URL_MESSAGE = "Enter a web address starting with http:// or https://."
IMAGE_URL_MESSAGE = "Enter the image's web address (http:// or https://) or upload a file."


class _HttpURLValidator(URLValidator):
    """http(s) only, and only what the server's ``uri`` format accepts too."""

    message = HTTP_URL_MESSAGE

    def __init__(self) -> None:
        super().__init__(schemes=["http", "https"])

    def __call__(self, value: Any) -> None:
        super().__call__(value)
        if not _URI.fullmatch(value):
            raise ValidationError(self.message, code=self.code)


class _HttpURLField(forms.URLField):
    default_validators = [_HttpURLValidator()]
    default_error_messages = {"invalid": HTTP_URL_MESSAGE}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(assume_scheme="https", **kwargs)


class _ImageURLInput(forms.URLInput):
    """A URL box, or, once the value is an uploaded image carried over a re-rendered
    form, a hidden input and a thumbnail, so the user need not pick the file again."""

    def __init__(self, *, alt: str, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.alt = alt

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None,
               renderer: Any = None) -> SafeString:
        if not _is_data_image(value):
            return super().render(name, value, attrs, renderer)
        hidden = forms.HiddenInput().render(name, value, renderer=renderer)
        return format_html('{}<img class="preview-img" src="{}" alt="{}">',
                           hidden, value, self.alt or "The uploaded image")


class _ImageURLBoundField(BoundField):
    """Holds a valid upload's data URI when the form is shown again (with errors
    elsewhere). The control is then a hidden input, so it has no id to label."""

    def value(self) -> Any:
        upload = cast(ImageURLField, self.field).upload_name
        cleaned = getattr(self.form, "cleaned_data", None) or {}
        return cleaned.get(upload) or super().value()

    @property
    def auto_id(self) -> str:
        return "" if _is_data_image(self.value()) else super().auto_id


class ImageURLField(forms.URLField):
    """An image's http(s) URL or ``data:image/…;base64,`` URI, as models accept them."""

    default_validators = [RegexValidator(_IMAGE_URL, code="invalid")]
    default_error_messages = {"invalid": IMAGE_URL_MESSAGE}
    bound_field_class = _ImageURLBoundField

    def __init__(self, *, alt: str, **kwargs: Any) -> None:
        super().__init__(assume_scheme="https", widget=_ImageURLInput(alt=alt), **kwargs)
        self.upload_name = ""


def _is_data_image(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("data:image/") \
        and _IMAGE_URL.fullmatch(value) is not None


# --- image uploads --------------------------------------------------------------------------

class ImageUploadField(forms.FileField):
    """An uploaded image, checked with Pillow and cleaned to a data URI (what models take)."""

    widget = forms.FileInput

    def __init__(self, *, max_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_bytes = max_bytes
        self.widget.attrs.update({"accept": ",".join(IMAGE_TYPES.values()),
                                  "data-preview": True})

    def clean(self, data: Any, initial: Any = None) -> Any:
        upload = super().clean(data, initial)
        return _data_uri(upload, max_bytes=self.max_bytes) if upload else None


def upload_cap(max_length: int | None) -> int:
    """The largest file whose data URI still fits the property's ``maxLength``."""
    if max_length is None:
        return MAX_UPLOAD_BYTES
    return max(0, min(MAX_UPLOAD_BYTES, (max_length - _DATA_URI_PREFIX) // 4 * 3))


def _data_uri(upload: File, *, max_bytes: int) -> str:
    if upload.size is None or upload.size > max_bytes:
        raise ValidationError(f"The file is larger than {filesizeformat(max_bytes)}.",
                              code="too_large")
    raw = upload.read()
    kind = _image_format(raw)
    return f"data:{IMAGE_TYPES[kind]};base64,{base64.b64encode(raw).decode('ascii')}"


def _image_format(raw: bytes) -> str:
    """The image's format, once Pillow (trying the allowed formats only) has read it."""
    unreadable = ValidationError("Upload a PNG, JPEG or WebP image; this file is not one "
                                 "or is damaged.", code="invalid_image")
    too_big = ValidationError(f"The image has more than {MAX_IMAGE_PIXELS // 1_000_000} "
                              "megapixels; upload a smaller one.", code="too_many_pixels")
    try:
        with Image.open(io.BytesIO(raw), formats=list(IMAGE_TYPES)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise too_big
            image.verify()
            kind = image.format or ""
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_big from None
    except _UNREADABLE:
        raise unreadable from None
    if kind not in IMAGE_TYPES:
        raise unreadable
    return kind


# --- numbers --------------------------------------------------------------------------------

class _Above(BaseValidator):
    message = "Ensure this value is greater than %(limit_value)s."
    code = "exclusive_minimum"

    def compare(self, a: Any, b: Any) -> bool:
        return bool(a <= b)


class _Below(BaseValidator):
    message = "Ensure this value is less than %(limit_value)s."
    code = "exclusive_maximum"

    def compare(self, a: Any, b: Any) -> bool:
        return bool(a >= b)


class _MultipleOf(BaseValidator):
    """JSON Schema's ``multipleOf``, computed as the server's validator (jsonschema) does."""

    message = "Ensure this value is a multiple of %(limit_value)s."
    code = "multiple_of"

    def compare(self, a: Any, b: Any) -> bool:
        if isinstance(b, float):
            try:
                quotient = a / b
                return int(quotient) != quotient
            except OverflowError:
                return (Fraction(a) / Fraction(b)).denominator != 1
        return bool(a % b)


def _number_field(prop: dict[str, Any], *, integer: bool, initial: Any,
                  **common: Any) -> forms.Field:
    """Bounds as validators and min/max; exclusive integer bounds become inclusive."""
    low, high = _number(prop.get("minimum")), _number(prop.get("maximum"))
    above, below = _number(prop.get("exclusiveMinimum")), _number(prop.get("exclusiveMaximum"))
    if integer:
        low = _tighter(low, None if above is None else math.floor(above) + 1, max)
        high = _tighter(high, None if below is None else math.ceil(below) - 1, min)
        above = below = None
    bounds: dict[str, Any] = {"min_value": low, "max_value": high}
    number = (forms.IntegerField if integer else forms.FloatField)(
        **bounds, initial=initial, **common)
    step = _number(prop.get("multipleOf"))
    step = step if step is not None and step > 0 else None
    extra = [(above, _Above, "min", low), (below, _Below, "max", high)]
    for bound, validator, attr, inclusive in extra:
        if bound is not None:
            number.validators.append(validator(bound))
            if inclusive is None:
                number.widget.attrs[attr] = bound
    if step is not None:
        number.validators.append(_MultipleOf(step))
    number.widget.attrs["step"] = step if step is not None else (1 if integer else "any")
    return number


def _tighter(a: int | float | None, b: int | float | None, pick: Any) -> int | float | None:
    return b if a is None else a if b is None else pick(a, b)


# --- arrays and JSON ------------------------------------------------------------------------

class _LinesField(forms.Field):
    """An array of scalars, one per line, each cleaned by the field its item schema calls
    for (so "3" becomes 3 for integers, and every URL is checked)."""

    widget = forms.Textarea

    def __init__(self, *, item: forms.Field, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.item = item
        self.widget.attrs.setdefault("rows", 4)

    def to_python(self, value: Any) -> list[Any] | None:
        lines = [line.strip() for line in str(value or "").splitlines() if line.strip()]
        values, problems = [], []
        for number, line in enumerate(lines, start=1):
            try:
                values.append(self.item.clean(line))
            except ValidationError as exc:
                problems += [f"Line {number}: {message}" for message in exc.messages]
        if problems:
            raise ValidationError(problems)
        return values or None

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(as_text(v) for v in value) if isinstance(value, list) else value


def _line_items(prop: dict[str, Any]) -> dict[str, Any] | None:
    """The item schema of an array asked one value per line (of strings or numbers)."""
    items = prop.get("items")
    if not isinstance(items, dict):
        return None
    items, _nullable = collapse_nullable(items)
    scalar = json_type(items) in ("string", "integer", "number") or (
        isinstance(items.get("enum"), list)
        and all(isinstance(v, str | int | float) for v in items["enum"]))
    return items if scalar and not (items.get("anyOf") or items.get("oneOf")) else None


def _unique(values: list[Any]) -> None:
    texts = [_json(v) for v in values]
    if len(set(texts)) < len(texts):
        raise ValidationError("Give each value once.", code="unique_items")


def _lines_field(prop: dict[str, Any], items: dict[str, Any], common: dict[str, Any], *,
                 initial: Any) -> _LinesField:
    item = property_field(items, json_type(items), {"required": True}, initial=None)
    lines = _LinesField(item=item,
                        **{**common, "help_text": help_html(prop, "One value per line.")},
                        initial=initial)
    least, most = count_of(prop.get("minItems")), count_of(prop.get("maxItems"))
    if least is not None:
        lines.validators.append(MinLengthValidator(
            least, message="Give at least %(limit_value)d values, one per line."))
    if most is not None:
        lines.validators.append(MaxLengthValidator(
            most, message="Give at most %(limit_value)d values, one per line."))
    if prop.get("uniqueItems") is True:
        lines.validators.append(_unique)
    return lines


_JSON_SHAPES = {"object": (dict, 'a JSON object, e.g. {"key": "value"}'),
                "array": (list, "a JSON array, e.g. [1, 2]")}


class _JSONField(forms.JSONField):
    """Free-form JSON; bad JSON is refused with the parser's own words and position."""

    def __init__(self, *, shape: tuple[type, str] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shape = shape

    def to_python(self, value: Any) -> Any:
        try:
            return super().to_python(value)
        except ValidationError:
            raise ValidationError(_json_problem(str(value)), code="invalid") from None

    def validate(self, value: Any) -> None:
        super().validate(value)
        if self.shape and value is not None and not isinstance(value, self.shape[0]):
            raise ValidationError(f"Enter {self.shape[1]}.", code="shape")


def _json_problem(text: str) -> str:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return (f"This is not valid JSON: {exc.msg} (line {exc.lineno}, "
                f"column {exc.colno}).")
    return "This is not valid JSON."


def json_field(prop: dict[str, Any], kind: str, common: dict[str, Any], *,
                initial: Any) -> _JSONField:
    shape = _JSON_SHAPES.get(kind)
    hint = f"As {shape[1]}." if shape else "As JSON."
    return _JSONField(shape=shape, **{**common, "help_text": help_html(prop, hint)},
                      initial=initial, widget=forms.Textarea(attrs={"rows": 4}))
