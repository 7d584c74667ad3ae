"""Inputs at the door: JSON depth and string length, free text without control
characters, sizes within the model's schema (and global caps where it sets none), image
data URIs decoded and checked at submit, and the safety checker left on unless allowed.

Every refusal is a 4xx in the one error shape naming the field; none is a 500, and
nothing is created.
"""

from __future__ import annotations

import base64
import copy
import io
import os
import struct
import zlib
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from PIL import Image

from generation.models import AIModel, Job
from templates_app.models import TemplateRun
from templates_app.services import ad_template_seed
from tests.conftest import Persona, make_persona

GENERATE = "/api/images/generate"
QUOTE = GENERATE + "?dry_run=true"
TOO_DEEP = "is nested more than 32 levels deep"

pytestmark = pytest.mark.django_db


def problems(response: Any) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"code", "message", "errors"}
    return {e["field"]: e["problem"] for e in body["errors"]}


def nested(depth: int) -> str:
    """JSON text of ``depth`` arrays inside one another (written out: no recursion)."""
    return "[" * depth + '"x"' + "]" * depth


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def png(size: tuple[int, int] = (16, 16), kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, kind)
    return buffer.getvalue()


def bomb() -> bytes:
    """A PNG that claims 100000 × 100000 pixels in a few dozen bytes."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(
            ">I", zlib.crc32(tag + body))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def browser_for(persona: Persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def reshape(slug: str, change: Any) -> None:
    """Edit a seeded model's input schema, as an admin (or a fal import) might leave it."""
    model = AIModel.objects.get(slug=slug)
    schema = copy.deepcopy(model.input_schema)
    change(schema["properties"])
    model.input_schema = schema
    model.save()


# --- JSON depth and string length -----------------------------------------------------------

@pytest.mark.parametrize("depth", [33, 500, 900])
def test_deeply_nested_json_is_422_naming_the_field_never_500(owner: Persona,
                                                              depth: int) -> None:
    # 500 and 900 levels once reached jsonschema and the NUL walk, and came back as a 500.
    raw = '{"model": "flux-schnell", "inputs": {"prompt": "x"}, "metadata": {"k": ' \
          + nested(depth) + "}}"
    response = owner.api().post_json(QUOTE, raw=raw)
    assert response.status_code == 422
    assert response.json()["code"] == "input_limits"
    assert problems(response) == {"metadata": TOO_DEEP}


def test_json_deeper_than_pythons_own_parser_is_422_not_malformed(owner: Persona) -> None:
    raw = '{"model": "flux-schnell", "inputs": {"prompt": "x", "k": ' + nested(5000) + "}}"
    response = owner.api().post_json(QUOTE, raw=raw)
    assert response.status_code == 422
    assert problems(response) == {"body": TOO_DEEP}


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/api/text/generate?dry_run=true"),
    ("post", "/api/templates/billboard/runs?dry_run=true"),
    ("post", "/api/brand-kits"),
    ("put", "/api/images/6f1c8e4e-8f0e-4d0b-9c7e-0d1b5a3f2c11/rating"),
])
def test_every_json_body_is_held_to_the_same_limits(owner: Persona, method: str,
                                                    path: str) -> None:
    raw = '{"name": ' + nested(40) + "}"
    response = getattr(owner.api(), method)(
        path, data=raw, content_type="application/json",
        headers={"Authorization": f"Bearer {owner.key}"})
    assert response.status_code == 422
    assert problems(response) == {"name": TOO_DEEP}


def test_nesting_within_the_limit_is_accepted(owner: Persona) -> None:
    # The body is one level, metadata's object another: 30 more makes 32.
    raw = '{"model": "flux-schnell", "inputs": {"prompt": "x"}, "metadata": {"k": ' \
          + "[" * 29 + "[1]" + "]" * 29 + "}}"
    assert owner.api().post_json(QUOTE, raw=raw).status_code == 200


def test_a_string_over_64_kib_is_422_but_an_image_data_uri_may_be_longer(
        owner: Persona) -> None:
    response = owner.api().post_json(QUOTE, {"model": "flux-schnell", "inputs": {
        "prompt": "x"}, "metadata": {"note": "x" * 70_000}})
    assert response.status_code == 422
    assert problems(response) == {"metadata.note": "must be at most 65536 characters"}
    noise = Image.frombytes("RGB", (200, 200), os.urandom(200 * 200 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    photo = data_uri(buffer.getvalue())
    assert len(photo) > 64 * 1024
    response = owner.api().post_json(QUOTE, {"model": "image-to-image", "inputs": {
        "prompt": "x", "image_url": photo}})
    assert response.status_code == 200, response.json()


def test_a_lone_surrogate_is_named_before_it_reaches_the_database(owner: Persona) -> None:
    # JSON can spell half a character (\ud800); PostgreSQL's jsonb refused it with a 500.
    raw = ('{"model": "flux-schnell", "inputs": {"prompt": "a\\ud800b"}, '
           '"metadata": {"k\\udfff": 1}}')
    response = owner.api().post_json(GENERATE, raw=raw)
    assert response.status_code == 422
    assert problems(response) == {
        "inputs.prompt": "has characters that are not valid Unicode (a lone surrogate)",
        "metadata": "has a key that is not valid Unicode (a lone surrogate)"}
    assert not Job.objects.exists()


def test_deep_json_in_a_playground_form_is_an_inline_error_not_a_500(
        owner: Persona, gemini_emulator: Any) -> None:
    for depth in (40, 5000):
        response = browser_for(owner).post("/playground/gemini-copy/", {
            "prompt": "Three headlines", "response_schema": nested(depth)})
        assert response.status_code == 422
        assert "This JSON is nested more than 32 levels deep." in response.content.decode()
    assert not Job.objects.exists()


# --- free text ------------------------------------------------------------------------------

def test_control_characters_in_prompts_become_spaces(owner: Persona,
                                                      fal_emulator: Any) -> None:
    response = owner.api().post_json(GENERATE, {"model": "flux-schnell", "inputs": {
        "prompt": "Iced\x01 tea\x1b[31m\x7f\r\nwith\tlemon\x9b"}})
    assert response.status_code == 202, response.json()
    job = Job.objects.get()
    assert job.inputs["prompt"] == "Iced  tea [31m \nwith\tlemon "
    assert job.provider_arguments["prompt"] == job.inputs["prompt"]


def test_nul_is_still_named_not_stripped(owner: Persona) -> None:
    response = owner.api().post_json(QUOTE, {"model": "flux-schnell",
                                             "inputs": {"prompt": "a\x01\x00b"}})
    assert response.status_code == 422
    assert problems(response) == {"inputs.prompt": "must not contain NUL characters"}


def test_free_text_without_a_max_length_is_held_to_10000_characters(owner: Persona) -> None:
    reshape("flux-schnell", lambda props: props["prompt"].pop("maxLength"))
    body = {"model": "flux-schnell", "inputs": {"prompt": "x" * 10_001}}
    response = owner.api().post_json(QUOTE, body)
    assert response.status_code == 422
    assert problems(response) == {"inputs.prompt": "must be at most 10000 characters"}
    body["inputs"]["prompt"] = "x" * 10_000
    assert owner.api().post_json(QUOTE, body).status_code == 200


@pytest.fixture
def templates(seeded: None, fal_emulator: Any, gemini_emulator: Any) -> None:
    ad_template_seed()


def test_template_variables_lose_control_characters_too(owner: Persona,
                                                        templates: None) -> None:
    response = owner.api().post_json("/api/templates/discount-banner/runs", {
        "variables": {"discount": "30%\x07 OFF", "product_name": "Lemon\x1bade"},
        "formats": ["social-square"]})
    assert response.status_code == 202, response.json()
    run = TemplateRun.objects.get()
    assert (run.variables["discount"], run.variables["product_name"]) == (
        "30%  OFF", "Lemon ade")


# --- sizes ----------------------------------------------------------------------------------

def test_an_image_size_over_the_schemas_maximum_names_the_side(owner: Persona) -> None:
    response = owner.api().post_json(QUOTE, {"model": "flux-schnell", "inputs": {
        "prompt": "x", "image_size": {"width": 5000, "height": 1024}}})
    assert response.status_code == 422
    assert problems(response) == {"inputs.image_size": "does not match any accepted form",
                                  "inputs.image_size.width": "must be <= 4096"}


def test_options_may_not_ask_for_more_than_the_models_own_inputs_allow(
        owner: Persona) -> None:
    # options.width passed the common options schema (up to 8192), then reached fal as
    # image_size {8192, 1024}: more than flux-schnell takes.
    response = owner.api().post_json(QUOTE, {"model": "flux-schnell", "inputs": {
        "prompt": "x"}, "options": {"width": 8192, "height": 1024}})
    assert response.status_code == 422
    assert problems(response) == {"options.width": "must be <= 4096"}
    reshape("flux-schnell", lambda props: props["num_images"].update(maximum=2))
    response = owner.api().post_json(QUOTE, {"model": "flux-schnell", "inputs": {
        "prompt": "x"}, "options": {"num_images": 3}})
    assert problems(response) == {"options.num_images": "must be <= 2"}


def _no_maxima(props: dict[str, Any]) -> None:
    sides = props["image_size"]["anyOf"][1]["properties"]
    for side in sides.values():
        side.pop("maximum")
    props["num_images"].pop("maximum")


@pytest.mark.parametrize(("request_body", "expected"), [
    ({"inputs": {"image_size": {"width": 20_000, "height": 512}}},
     {"inputs.image_size.width": "must be <= 14142"}),
    ({"inputs": {"image_size": {"width": 10_000, "height": 9_000}}},
     {"inputs.image_size": "must be at most 40 megapixels (width × height)"}),
    ({"inputs": {"num_images": 50}}, {"inputs.num_images": "must be <= 8"}),
    ({"options": {"width": 8192, "height": 8192}},
     {"options.width": "must be at most 40 megapixels (width × height)"}),
])
def test_where_a_schema_sets_no_maximum_global_caps_apply(
        owner: Persona, request_body: dict[str, Any], expected: dict[str, str]) -> None:
    reshape("flux-schnell", _no_maxima)
    body: dict[str, Any] = {"model": "flux-schnell", "inputs": {"prompt": "x"}}
    body["inputs"].update(request_body.get("inputs", {}))
    body["options"] = request_body.get("options")
    response = owner.api().post_json(QUOTE, body)
    assert response.status_code == 422, response.json()
    assert problems(response) == expected
    response = owner.api().post_json(QUOTE, {"model": "flux-schnell", "inputs": {
        "prompt": "x", "image_size": {"width": 6000, "height": 4000}, "num_images": 8}})
    assert response.status_code == 200  # within the caps


# --- data URIs ------------------------------------------------------------------------------

@pytest.mark.parametrize(("uri", "problem"), [
    ("data:image/png;base64,AAA", "is not valid base64"),
    (data_uri(b"hello, I am not a picture"),
     "is not a PNG, JPEG, WebP or GIF image, or is damaged"),
    (data_uri(png(kind="BMP")), "is not a PNG, JPEG, WebP or GIF image, or is damaged"),
    (data_uri(png()[:60]), "is not a PNG, JPEG, WebP or GIF image, or is damaged"),
    (data_uri(bomb()), "is an image of more than 40 megapixels"),
])
def test_a_bad_image_data_uri_is_refused_at_submit(owner: Persona, uri: str,
                                                   problem: str) -> None:
    # Each of these was accepted and failed later, at the provider.
    response = owner.api().post_json(GENERATE, {"model": "image-to-image", "inputs": {
        "prompt": "x", "image_url": uri}})
    assert response.status_code == 422
    assert problems(response) == {"inputs.image_url": problem}
    assert not Job.objects.exists()


def test_each_image_in_a_list_is_checked_and_named(owner: Persona) -> None:
    response = owner.api().post_json(QUOTE, {"model": "nano-banana", "inputs": {
        "prompt": "x", "reference_image_urls": [data_uri(png()), data_uri(b"nope")]}})
    assert response.status_code == 422
    assert problems(response) == {"inputs.reference_image_urls.1":
                                  "is not a PNG, JPEG, WebP or GIF image, or is damaged"}


def test_an_image_data_uri_in_a_uri_field_is_checked_too(owner: Persona) -> None:
    response = owner.api().post_json(QUOTE, {"model": "flux-lora", "inputs": {
        "prompt": "x", "lora_url": "data:image/png;base64,AAAA"}})
    assert response.status_code == 422
    assert problems(response) == {
        "inputs.lora_url": "is not a PNG, JPEG, WebP or GIF image, or is damaged"}


def test_a_template_photo_that_is_not_an_image_is_named(owner: Persona,
                                                        templates: None) -> None:
    response = owner.api().post_json("/api/templates/product-shot/runs?dry_run=true", {
        "variables": {"product_photo": data_uri(bomb()), "product_name": "Lemonade"}})
    assert response.status_code == 422
    assert problems(response) == {
        "variables.product_photo": "is an image of more than 40 megapixels"}


# --- the safety checker ---------------------------------------------------------------------

CHECKER_OFF = {"model": "flux-schnell", "inputs": {"prompt": "x",
                                                   "enable_safety_checker": False}}
LOCKED = {"inputs.enable_safety_checker":
          "cannot be turned off: your account may not disable the safety checker"}


def allow_checker_off(persona: Persona) -> None:
    persona.user.user_permissions.add(Permission.objects.get(
        codename="disable_safety_checker", content_type__app_label="generation"))


@pytest.mark.parametrize("path", [GENERATE, QUOTE])
def test_turning_the_safety_checker_off_needs_the_permission(owner: Persona,
                                                             path: str) -> None:
    response = owner.api().post_json(path, CHECKER_OFF)
    assert response.status_code == 403  # a valid request, from someone who may not
    assert response.json()["code"] == "not_permitted"
    assert problems(response) == LOCKED
    assert not Job.objects.exists()


def test_the_refusal_is_listed_with_the_requests_other_problems(owner: Persona) -> None:
    response = owner.api().post_json(QUOTE, {"model": "flux-schnell", "inputs": {
        "prompt": "", "enable_safety_checker": False}})
    assert response.status_code == 422
    assert problems(response) == {**LOCKED, "inputs.prompt": "must not be empty"}


def test_leaving_it_on_needs_nothing(owner: Persona, fal_emulator: Any) -> None:
    response = owner.api().post_json(GENERATE, {"model": "flux-schnell", "inputs": {
        "prompt": "x", "enable_safety_checker": True}})
    assert response.status_code == 202


def test_a_user_with_the_permission_or_a_superuser_may_turn_it_off(
        owner: Persona, fal_emulator: Any) -> None:
    allow_checker_off(owner)
    admin = make_persona("root", staff=True)
    for persona in (owner, admin):
        response = persona.api().post_json(GENERATE, CHECKER_OFF)
        assert response.status_code == 202, response.json()
        job = Job.objects.get(user=persona.user)
        assert job.provider_arguments["enable_safety_checker"] is False


def test_the_playground_keeps_the_checker_on_unless_the_user_may_turn_it_off(
        owner: Persona, outsider: Persona, fal_emulator: Any) -> None:
    html = browser_for(owner).get("/playground/flux-schnell/").content.decode()
    box = html.split('name="enable_safety_checker"', 1)[1].split(">", 1)[0]
    assert "disabled" in box and "checked" in box
    assert "Your account cannot turn the safety checker off." in html
    # An unticked box is not posted: for this user it stays on all the same.
    assert browser_for(owner).post("/playground/flux-schnell/",
                                   {"prompt": "x"}).status_code == 302
    assert Job.objects.get(user=owner.user).inputs["enable_safety_checker"] is True
    allow_checker_off(outsider)
    assert browser_for(outsider).post("/playground/flux-schnell/",
                                      {"prompt": "x"}).status_code == 302
    assert Job.objects.get(user=outsider.user).inputs["enable_safety_checker"] is False
