"""String fields: text, http(s) URLs, and images given by URL, data URI or upload.

An upload, or a data URI typed or carried in the URL box, is checked and made plain
by ``brenia.images.normalise_image`` (format allow-list, byte and pixel caps, bomb
guard; upright, sRGB, no metadata) and becomes the plain image's ``data:`` URI; a
valid one is carried back in a hidden input when the form is shown again with errors
elsewhere. Free text loses control characters, as the server's check would take them.
"""

from __future__ import annotations

import re
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.validators import (
    RegexValidator,
    URLValidator,
)
from django.forms.boundfield import BoundField
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html
from django.utils.safestring import SafeString

from brenia.images import (
    ALLOWED_FORMATS,
    MAX_IMAGE_BYTES,
    ImageRefused,
    normalise_image,
    read_data_uri,
)
from brenia.inputs import clean_text
from generation.registry.forms.values import (
    as_text,
    count_of,
)
from generation.registry.limits import DEFAULT_TEXT_MAX, is_free_text
from generation.registry.validation import IMAGE_URL_REGEX, URI_REGEX, anchored

# Longer than this (or unbounded) and a string gets a textarea, not a one-line input.
SHORT_STRING_MAX = 255
# What an upload may be (Pillow's format name → MIME type), and how big.
IMAGE_TYPES = ALLOWED_FORMATS
MAX_UPLOAD_BYTES = MAX_IMAGE_BYTES
# The longest data URI prefix an upload gets ("data:image/jpeg;base64,").
DATA_URI_PREFIX = len("data:image/jpeg;base64,")
URI_PATTERN = re.compile(anchored(URI_REGEX))
IMAGE_URL_PATTERN = re.compile(anchored(IMAGE_URL_REGEX))

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
    elif is_free_text(prop):
        lengths["max_length"] = lengths["max_length"] or DEFAULT_TEXT_MAX
        string = _FreeTextField(**lengths, initial=initial, widget=_text_widget(prop),
                                **common)
    else:
        string = forms.CharField(**lengths, initial=initial, widget=_text_widget(prop),
                                 **common)
    pattern = prop.get("pattern")
    if isinstance(pattern, str):
        with_pattern = _pattern_validator(pattern, prop.get("examples"))
        if with_pattern is not None:
            string.validators.append(with_pattern)
    return string


class _FreeTextField(forms.CharField):
    """Text as the server keeps it: without control characters (tabs, line feeds kept)."""

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        return clean_text(text) if isinstance(text, str) else text


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
        if not URI_PATTERN.fullmatch(value):
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

    default_validators = [RegexValidator(IMAGE_URL_PATTERN, code="invalid")]
    default_error_messages = {"invalid": IMAGE_URL_MESSAGE}
    bound_field_class = _ImageURLBoundField

    def __init__(self, *, alt: str, **kwargs: Any) -> None:
        super().__init__(assume_scheme="https", widget=_ImageURLInput(alt=alt), **kwargs)
        self.upload_name = ""

    def clean(self, value: Any) -> Any:
        """A data URI must hold an image Brenia takes; it comes back plain."""
        cleaned = super().clean(value)
        if not _is_data_image(cleaned):
            return cleaned
        try:
            _media, raw = read_data_uri(cleaned)
            return normalise_image(raw).data_uri()
        except ImageRefused as exc:
            raise ValidationError(str(exc), code=exc.reason) from None


def _is_data_image(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("data:image/") \
        and IMAGE_URL_PATTERN.fullmatch(value) is not None


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
    return max(0, min(MAX_UPLOAD_BYTES, (max_length - DATA_URI_PREFIX) // 4 * 3))


def _data_uri(upload: File, *, max_bytes: int) -> str:
    """The upload, checked and made plain, as the data URI models take."""
    too_large = ValidationError(f"The file is larger than {filesizeformat(max_bytes)}.",
                                code="too_large")
    if upload.size is None or upload.size > max_bytes:
        raise too_large
    try:
        image = normalise_image(upload.read())
    except ImageRefused as exc:
        raise ValidationError(str(exc), code=exc.reason) from None
    if len(image.data) > max_bytes:  # rare: a plain image larger than the upload
        raise too_large
    return image.data_uri()
