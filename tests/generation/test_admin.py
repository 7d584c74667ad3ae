"""The AIModel admin as an operator uses it: real forms posted by a logged-in staff user.

Covers schema validation on save, the form preview, "duplicate as new version",
the fal OpenAPI import, the change history, and that what the admin saves is what
the API serves at once.
"""

from __future__ import annotations

import copy
import json
import sys
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.forms.models import model_to_dict
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generation.models import AIModel, Job
from generation.registry.forms import SchemaForm
from generation.registry.openapi_import import import_input_schema
from generation.registry.validation import check_schema
from tests.conftest import Persona, make_persona

CHANGELIST = "/admin/generation/aimodel/"
ADD = "/admin/generation/aimodel/add/"
IMPORT = "/admin/generation/aimodel/import-openapi/"
GENERATE = "/api/images/generate"
# Not under a data/ folder: .gitignore ignores every directory named data.
FLUX_DEV_DOC = (Path(__file__).parent / "fal_flux_dev_openapi.json").read_text()


@pytest.fixture
def staff(db: Any, seeded: None) -> Persona:
    return make_persona("operator", staff=True)


@pytest.fixture
def console(staff: Persona) -> Client:
    client = Client()
    client.force_login(staff.user)
    return client


def change_url(model: AIModel, suffix: str = "change/") -> str:
    return f"{CHANGELIST}{model.pk}/{suffix}"


def form_data(model: AIModel | None = None, **changes: Any) -> dict[str, Any]:
    """What the browser posts for ``model`` (or a new fal model), with ``changes`` applied."""
    saved = model_to_dict(model) if model else {}
    values = dict(saved) if model else {
        "slug": "flux-dev-admin", "display_name": "FLUX.1 [dev] via admin", "description": "",
        "thumbnail_url": "", "provider": "fal", "provider_class": "",
        "endpoint_id": "fal-ai/flux/dev", "kind": "text-to-image",
        "input_schema": import_input_schema(json.loads(FLUX_DEV_DOC)).input_schema,
        "output_mapping": {}, "currency": "USD", "price_per_image": "0",
        "price_per_megapixel": "0.025", "price_per_million_tokens": "0",
        "supports_lora": False, "runner_hint_field": "", "enabled": True,
        "version_label": "1", "fallback": None}
    values.update(changes)
    values.pop("id", None)
    data: dict[str, Any] = {"_save": "Save"}
    for name, value in values.items():
        if isinstance(value, bool):
            if value:
                data[name] = "on"  # an unchecked checkbox is simply absent
        elif isinstance(value, dict | list):
            data[name] = json.dumps(value)
        else:
            data[name] = "" if value is None else str(value)
    # JSON fields have callable defaults, so the admin renders (and the browser posts
    # back) their initial value in a hidden input; Django compares against that.
    for name in ("input_schema", "output_mapping"):
        data[f"initial-{name}"] = json.dumps(saved.get(name, {}))
    return data


class Controls(HTMLParser):
    """The form controls of a page, in document order, with their attributes and options."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.controls: list[dict[str, Any]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("input", "select", "textarea"):
            self.controls.append({"tag": tag, **dict(attrs), "options": []})
        elif tag == "option":
            self.controls[-1]["options"].append(dict(attrs))

    def by_name(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.controls if c.get("name")}


# --- 1. validation on save ------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "message"), [
    ({"input_schema": {"type": "object", "properties": {"prompt": {"type": "strng"}}}},
     "Invalid JSON Schema at properties/prompt/type"),
    ({"input_schema": {"type": "string"}}, "The input schema must describe an object"),
    ({"provider_class": "generation.providers.nowhere.Provider"},
     "&#x27;generation.providers.nowhere.Provider&#x27; is not an allowed provider class."),
    ({"provider": "midjourney"}, "Select a valid choice. midjourney is not one of the"),
])
def test_admin_add_form_refuses_a_bad_schema_or_provider_and_saves_nothing(
        console: Client, changes: dict[str, Any], message: str) -> None:
    before = AIModel.objects.count()
    response = console.post(ADD, form_data(**changes))
    assert response.status_code == 200  # the form again, not a redirect
    assert message in response.content.decode()
    assert AIModel.objects.count() == before


def test_admin_change_form_with_an_invalid_schema_keeps_the_saved_one(console: Client) -> None:
    model = AIModel.objects.get(slug="flux-schnell")
    saved = copy.deepcopy(model.input_schema)
    response = console.post(change_url(model), form_data(
        model, input_schema={"type": "object", "required": "prompt"}))
    assert response.status_code == 200
    assert "Invalid JSON Schema at required" in response.content.decode()
    model.refresh_from_db()
    assert model.input_schema == saved


@pytest.mark.parametrize("provider_class", [
    "os.system",  # importable and callable: all the old lookup asked of a path
    "subprocess.Popen",
    "generation.providers.fal_transport.FalAsyncClient",  # Brenia's, but no provider
    "this.s",  # importing the module prints; the form must not import it at all
])
def test_admin_refuses_a_provider_class_outside_the_allow_list_without_importing_it(
        console: Client, provider_class: str) -> None:
    sys.modules.pop("this", None)
    before = AIModel.objects.count()
    response = console.post(ADD, form_data(provider_class=provider_class))
    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert f"'{provider_class}' is not an allowed provider class." in html
    assert "fal, gemini, generation.providers.fal.FalProvider" in html  # says what is
    assert AIModel.objects.count() == before
    assert "this" not in sys.modules


def test_admin_change_form_cannot_point_a_model_at_an_arbitrary_class(console: Client) -> None:
    model = AIModel.objects.get(slug="flux-schnell")
    response = console.post(change_url(model), form_data(model, provider_class="os.system"))
    assert response.status_code == 200
    assert "is not an allowed provider class" in unescape(response.content.decode())
    model.refresh_from_db()
    assert model.provider_class == ""


@pytest.mark.parametrize("provider_class", ["", "gemini", "generation.providers.fal.FalProvider"])
def test_admin_accepts_a_blank_or_allow_listed_provider_class(
        console: Client, provider_class: str) -> None:
    response = console.post(ADD, form_data(provider_class=provider_class))
    assert response.status_code == 302, unescape(response.content.decode())
    assert AIModel.objects.get(slug="flux-dev-admin").provider_class == provider_class


def test_changelist_filters_by_provider_and_searches(console: Client) -> None:
    gemini = console.get(CHANGELIST, {"provider__exact": "gemini"}).content.decode()
    fal_slugs = AIModel.objects.filter(provider="fal").values_list("slug", flat=True)
    assert all(f">{slug}</a>" not in gemini for slug in fal_slugs)
    found = console.get(CHANGELIST, {"q": "schnell"}).content.decode()
    assert ">flux-schnell</a>" in found
    assert "Import from fal OpenAPI" in found


# --- 2. form preview --------------------------------------------------------------------------

PREVIEW_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["prompt", "image_url"],
    "x-order": ["prompt", "image_url", "image_size", "strength", "steps", "style", "raw",
                "caption", "not-a-property"],
    "properties": {
        "caption": {"type": "string", "maxLength": 80, "default": "Summer sale"},
        "raw": {"type": "boolean", "default": True, "description": "Skip post-processing."},
        "style": {"type": "string", "enum": ["photo", "illustration"], "default": "photo"},
        "steps": {"type": "integer", "minimum": 1, "maximum": 50, "default": 28},
        "strength": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.8},
        "image_size": {"default": "square_hd", "anyOf": [
            {"type": "string", "enum": ["square_hd", "landscape_4_3"]},
            {"type": "object", "properties": {"width": {"type": "integer", "minimum": 64},
                                              "height": {"type": "integer", "minimum": 64}}}]},
        "image_url": {"type": "string", "format": "image-url", "title": "Source image"},
        "prompt": {"type": "string", "maxLength": 2000, "description": "What to show."},
    },
}


def test_preview_renders_one_control_per_property_in_field_order(console: Client) -> None:
    model = AIModel.objects.get(slug="flux-schnell")
    model.input_schema = PREVIEW_SCHEMA
    model.save()
    page = console.get(change_url(model, "preview/"))
    assert page.status_code == 200
    html = page.content.decode()
    form = html[html.index('<form class="schema-preview"'):]
    controls = Controls(form[:form.index("</form>")]).by_name()
    assert [n for n in controls if "__" not in n] == [
        "prompt", "image_url", "image_size", "strength", "steps", "style", "raw", "caption"]
    assert controls["prompt"]["tag"] == "textarea" and "required" in controls["prompt"]
    # An image is a URL or an upload: either will do, so neither control is required.
    assert controls["image_url"]["type"] == "url" and "required" not in controls["image_url"]
    assert (controls["image_url__upload"]["type"],
            controls["image_url__upload"]["accept"]) == (
        "file", "image/png,image/jpeg,image/webp,image/gif")
    assert controls["caption"] | {"options": []} == {
        "tag": "input", "type": "text", "name": "caption", "id": "pv-caption",
        "maxlength": "80", "value": "Summer sale", "options": []}
    assert (controls["steps"]["type"], controls["steps"]["min"], controls["steps"]["max"],
            controls["steps"]["step"], controls["steps"]["value"]) == (
        "number", "1", "50", "1", "28")
    assert (controls["strength"]["step"], controls["strength"]["value"]) == ("any", "0.8")
    assert controls["raw"]["type"] == "checkbox" and "checked" in controls["raw"]
    assert [(o["value"], "selected" in o) for o in controls["style"]["options"]] == [
        ("photo", True), ("illustration", False)]
    size = controls["image_size"]
    assert [o["value"] for o in size["options"]] == ["square_hd", "landscape_4_3", "custom"]
    assert ">custom size</option>" in html
    width = controls["image_size__width"]
    assert (width["min"], width["data-shown-for"], width["data-shown-when"]) == (
        "64", "image_size", "custom")
    assert '<label for="pv-prompt" class="required">' in html
    assert '<div class="helptext" id="pv-raw_helptext">Skip post-processing.</div>' in html
    assert ">Source image:</label>" in html


def test_change_page_embeds_a_disabled_preview_and_links_the_tools(console: Client) -> None:
    model = AIModel.objects.get(slug="flux-schnell")
    html = console.get(change_url(model)).content.decode()
    assert '<fieldset disabled class="schema-preview">' in html
    assert 'name="num_inference_steps"' in html
    assert f'href="{change_url(model, "preview/")}"' in html
    assert f'action="{change_url(model, "duplicate/")}"' in html
    assert f'href="{IMPORT}?target={model.pk}"' in html


def test_preview_escapes_everything_the_schema_says(console: Client) -> None:
    model = AIModel.objects.get(slug="flux-schnell")
    model.input_schema = {"type": "object", "properties": {
        "x<script>": {"type": "string", "title": "<script>alert(1)</script>",
                      "description": "<img src=x onerror=alert(2)>",
                      "enum": ['"><b>bold</b>'], "default": '"><b>bold</b>'}}}
    model.save()
    html = console.get(change_url(model, "preview/")).content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html


TEXT = st.one_of(st.text(max_size=8), st.sampled_from(
    ["<script>", '"><svg onload=x>', "</textarea><i>", "x-order", "string", "integer",
     "number", "boolean", "object", "array", "null", "uri", "image-url"]))
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | TEXT, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(TEXT, inner, max_size=3), max_leaves=12)
KEYWORDS = st.sampled_from(["type", "enum", "default", "anyOf", "oneOf", "title", "description",
                            "format", "minimum", "exclusiveMinimum", "maxLength", "items",
                            "properties", "required", "x-order", "examples", "const",
                            "pattern", "multipleOf", "x-widget"])
PROPERTY = st.dictionaries(KEYWORDS, JSON, max_size=5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(properties=st.dictionaries(TEXT, PROPERTY, max_size=4), order=JSON)
def test_preview_never_fails_or_emits_markup_from_any_schema(properties: Any,
                                                             order: Any) -> None:
    schema = {"type": "object", "properties": properties, "x-order": order}
    unbound = SchemaForm(schema)
    # Bound too, every field given markup: errors and values are escaped as well.
    bound = SchemaForm(schema, data=dict.fromkeys(unbound.fields, "<i>"))
    if bound.is_valid():
        bound.inputs()
    for html in (unbound.as_div(), bound.as_div()):
        assert "<script" not in html and "<svg" not in html and "<i>" not in html


# --- 3. duplicate as new version -------------------------------------------------------------

def test_duplicate_action_creates_the_next_version_disabled(console: Client,
                                                            owner: Persona) -> None:
    source = AIModel.objects.get(slug="flux-schnell")
    response = console.post(CHANGELIST, {"action": "duplicate_as_new_version",
                                         "_selected_action": [source.pk]})
    copy_ = AIModel.objects.get(slug="flux-schnell-v2")
    assert response.status_code == 302 and response["Location"] == change_url(copy_)
    assert (copy_.version_label, copy_.enabled) == ("2", False)
    assert (copy_.input_schema, copy_.endpoint_id, copy_.price_per_megapixel) == (
        source.input_schema, source.endpoint_id, source.price_per_megapixel)
    source.refresh_from_db()
    assert (source.enabled, source.version_label) == (True, "1")
    entry = LogEntry.objects.get(object_id=str(copy_.pk), action_flag=ADDITION)
    assert entry.get_change_message() == "Duplicated from flux-schnell (version 1)."
    # Users see no change until an admin enables the copy.
    refused = owner.api().post_json(f"{GENERATE}?dry_run=true", {
        "model": "flux-schnell-v2", "inputs": {"prompt": "lemonade"}})
    assert refused.status_code == 409 and refused.json()["code"] == "model_disabled"


def test_duplicate_button_takes_the_next_free_slug_and_only_answers_post(
        console: Client) -> None:
    source = AIModel.objects.get(slug="flux-schnell")
    url = change_url(source, "duplicate/")
    assert console.get(url).status_code == 405
    assert console.post(url).status_code == 302
    assert console.post(url).status_code == 302
    copies = AIModel.objects.filter(slug__startswith="flux-schnell-v").order_by("slug")
    assert [(m.slug, m.version_label) for m in copies] == [
        ("flux-schnell-v2", "2"), ("flux-schnell-v3", "3")]
    again = console.post(change_url(copies[0], "duplicate/"))
    newest = AIModel.objects.get(slug="flux-schnell-v4")
    assert again["Location"] == change_url(newest) and newest.version_label == "4"


@pytest.mark.parametrize(("label", "slug", "new_label"), [
    ("v3", "flux-schnell-v4", "v4"), ("1.2", "flux-schnell-v2", "1.3"),
    ("2024-05-09", "flux-schnell-v2", "2024-05-10"), ("beta", "flux-schnell-v2", "beta-2"),
])
def test_duplicate_bumps_the_version_label(console: Client, label: str, slug: str,
                                           new_label: str) -> None:
    source = AIModel.objects.get(slug="flux-schnell")
    AIModel.objects.filter(pk=source.pk).update(version_label=label)
    console.post(change_url(source, "duplicate/"))
    assert AIModel.objects.get(slug=slug).version_label == new_label


# --- 4. import from a fal OpenAPI document ---------------------------------------------------

def import_form(**values: Any) -> dict[str, Any]:
    return {"document": "", "target": "", "slug": "", "display_name": "", "kind": "", **values}


def test_import_creates_a_disabled_fal_model_from_the_openapi_document(
        console: Client) -> None:
    response = console.post(IMPORT, import_form(document=FLUX_DEV_DOC, slug="flux-dev-openapi",
                                                display_name="FLUX.1 [dev]"))
    model = AIModel.objects.get(slug="flux-dev-openapi")
    assert response.status_code == 302 and response["Location"] == change_url(model)
    assert (model.provider, model.endpoint_id, model.kind, model.enabled) == (
        "fal", "fal-ai/flux/dev", "text-to-image", False)
    schema = model.input_schema
    assert check_schema(schema) == [] and "$ref" not in json.dumps(schema)
    assert schema["x-order"] == ["prompt", "num_inference_steps", "seed", "image_size",
                                 "guidance_scale", "sync_mode", "num_images",
                                 "enable_safety_checker", "output_format", "acceleration"]
    assert "x-fal-order-properties" not in json.dumps(schema)
    size = schema["properties"]["image_size"]
    assert size["default"] == "landscape_4_3"
    assert size["anyOf"][0]["properties"]["width"]["exclusiveMinimum"] == 0
    assert schema["properties"]["seed"]["type"] == ["integer", "null"]  # OpenAPI nullable
    assert model.thumbnail_url.startswith("https://fal.media/")
    assert LogEntry.objects.filter(object_id=str(model.pk), action_flag=ADDITION).exists()


def test_import_into_an_existing_model_from_an_upload_logs_what_changed(
        console: Client) -> None:
    target = AIModel.objects.get(slug="flux-schnell")
    upload = SimpleUploadedFile("openapi.json", FLUX_DEV_DOC.encode(), "application/json")
    response = console.post(IMPORT, import_form(target=target.pk, upload=upload))
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.endpoint_id == "fal-ai/flux/dev" and target.enabled
    assert "guidance_scale" in target.input_schema["properties"]
    message = LogEntry.objects.get(object_id=str(target.pk), action_flag=CHANGE).change_message
    assert "added properties 'guidance_scale', 'sync_mode', 'acceleration'" in message
    assert "endpoint_id fal-ai/flux/schnell → fal-ai/flux/dev" in message


def test_import_follows_the_request_body_ref_not_a_name_ending_in_input() -> None:
    document = json.loads(FLUX_DEV_DOC)
    schemas = document["components"]["schemas"]
    schemas["Body_generate"] = schemas.pop("FluxDevTextToImageInput")
    schemas["DecoyInput"] = {"type": "object", "properties": {"decoy": {"type": "string"}}}
    body = document["paths"]["/fal-ai/flux/dev"]["post"]["requestBody"]
    body["content"]["application/json"]["schema"]["$ref"] = "#/components/schemas/Body_generate"
    schemas["ImageSize"]["properties"]["width"] |= {"minimum": 0, "exclusiveMinimum": True}
    imported = import_input_schema(document)
    assert "prompt" in imported.input_schema["properties"]
    width = imported.input_schema["properties"]["image_size"]["anyOf"][0]["properties"]["width"]
    assert width["exclusiveMinimum"] == 0 and "minimum" not in width  # 3.0 boolean form


def _doc(edit: str) -> str:
    document = json.loads(FLUX_DEV_DOC)
    schemas = document["components"]["schemas"]
    if edit == "no_post":
        del document["paths"]["/fal-ai/flux/dev"]
    elif edit == "dangling":
        del schemas["ImageSize"]
    elif edit == "cycle":
        schemas["ImageSize"]["properties"]["again"] = {"$ref": "#/components/schemas/ImageSize"}
    return json.dumps(document)


@pytest.mark.parametrize(("document", "message"), [
    ("{not json", "The document is not valid JSON"),
    ('{"openapi": "3.0.4"}', "it has no &#x27;paths&#x27; object"),
    (_doc("no_post"), "The document has no POST path outside /requests/"),
    (_doc("dangling"), "$ref &#x27;#/components/schemas/ImageSize&#x27; points to nothing"),
    (_doc("cycle"), "The schema is recursive"),
])
def test_import_of_a_bad_document_shows_why_and_changes_nothing(
        console: Client, document: str, message: str) -> None:
    target = AIModel.objects.get(slug="flux-schnell")
    before = model_to_dict(target)
    response = console.post(IMPORT, import_form(document=document, target=target.pk))
    assert response.status_code == 200
    assert message in response.content.decode()
    target.refresh_from_db()
    assert model_to_dict(target) == before
    assert not LogEntry.objects.filter(object_id=str(target.pk)).exists()


def test_import_of_a_category_brenia_lacks_asks_for_a_kind(console: Client) -> None:
    document = json.loads(FLUX_DEV_DOC)
    document["info"]["x-fal-metadata"]["category"] = "text-to-video"
    form = import_form(document=json.dumps(document), slug="flux-video")
    refused = console.post(IMPORT, form)
    assert "category &#x27;text-to-video&#x27; is not a Brenia kind" in refused.content.decode()
    assert not AIModel.objects.filter(slug="flux-video").exists()
    assert console.post(IMPORT, {**form, "kind": "text-to-image"}).status_code == 302
    assert AIModel.objects.get(slug="flux-video").kind == "text-to-image"


# --- 5. change history -----------------------------------------------------------------------

def test_schema_and_price_edits_are_named_in_the_history(console: Client) -> None:
    model = AIModel.objects.get(slug="flux-schnell")
    schema = copy.deepcopy(model.input_schema)
    schema["properties"]["negative_prompt"] = {"type": "string", "maxLength": 500}
    del schema["properties"]["seed"]
    schema["properties"]["num_inference_steps"]["maximum"] = 8
    response = console.post(change_url(model), form_data(
        model, input_schema=schema, price_per_megapixel="0.004"))
    assert response.status_code == 302
    history = unescape(console.get(change_url(model, "history/")).content.decode())
    for words in ("Changed Input schema and Price per megapixel.",
                  "added properties 'negative_prompt'", "removed properties 'seed'",
                  "changed properties 'num_inference_steps'",
                  "price_per_megapixel 0.003 → 0.004"):
        assert words in history


def test_an_edit_outside_schema_and_prices_keeps_djangos_own_message(console: Client) -> None:
    model = AIModel.objects.get(slug="flux-schnell")
    console.post(change_url(model), form_data(model, display_name="FLUX schnell"))
    entry = LogEntry.objects.get(object_id=str(model.pk), action_flag=CHANGE)
    assert entry.get_change_message() == "Changed Display name."


# --- 6. what the admin saves, the API serves ---------------------------------------------------

def test_model_added_in_the_admin_is_callable_at_once_and_disabling_it_refuses_calls(
        console: Client, owner: Persona) -> None:
    assert console.post(ADD, form_data()).status_code == 302
    model = AIModel.objects.get(slug="flux-dev-admin")
    api = owner.api()
    body = {"model": model.slug, "inputs": {"prompt": "lemonade stand at dawn"},
            "options": {"width": 1024, "height": 1024}}

    quote = api.post_json(f"{GENERATE}?dry_run=true", body)
    assert quote.status_code == 200, quote.content
    quoted = quote.json()
    assert (quoted["model"], quoted["valid"], quoted["currency"]) == ("flux-dev-admin", True, "USD")
    assert quoted["provider_arguments"]["image_size"] == {"width": 1024, "height": 1024}
    assert quoted["estimated_cost"] == "0.050000"  # 1.05 MP billed as 2 MP at $0.025
    accepted = api.post_json(GENERATE, body)
    assert accepted.status_code == 202, accepted.content
    assert Job.objects.get(pk=accepted.json()["id"]).model_slug == "flux-dev-admin"

    assert console.post(change_url(model), form_data(model, enabled=False)).status_code == 302
    for url in (f"{GENERATE}?dry_run=true", GENERATE):
        refused = api.post_json(url, body)
        assert refused.status_code == 409
        assert refused.json()["code"] == "model_disabled"


def test_operators_see_any_jobs_images_in_the_admin(client: Any, owner: Any) -> None:
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from generation.models import Image
    from tests.conftest import make_persona
    from tests.generation.factories import make_job

    job = make_job(owner, status="completed")
    name = default_storage.save("images/test/admin-view.png", ContentFile(b"\x89PNG-bytes"))
    image = Image.objects.create(job=job, index=0, file=name, sha256="0" * 64, width=1,
                                 height=1, format="PNG", bytes=11, model_slug="flux-schnell",
                                 model_version="1")
    url = f"/admin/generation/job/{job.pk}/image/{image.pk}/"
    operator = make_persona("operator", staff=True)
    assert client.get(url).status_code == 302  # to the admin login
    client.force_login(operator.user)
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"\x89PNG-bytes"
    assert client.get(f"/admin/generation/job/{job.pk}/image/{job.pk}/").status_code == 404
