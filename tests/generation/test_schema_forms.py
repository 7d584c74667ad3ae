"""The form generated from a JSON Schema, as the admin preview, the template form and the
model playground use it: what each schema keyword becomes, what ``inputs()`` gives back,
and that what the form accepts the server's own check (``check_inputs``) accepts too.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, cast

import pytest
from django import forms
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from PIL import Image

from brenia.errors import FieldProblem, InvalidInput
from generation.registry.forms import SchemaForm, field_name
from generation.registry.validation import check_inputs
from templates_app.spec import variables_schema

ROOT = Path(__file__).resolve().parents[2]
SEEDED_MODELS = json.loads((ROOT / "generation/registry/seed/registry.json").read_text())
SEEDED_TEMPLATES = json.loads((ROOT / "templates_app/seed/templates.json").read_text())
SCHEMAS = {
    **{f"model:{m['slug']}": m["input_schema"] for m in SEEDED_MODELS},
    **{f"template:{t['slug']}": variables_schema({"variables": t["variables"]})
       for t in SEEDED_TEMPLATES},
}
FLUX = next(m["input_schema"] for m in SEEDED_MODELS if m["slug"] == "flux-dev")
IMAGE_SIZE = FLUX["properties"]["image_size"]


def schema(required: list[str] | None = None, **properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or []}


def valid(form: SchemaForm) -> SchemaForm:
    assert form.is_valid(), form.errors
    return form


class Page(HTMLParser):
    """Controls (with their attributes), labels (for → text) and ids of rendered markup."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.controls: dict[str, dict[str, Any]] = {}
        self.labels: dict[str, str] = {}
        self.label_texts: list[str] = []
        self.ids: list[str] = []
        self._label: str | None = None
        self._text = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.append(str(found["id"]))
        if tag in ("input", "select", "textarea"):
            self.controls[str(found.get("name"))] = {"tag": tag, **found, "options": []}
        elif tag == "option":
            list(self.controls.values())[-1]["options"].append(found)
        elif tag == "label":
            self._label, self._text = found.get("for") or "", ""

    def handle_data(self, data: str) -> None:
        self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "label" and self._label is not None:
            self.labels[self._label] = self._text.strip()
            self.label_texts.append(self._text.strip())
            self._label = None


def posted(form: SchemaForm) -> dict[str, str]:
    """What a browser posts for ``form`` as rendered: every field's initial value."""
    data = {}
    for bound in form:
        value = bound.value()
        if isinstance(bound.field, forms.BooleanField):
            if value:
                data[bound.html_name] = "on"
        elif value not in (None, ""):
            data[bound.html_name] = str(value)
    return data


def sample(field: forms.Field) -> str:
    """The least a user types to answer a required field."""
    if isinstance(field, forms.URLField):
        return "https://example.com/photo.png"
    if isinstance(field, forms.ChoiceField):
        choices = cast(list[tuple[str, str]], field.choices)
        return next(key for key, _label in choices if key != "")
    if isinstance(field, forms.IntegerField):
        return str(field.min_value if field.min_value is not None else 1)
    if isinstance(field, forms.CharField):
        return "x" * max(field.min_length or 1, 1)
    return "1"


def filled(spec: dict[str, Any]) -> SchemaForm:
    """The form bound with its initial values and the least that fills the required ones."""
    data = posted(SchemaForm(spec))
    unbound = SchemaForm(spec)
    required = [n for n, f in unbound.fields.items() if f.required]
    required += [field_name(n) for n in spec.get("required", [])]
    for name in required:
        if not data.get(name):
            data[name] = sample(unbound.fields[name])
    return SchemaForm(spec, data)


def png(size: tuple[int, int] = (4, 3), kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "red").save(buffer, kind)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` × ``height`` pixels in a few bytes (a decompression bomb)."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + tag + body
                + struct.pack(">I", zlib.crc32(tag + body)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def upload(content: bytes, name: str = "photo.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="image/png")


# --- fields, order, labels ------------------------------------------------------------------

def test_one_field_per_property_in_display_order_with_labels_help_and_defaults() -> None:
    form = SchemaForm({
        "type": "object", "required": ["prompt"],
        "x-order": ["prompt", "not-a-property", "guidance_scale"],
        "properties": {
            "negative_prompt": {"type": "string", "maxLength": 80},
            "guidance_scale": {"type": "number", "default": 3.5, "title": "Guidance"},
            "prompt": {"type": "string", "description": "What to show."},
        }})
    assert list(form.fields) == ["prompt", "guidance_scale", "negative_prompt"]
    prompt, guidance, negative = form.fields.values()
    assert (prompt.label, prompt.help_text, prompt.required) == ("Prompt", "What to show.", True)
    assert (guidance.label, guidance.initial, guidance.required) == ("Guidance", 3.5, False)
    assert negative.label == "Negative prompt"


def test_fal_order_list_is_honoured_too() -> None:
    form = SchemaForm({"type": "object", "x-fal-order-properties": ["b", "a"],
                       "properties": {"a": {"type": "string"}, "b": {"type": "string"}}})
    assert list(form.fields) == ["b", "a"]


@pytest.mark.parametrize("spec", [None, [], "x", {"type": "object"}, {"properties": []}])
def test_a_schema_without_properties_makes_an_empty_form(spec: Any) -> None:
    form = SchemaForm(spec, {})
    assert not form.fields and form.is_valid() and form.inputs() == {}


def test_every_control_has_its_own_label_and_every_id_is_unique() -> None:
    """What axe-core checks on the pages: no unlabelled control, no duplicate id."""
    kitchen_sink = schema(
        ["photo"], photo={"type": "string", "format": "image-url", "title": "Photo"},
        image_size=IMAGE_SIZE, photo_2={"type": "string", "title": "Photo"},
        style={"type": "object", "properties": {"photo": {"type": "string"}}})
    for spec in [*SCHEMAS.values(), kitchen_sink]:
        for form in (SchemaForm(spec), SchemaForm(spec, {})):
            form.is_valid()
            page = Page(form.as_div())
            assert len(page.ids) == len(set(page.ids))
            assert len(page.label_texts) == len(set(page.label_texts))
            for name, control in page.controls.items():
                if control.get("type") != "hidden":
                    assert page.labels.get(control["id"]), f"{name} has no label"


# --- strings --------------------------------------------------------------------------------

@pytest.mark.parametrize(("prop", "widget"), [
    ({"type": "string", "maxLength": 255}, forms.TextInput),
    ({"type": "string", "maxLength": 256}, forms.Textarea),
    ({"type": "string"}, forms.Textarea),
    ({"type": "string", "pattern": "^[a-z]+$"}, forms.TextInput),
    ({"type": "string", "format": "date"}, forms.TextInput),
    ({"type": "string", "maxLength": 20, "x-widget": "textarea"}, forms.Textarea),
])
def test_short_strings_get_a_line_and_long_ones_a_textarea(prop: dict[str, Any],
                                                          widget: type[forms.Widget]) -> None:
    assert type(SchemaForm(schema(text=prop)).fields["text"].widget) is widget


def test_string_lengths_and_pattern_are_checked_with_clear_messages() -> None:
    spec = schema(["code"], code={"type": "string", "minLength": 2, "maxLength": 4,
                                  "pattern": "^[A-Z]+$", "examples": ["SALE"]})
    assert SchemaForm(spec, {"code": "X"}).errors["code"] == [
        "Ensure this value has at least 2 characters (it has 1)."]
    assert str(SchemaForm(spec, {"code": "TOOLONG"}).errors["code"][0]).startswith(
        "Ensure this value has at most 4 characters")
    assert SchemaForm(spec, {"code": "abc"}).errors["code"] == [
        "Enter a value in the format this field expects, for example SALE."]
    assert valid(SchemaForm(spec, {"code": " SALE "})).inputs() == {"code": "SALE"}
    html = SchemaForm(spec).as_div()
    assert 'maxlength="4"' in html and 'minlength="2"' in html


def test_color_hint_gives_a_colour_picker() -> None:
    html = SchemaForm(schema(accent={"type": "string", "x-widget": "color",
                                     "default": "#ff6600"})).as_div()
    assert Page(html).controls["accent"]["type"] == "color"
    assert Page(html).controls["accent"]["value"] == "#ff6600"


@pytest.mark.parametrize("fmt", ["uri", "url"])
def test_url_fields_take_only_http_and_https(fmt: str) -> None:
    spec = schema(["lora"], lora={"type": "string", "format": fmt, "maxLength": 2000})
    assert Page(SchemaForm(spec).as_div()).controls["lora"]["type"] == "url"
    assert valid(SchemaForm(spec, {"lora": "example.com/w.safetensors"})).inputs() == {
        "lora": "https://example.com/w.safetensors"}
    for bad in ("ftp://example.com/w", "javascript:alert(1)", "file:///etc/passwd",
                "data:text/plain;base64,eA==", "http://exa mple.com/", "https://bücher.de/"):
        assert SchemaForm(spec, {"lora": bad}).errors["lora"] == [
            "Enter a web address starting with http:// or https://."], bad


# --- images ---------------------------------------------------------------------------------

PHOTO = schema(["photo", "name"],
               photo={"type": "string", "format": "image-url", "maxLength": 8_000_000,
                      "title": "Product photo"},
               name={"type": "string", "maxLength": 40})


def test_an_image_is_a_url_box_plus_an_upload() -> None:
    form = SchemaForm(PHOTO)
    assert list(form.fields) == ["photo", "photo__upload", "name"]
    controls = Page(form.as_div()).controls
    assert controls["photo"]["type"] == "url"
    upload_control = controls["photo__upload"]
    assert (upload_control["type"], upload_control["accept"]) == (
        "file", "image/png,image/jpeg,image/webp,image/gif")
    assert "data-preview" in upload_control
    assert isinstance(form.fields["photo__upload"], forms.FileField)
    assert form.fields["photo__upload"].help_text == "PNG, JPEG, WebP or GIF, up to 5.7\xa0MB."


def test_either_the_url_or_the_upload_answers_a_required_image() -> None:
    by_url = valid(SchemaForm(PHOTO, {"photo": "https://cdn.example.com/p.jpg", "name": "a"}))
    assert by_url.inputs() == {"photo": "https://cdn.example.com/p.jpg", "name": "a"}
    neither = SchemaForm(PHOTO, {"name": "a"})
    assert neither.errors == {"photo": ["Give the image's URL or upload a file."]}


@pytest.mark.parametrize("kind", ["PNG", "JPEG"])
def test_an_upload_becomes_a_data_uri(kind: str) -> None:
    # A plain PNG or JPEG (no metadata, sRGB) is kept as it is; others are made plain
    # (tests/generation/test_image_normalisation.py).
    content = png(kind=kind)
    form = valid(SchemaForm(PHOTO, {"name": "a"}, {"photo__upload": upload(content)}))
    mime = {"PNG": "png", "JPEG": "jpeg"}[kind]
    photo = form.inputs()["photo"]
    assert photo == f"data:image/{mime};base64,{base64.b64encode(content).decode()}"
    check_inputs(schema=PHOTO, inputs=form.inputs(), options=None, prefix="variables")


def test_an_upload_wins_over_the_url_box() -> None:
    content = png()
    form = valid(SchemaForm(PHOTO, {"name": "a", "photo": "not a url"},
                            {"photo__upload": upload(content)}))
    assert form.inputs()["photo"].startswith("data:image/png;base64,")


@pytest.mark.parametrize(("content", "message"), [
    (b"<svg onload=alert(1)>", "Upload a PNG, JPEG, WebP or GIF image; this file is not one "
                               "or is damaged."),
    (png(kind="BMP"), "Upload a PNG, JPEG, WebP or GIF image; this file is not one or is "
                      "damaged."),
    (png()[:40], "Upload a PNG, JPEG, WebP or GIF image; this file is not one or is damaged."),
    (png_header(8_000, 8_000), "The image has more than 40 megapixels; upload a smaller one."),
    (png_header(100_000, 100_000),  # past Pillow's own decompression bomb limit
     "The image has more than 40 megapixels; upload a smaller one."),
])
def test_uploads_are_verified_with_pillow(content: bytes, message: str) -> None:
    form = SchemaForm(PHOTO, {"name": "a"}, {"photo__upload": upload(content)})
    assert form.errors == {"photo__upload": [message]}


def test_an_upload_must_fit_the_propertys_max_length_as_a_data_uri() -> None:
    small = schema(photo={"type": "string", "format": "image-url", "maxLength": 200})
    form = SchemaForm(small, {}, {"photo__upload": upload(png((64, 64)))})
    assert form.errors == {"photo__upload": ["The file is larger than 132\xa0bytes."]}


def test_the_url_box_takes_image_data_uris_but_not_other_data() -> None:
    uri = "data:image/png;base64," + base64.b64encode(png()).decode()
    assert valid(SchemaForm(PHOTO, {"photo": uri, "name": "a"})).inputs()["photo"] == uri
    for bad in ("data:text/html;base64,PHNjcmlwdD4=", "javascript:alert(1)", "ftp://x/p.png"):
        assert SchemaForm(PHOTO, {"photo": bad, "name": "a"}).errors["photo"] == [
            "Enter the image's web address (http:// or https://) or upload a file."]


def test_a_valid_upload_is_carried_when_the_form_comes_back_with_errors() -> None:
    content = png()
    uri = "data:image/png;base64," + base64.b64encode(content).decode()
    form = SchemaForm(PHOTO, {"name": ""}, {"photo__upload": upload(content)})
    assert form.errors == {"name": ["This field is required."]}
    html = form.as_div()
    assert f'<input type="hidden" name="photo" value="{uri}">' in html
    assert f'<img class="preview-img" src="{uri}" alt="Product photo: the uploaded image">' in html
    assert 'for="id_photo"' not in html  # no visible control to label: the text stands alone
    # The page posts the carried image back; the browser sends no file this time.
    again = valid(SchemaForm(PHOTO, {"photo": uri, "name": "Lemonade"}))
    assert again.inputs() == {"photo": uri, "name": "Lemonade"}


def test_an_image_array_is_a_list_of_urls() -> None:
    spec = next(m["input_schema"] for m in SEEDED_MODELS if m["slug"] == "nano-banana")
    form = SchemaForm(spec, {"prompt": "p", "reference_image_urls":
                             "https://a.example/1.png\n\nhttps://a.example/2.png\n"})
    assert valid(form).inputs()["reference_image_urls"] == [
        "https://a.example/1.png", "https://a.example/2.png"]
    bad = SchemaForm(spec, {"prompt": "p", "reference_image_urls": "https://a.example/1.png\n"
                                                                   "ftp://x/2.png"})
    assert bad.errors["reference_image_urls"] == [
        "Line 2: Enter the image's web address (http:// or https://) or upload a file."]


# --- numbers, booleans, choices, consts -----------------------------------------------------

def test_integers_and_numbers_keep_their_bounds_and_step() -> None:
    spec = schema(steps={"type": "integer", "minimum": 1, "maximum": 50},
                  strength={"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                  count={"type": "integer", "exclusiveMinimum": 0.5, "exclusiveMaximum": 10},
                  cfg={"type": "number", "multipleOf": 0.5, "minimum": 0})
    form = SchemaForm(spec)
    assert isinstance(form.fields["steps"], forms.IntegerField)
    assert isinstance(form.fields["strength"], forms.FloatField)
    controls = Page(form.as_div()).controls
    assert [controls["steps"][k] for k in ("min", "max", "step")] == ["1", "50", "1"]
    assert [controls["count"][k] for k in ("min", "max")] == ["1", "9"]
    assert [controls["strength"][k] for k in ("min", "max", "step")] == ["0", "1", "any"]
    assert controls["cfg"]["step"] == "0.5"
    assert valid(SchemaForm(spec, {"steps": "7", "strength": "0.5", "count": "1",
                                   "cfg": "2.5"})).inputs() == {
        "steps": 7, "strength": 0.5, "count": 1, "cfg": 2.5}
    errors = SchemaForm(spec, {"steps": "51", "strength": "1", "count": "10",
                               "cfg": "0.3"}).errors
    assert errors == {
        "steps": ["Ensure this value is less than or equal to 50."],
        "strength": ["Ensure this value is less than 1."],
        "count": ["Ensure this value is less than or equal to 9."],
        "cfg": ["Ensure this value is a multiple of 0.5."]}
    assert SchemaForm(spec, {"strength": "0"}).errors == {
        "strength": ["Ensure this value is greater than 0."]}


@pytest.mark.parametrize(("default", "posted_value", "expected"), [
    (True, None, False),  # unchecked means false, even when the default is true
    (True, "on", True),
    (None, None, False),
])
def test_booleans_are_optional_checkboxes_honouring_their_default(
        default: Any, posted_value: str | None, expected: bool) -> None:
    prop: dict[str, Any] = {"type": "boolean"} | ({} if default is None else {"default": default})
    form = SchemaForm(schema(["safe"], safe=prop))
    field = form.fields["safe"]
    assert isinstance(field, forms.BooleanField) and not field.required
    assert field.initial is (default is True)
    data = {} if posted_value is None else {"safe": posted_value}
    assert valid(SchemaForm(schema(["safe"], safe=prop), data)).inputs() == {"safe": expected}


def test_an_enum_gives_back_its_own_json_values() -> None:
    spec = schema(tolerance={"enum": [1, "1", 2, True, None]},
                  fmt={"type": "string", "enum": ["jpeg", "png"], "default": "png"})
    form = SchemaForm(spec)
    assert isinstance(form.fields["tolerance"], forms.TypedChoiceField)
    options = Page(form.as_div()).controls["tolerance"]["options"]
    assert [o["value"] for o in options] == ["", "1", '"1"', "2", "true", "null"]
    assert [o["value"] for o in Page(form.as_div()).controls["fmt"]["options"]] == [
        "jpeg", "png"]
    for key, value in (("1", 1), ('"1"', "1"), ("true", True), ("null", None)):
        inputs = valid(SchemaForm(spec, {"tolerance": key, "fmt": "jpeg"})).inputs()
        assert inputs["tolerance"] == value and type(inputs["tolerance"]) is type(value)
    assert valid(SchemaForm(spec, {"tolerance": "", "fmt": "png"})).inputs() == {"fmt": "png"}
    assert "tolerance" in SchemaForm(spec, {"tolerance": "3"}).errors


def test_a_required_enum_without_default_asks_for_a_deliberate_choice() -> None:
    spec = schema(["ratio"], ratio={"type": "string", "enum": ["1:1", "16:9"]})
    options = Page(SchemaForm(spec).as_div()).controls["ratio"]["options"]
    assert [o["value"] for o in options] == ["", "1:1", "16:9"]
    assert SchemaForm(spec, {"ratio": ""}).errors == {"ratio": ["This field is required."]}


def test_a_const_is_shown_disabled_and_always_sent() -> None:
    spec = schema(["mode"], mode={"const": "fast"}, n={"const": 2})
    form = SchemaForm(spec, {"mode": "slow"})  # a disabled control is not posted; nor trusted
    assert valid(form).inputs() == {"mode": "fast", "n": 2}
    assert "disabled" in Page(form.as_div()).controls["mode"]
    check_inputs(schema=spec, inputs=form.inputs(), options=None)


def test_nullable_any_of_collapses_to_an_optional_field() -> None:
    spec = schema(["seed"], seed={"anyOf": [{"type": "integer", "minimum": 0},
                                            {"type": "null"}], "title": "Seed"},
                  note={"type": ["string", "null"], "maxLength": 20})
    form = SchemaForm(spec, {"seed": ""})
    assert isinstance(form.fields["seed"], forms.IntegerField)
    assert not form.fields["seed"].required
    # Required but nullable: left blank it is null, which the schema accepts.
    assert valid(form).inputs() == {"seed": None}
    check_inputs(schema=spec, inputs=form.inputs(), options=None)
    assert valid(SchemaForm(spec, {"seed": "3", "note": "hi"})).inputs() == {
        "seed": 3, "note": "hi"}


# --- image_size: named sizes or a custom object ---------------------------------------------

def test_named_sizes_or_a_custom_size_with_its_own_fields() -> None:
    spec = schema(["image_size"], image_size=IMAGE_SIZE)
    form = SchemaForm(spec, prefix="run")
    assert list(form.fields) == ["image_size", "image_size__width", "image_size__height"]
    controls = Page(form.as_div()).controls
    options = controls["run-image_size"]["options"]
    assert options[-1]["value"] == "custom" and ">custom size</option>" in form.as_div()
    assert [o["value"] for o in options if "selected" in o] == ["landscape_4_3"]
    width = controls["run-image_size__width"]
    assert (width["data-shown-for"], width["data-shown-when"]) == ("run-image_size", "custom")
    assert not form.fields["image_size__width"].required


def test_custom_size_fields_count_only_when_custom_is_chosen() -> None:
    spec = schema(["image_size"], image_size=IMAGE_SIZE)
    named = valid(SchemaForm(spec, {"image_size": "square_hd", "image_size__width": "1"}))
    assert named.inputs() == {"image_size": "square_hd"}  # the stray width is ignored
    custom = valid(SchemaForm(spec, {"image_size": "custom", "image_size__width": "800",
                                     "image_size__height": "600"}))
    assert custom.inputs() == {"image_size": {"width": 800, "height": 600}}
    check_inputs(schema=spec, inputs=custom.inputs(), options=None)
    half = SchemaForm(spec, {"image_size": "custom", "image_size__width": "10"})
    assert half.errors == {"image_size__width": ["Ensure this value is greater than or equal "
                                                 "to 64."],
                           "image_size__height": ["This field is required."]}


def test_an_object_default_selects_custom_and_fills_its_fields() -> None:
    prop = {**IMAGE_SIZE, "default": {"width": 512, "height": 768}}
    form = SchemaForm(schema(image_size=prop))
    assert form["image_size"].value() == "custom"
    assert (form["image_size__width"].value(), form["image_size__height"].value()) == (512, 768)


# --- arrays, objects, JSON ------------------------------------------------------------------

def test_an_array_of_scalars_is_one_value_per_line() -> None:
    spec = schema(seeds={"type": "array", "items": {"type": "integer", "minimum": 0},
                         "maxItems": 3, "uniqueItems": True, "default": [1, 2]})
    form = SchemaForm(spec)
    assert isinstance(form.fields["seeds"].widget, forms.Textarea)
    assert form["seeds"].value() == "1\n2"
    assert "One value per line." in form.fields["seeds"].help_text
    assert valid(SchemaForm(spec, {"seeds": "3\n\n 4 "})).inputs() == {"seeds": [3, 4]}
    assert valid(SchemaForm(spec, {"seeds": "  "})).inputs() == {}
    assert SchemaForm(spec, {"seeds": "1\nx\n-1"}).errors == {"seeds": [
        "Line 2: Enter a whole number.",
        "Line 3: Ensure this value is greater than or equal to 0."]}
    assert SchemaForm(spec, {"seeds": "1\n2\n3\n4"}).errors == {"seeds": [
        "Give at most 3 values, one per line."]}
    assert SchemaForm(spec, {"seeds": "1\n1"}).errors == {"seeds": ["Give each value once."]}


@pytest.mark.parametrize("prop", [
    {"type": "array", "items": {"type": "object", "properties": {"path": {"type": "string"}}}},
    {"type": "object"},
    {"anyOf": [{"type": "array"}, {"type": "string"}]},
    {},
])
def test_anything_else_is_edited_as_json(prop: dict[str, Any]) -> None:
    assert isinstance(SchemaForm(schema(extra=prop)).fields["extra"], forms.JSONField)


def test_json_fields_say_what_is_wrong_with_the_json() -> None:
    spec = next(m["input_schema"] for m in SEEDED_MODELS if m["slug"] == "gemini-copy")
    form = SchemaForm(spec, {"prompt": "p", "response_schema": '{"type": "object",}'})
    assert form.errors == {"response_schema": [
        "This is not valid JSON: Expecting property name enclosed in double quotes "
        "(line 1, column 19)."]}
    assert SchemaForm(spec, {"prompt": "p", "response_schema": "[1]"}).errors == {
        "response_schema": ['Enter a JSON object, e.g. {"key": "value"}.']}
    shaped = valid(SchemaForm(spec, {"prompt": "p", "response_schema": '{"type": "object"}'}))
    assert shaped.inputs() == {"prompt": "p", "response_schema": {"type": "object"}}


NESTED = schema(["style"], style={
    "type": "object", "title": "Style", "required": ["palette"],
    "properties": {"palette": {"type": "string", "maxLength": 20},
                   "logo": {"type": "object", "required": ["url"], "properties": {
                       "url": {"type": "string", "format": "uri"},
                       "scale": {"type": "number", "default": 1.0},
                       "deep": {"type": "object", "properties": {
                           "deeper": {"type": "object", "properties": {
                               "x": {"type": "integer"}}}}}}}}})


def test_nested_objects_are_flattened_into_parent__child_fields() -> None:
    form = SchemaForm(NESTED)
    assert list(form.fields) == ["style__palette", "style__logo__url", "style__logo__scale",
                                 "style__logo__deep__deeper"]
    assert isinstance(form.fields["style__logo__deep__deeper"], forms.JSONField)
    assert form.fields["style__logo__url"].label == "Style / Logo / Url"
    assert form.fields["style__palette"].required
    assert not form.fields["style__logo__url"].required  # its object is optional


def test_an_optional_object_is_sent_once_one_of_its_fields_is_changed() -> None:
    untouched = valid(SchemaForm(NESTED, {"style__palette": "warm",
                                          "style__logo__scale": "1.0"}))
    assert untouched.inputs() == {"style": {"palette": "warm"}}
    touched = SchemaForm(NESTED, {"style__palette": "warm", "style__logo__scale": "2"})
    assert touched.errors == {"style__logo__url": ["This field is required."]}
    full = valid(SchemaForm(NESTED, {"style__palette": "warm", "style__logo__scale": "2",
                                     "style__logo__url": "https://x.example/l.svg"}))
    assert full.inputs() == {"style": {"palette": "warm", "logo": {
        "url": "https://x.example/l.svg", "scale": 2.0}}}
    check_inputs(schema=NESTED, inputs=full.inputs(), options=None)


def test_colliding_names_and_titles_stay_unique() -> None:
    spec = schema(a__b={"type": "string", "title": "Same"},
                  a={"type": "object", "properties": {"b": {"type": "string",
                                                            "title": "Same"}}},
                  photo={"type": "string", "format": "image-url"},
                  photo__upload={"type": "string"})
    form = valid(SchemaForm(spec, {"a__b": "1", "a__b_2": "2", "photo__upload_2": "3"}))
    assert list(form.fields) == ["a__b", "a__b_2", "photo", "photo__upload",
                                 "photo__upload_2"]
    assert form.inputs() == {"a__b": "1", "a": {"b": "2"}, "photo__upload": "3"}
    labels = [f.label for f in form.fields.values()]
    assert len(labels) == len(set(labels))


# --- errors: inline, accessible, from the server --------------------------------------------

def test_a_field_with_errors_is_marked_invalid_and_described_by_its_error() -> None:
    spec = schema(["prompt"], prompt={"type": "string", "maxLength": 50,
                                      "description": "What to show."})
    html = SchemaForm(spec, {}).as_div()
    prompt = Page(html).controls["prompt"]
    assert prompt["aria-invalid"] == "true"
    assert prompt["aria-describedby"] == "id_prompt_helptext id_prompt_error"
    assert '<ul class="errorlist" id="id_prompt_error"><li>This field is required.</li></ul>' \
        in html
    assert "aria-invalid" not in Page(SchemaForm(spec, {"prompt": "x"}).as_div()).controls[
        "prompt"]


def test_server_problems_are_shown_on_the_nearest_field() -> None:
    spec = {**FLUX, "properties": {**FLUX["properties"], "loras": {
        "type": "array", "items": {"type": "object", "properties": {
            "path": {"type": "string"}}}}}}
    form = valid(SchemaForm(spec, {"prompt": "p", "image_size": "custom",
                                   "image_size__width": "64", "image_size__height": "64",
                                   "loras": '[{"scale": 1}]'}))
    problems = [FieldProblem("inputs.prompt", "must not be empty"),
                FieldProblem("inputs.image_size.width", "must be a multiple of 16"),
                FieldProblem("inputs.loras.0.path", "is required"),
                FieldProblem("options.width", "must be >= 64"),
                FieldProblem("inputs", "must be an object"),
                FieldProblem("inputs.unknown", "is not an accepted field for this model")]
    unplaced = form.add_problems(problems, prefix="inputs")
    assert unplaced == problems[3:]
    assert form.errors == {"prompt": ["This value must not be empty."],
                           "image_size__width": ["This value must be a multiple of 16."],
                           "loras": ["0.path is required."]}
    assert not form.is_valid()
    assert 'id="id_prompt_error"><li>This value must not be empty.</li>' in form.as_div()


def test_template_variables_take_their_problems_under_variables() -> None:
    spec = variables_schema({"variables": SEEDED_TEMPLATES[0]["variables"]})
    form = valid(filled(spec))
    problem = FieldProblem("variables.headline", "must be at most 80 characters")
    assert form.add_problems([problem], prefix="inputs") == [problem]
    assert form.add_problems([problem], prefix="variables") == []
    assert form.errors["headline"] == ["This value must be at most 80 characters."]


def test_an_unbound_form_places_no_problems() -> None:
    problems = [FieldProblem("inputs.prompt", "is required")]
    assert SchemaForm(FLUX).add_problems(problems, prefix="inputs") == problems


def test_nothing_the_schema_says_is_emitted_as_markup() -> None:
    evil = "<script>alert(1)</script>"
    spec = schema([evil], **{evil: {
        "type": "string", "title": evil, "description": evil, "default": evil,
        "enum": [evil], "maxLength": 20}}, photo={
        "type": "string", "format": "image-url", "title": evil, "description": evil})
    for form in (SchemaForm(spec), SchemaForm(spec, {evil: evil, "photo": evil})):
        form.is_valid()
        html = form.as_div()
        assert "<script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- round trips: what the form accepts, the server accepts ---------------------------------

@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_seeded_schema_round_trips_through_its_form(name: str) -> None:
    spec = SCHEMAS[name]
    form = valid(filled(spec))
    inputs = form.inputs()
    assert set(spec.get("required", [])) <= set(inputs)
    check_inputs(schema=spec, inputs=inputs, options=None, prefix="inputs")


def test_the_seeded_defaults_come_back_as_their_json_values() -> None:
    form = valid(filled(FLUX))
    assert form.inputs() == {
        "prompt": "x", "image_size": "landscape_4_3", "num_inference_steps": 28,
        "guidance_scale": 3.5, "num_images": 1, "output_format": "jpeg",
        "enable_safety_checker": True}


def keywords(required: dict[str, st.SearchStrategy[Any]],
             optional: dict[str, st.SearchStrategy[Any]] | None = None,
             ) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=optional or {})


NAMES = st.sampled_from(["a", "b", "c_d", "image_size"])
STRING = keywords({"type": st.just("string")}, {
    "minLength": st.integers(0, 3), "maxLength": st.integers(2, 300),
    "format": st.sampled_from(["uri", "image-url", "date"]),
    "pattern": st.sampled_from(["^[a-z]+$", "[0-9]"]),
    "x-widget": st.sampled_from(["color", "textarea"]), "default": st.sampled_from(["ab", ""])})
NUMBER = keywords({"type": st.sampled_from(["integer", "number"])}, {
    "minimum": st.integers(-3, 3), "maximum": st.integers(-3, 3),
    "exclusiveMinimum": st.sampled_from([-2, 0.5, 1]),
    "exclusiveMaximum": st.sampled_from([2, 2.5, 10]),
    "multipleOf": st.sampled_from([1, 2, 0.5, 0.1]), "default": st.sampled_from([0, 1, 2.5])})
ENUM = keywords({"enum": st.lists(
    st.sampled_from([0, 1, "1", "a", "", True, None, 2.5]), min_size=1, max_size=4,
    unique_by=json.dumps)}, {"default": st.sampled_from([1, "a", None])})
SCALAR = st.one_of(
    STRING, NUMBER, ENUM,
    keywords({"type": st.just("boolean")}, {"default": st.booleans()}),
    keywords({"const": st.sampled_from([1, "x", True, None])}),
    keywords({"type": st.just("array"), "items": st.one_of(STRING, NUMBER)},
             {"maxItems": st.integers(0, 3), "minItems": st.integers(0, 2),
              "uniqueItems": st.just(True)}),
    st.just(IMAGE_SIZE), st.just({"type": "object"}))
PROPERTY = st.recursive(
    SCALAR | SCALAR.map(lambda p: {"anyOf": [p, {"type": "null"}]}),
    lambda inner: st.dictionaries(NAMES, inner, min_size=1, max_size=3).flatmap(
        lambda props: keywords({
            "type": st.just("object"), "properties": st.just(props),
            "required": st.lists(st.sampled_from(sorted(props)), unique=True)})),
    max_leaves=6)
OBJECTS = PROPERTY.filter(lambda p: p.get("type") == "object" and "properties" in p)
ANSWERS = st.sampled_from(
    ["", "0", "1", "2", "-3", "2.5", "0.3", " ab ", "abc", "1\n2", "a\nb\na", "custom",
     "https://example.com/a.png", "ftp://x", "data:image/png;base64,iVBORw0KGgo=", "on",
     "2024-01-01", "square_hd", '{"k": 1}', "[1, 2]", "#ff0000", "64", "\x00"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=OBJECTS, data=st.data())
def test_whatever_the_form_accepts_the_server_accepts(spec: dict[str, Any],
                                                      data: st.DataObject) -> None:
    answers = posted(SchemaForm(spec))
    for name, form_field in SchemaForm(spec).fields.items():
        if not data.draw(st.booleans(), label=f"answer {name}"):
            continue  # left as rendered
        choices = [str(key) for key, _label in getattr(form_field, "choices", [])]
        one_of_its_choices = bool(choices) and data.draw(st.booleans())
        answers[name] = data.draw(st.sampled_from(choices) if one_of_its_choices else ANSWERS)
    form = SchemaForm(spec, answers)
    note(f"answers={answers!r} errors={form.errors!r}")
    if form.is_valid():
        try:
            check_inputs(schema=spec, inputs=form.inputs(), options=None)
        except InvalidInput as exc:  # pragma: no cover - the failure report
            pytest.fail(f"{form.inputs()!r}: {exc.errors!r}")
