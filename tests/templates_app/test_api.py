"""The template API: listing, the form as JSON Schema, quotes, errors, ownership."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from PIL import Image as PILImage

from generation.models import Job
from templates_app.models import BrandKit, TemplateRun
from templates_app.services import ad_template_seed
from tests.conftest import Persona
from tests.templates_app.test_runs import variables_for


@pytest.fixture
def templates(seeded: None) -> None:
    ad_template_seed()


def test_templates_are_listed_with_their_formats(owner: Persona, templates: None) -> None:
    response = owner.api().get_json("/api/templates")
    assert response.status_code == 200
    by_slug = {t["slug"]: t for t in response.json()}
    assert set(by_slug) == {"billboard", "discount-banner", "product-shot"}
    assert {f["slug"] for f in by_slug["billboard"]["formats"]} == {
        "48-sheet", "bulletin", "digital-landscape", "digital-portrait"}
    forty_eight = next(f for f in by_slug["billboard"]["formats"] if f["slug"] == "48-sheet")
    assert (forty_eight["width"], forty_eight["height"]) == (6096, 2032)


def test_template_detail_publishes_its_form_as_json_schema(owner: Persona,
                                                           templates: None) -> None:
    detail = owner.api().get_json("/api/templates/discount-banner").json()
    schema = detail["variables"]
    Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["discount", "product_name"]
    assert schema["properties"]["product_name"]["maxLength"] == 60
    assert Draft202012Validator(schema).is_valid(variables_for("discount-banner"))
    rules = {rule["role"]: rule for rule in detail["price_rules"]}
    assert rules["background"]["model"] == "flux-schnell"
    assert rules["background"]["per"] == "aspect_family"


def test_a_dry_run_quotes_every_step_and_creates_nothing(owner: Persona,
                                                         templates: None) -> None:
    response = owner.api().post_json(
        "/api/templates/discount-banner/runs?dry_run=true",
        {"variables": variables_for("discount-banner"),
         "formats": ["leaderboard", "mobile-banner", "social-square"]})
    assert response.status_code == 200, response.json()
    quote = response.json()
    keys = [step["key"] for step in quote["steps"]]
    # Two strips share one background.
    assert keys == ["background:strip", "background:square", "compose:leaderboard",
                    "compose:mobile-banner", "compose:social-square"]
    assert float(quote["estimated_cost"]) > 0
    assert sum(float(s["estimated_cost"]) for s in quote["steps"]) == pytest.approx(
        float(quote["estimated_cost"]))
    assert TemplateRun.objects.count() == 0 and Job.objects.count() == 0


@pytest.mark.parametrize(("body", "field"), [
    ({"variables": {"product_name": "Lemonade"}}, "variables.discount"),
    ({"variables": {"discount": "30% OFF", "product_name": "x", "colour": "red"}},
     "variables.colour"),
    ({"variables": {"discount": "30% OFF", "product_name": "Lemonade"},
      "formats": ["48-sheet"]}, "formats"),
    ({"variables": {"discount": "30% OFF", "product_name": "Lemonade"}, "brand_kit": 999},
     "brand_kit"),
    ({"variables": {"discount": "30% OFF", "product_name": "Lemonade"},
      "output_format": "tiff"}, "output_format"),
    ({"variables": {"discount": "30% OFF", "product_name": "Lemonade"}, "extra": 1}, "extra"),
])
def test_bad_run_requests_name_the_field_and_change_nothing(
        owner: Persona, templates: None, body: dict[str, Any], field: str) -> None:
    response = owner.api().post_json("/api/templates/discount-banner/runs", body)
    assert response.status_code in (400, 422), response.json()
    assert field in [error["field"] for error in response.json()["errors"]]
    assert TemplateRun.objects.count() == 0 and Job.objects.count() == 0


def test_a_product_photo_on_an_internal_address_is_refused(owner: Persona,
                                                           templates: None) -> None:
    response = owner.api().post_json("/api/templates/product-shot/runs", {
        "variables": {"product_name": "Lemonade",
                      "product_photo": "http://169.254.169.254/latest/photo.png"}})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["variables.product_photo"]


def test_unknown_template_is_404(owner: Persona, templates: None) -> None:
    response = owner.api().post_json("/api/templates/nope/runs", {"variables": {}})
    assert response.status_code == 404
    assert response.json()["code"] == "template_not_found"


def test_a_run_is_started_once_per_idempotency_key_and_hidden_from_others(
        owner: Persona, outsider: Persona, templates: None) -> None:
    body = {"variables": variables_for("discount-banner"), "formats": ["social-square"]}
    first = owner.api().post_json("/api/templates/discount-banner/runs", body,
                                  headers={"Idempotency-Key": "k1"})
    again = owner.api().post_json("/api/templates/discount-banner/runs", body,
                                  headers={"Idempotency-Key": "k1"})
    assert first.status_code == 202, first.json()
    assert again.json()["id"] == first.json()["id"]
    run = first.json()
    assert [s["key"] for s in run["steps"]] == ["background:square", "compose:social-square"]
    assert run["copy"] is None and "copy_" not in run  # a banner's copy is all given
    assert run["estimated_cost"] == "0.003000"  # one megapixel of flux-schnell
    assert run["links"]["events"] == f"/ws/jobs/?job={run['job']}"
    other = owner.api().post_json("/api/templates/discount-banner/runs",
                                  {**body, "formats": ["leaderboard"]},
                                  headers={"Idempotency-Key": "k1"})
    assert other.status_code == 409
    assert owner.api().get_json(f"/api/runs/{run['id']}").status_code == 200
    assert outsider.api().get_json(f"/api/runs/{run['id']}").status_code == 404
    assert outsider.api().post_json(f"/api/runs/{run['id']}/retry").status_code == 404
    assert outsider.api().get_json(f"/api/jobs/{run['job']}").status_code == 404
    assert owner.api().post_json(f"/api/runs/{run['id']}/retry").status_code == 409


def test_brand_kits_are_created_with_a_normalised_logo(owner: Persona, outsider: Persona,
                                                       templates: None) -> None:
    cmyk = PILImage.new("CMYK", (300, 120), (0, 100, 200, 0))
    buffer = io.BytesIO()
    cmyk.save(buffer, "JPEG")
    logo = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    response = owner.api().post_json("/api/brand-kits", {
        "name": "Lemon Co", "palette": ["#0b6e4f", "#f5c518"], "heading_font": "bebas-neue",
        "body_font": "open-sans", "tone": "sunny", "banned_words": ["cheap"], "logo": logo})
    assert response.status_code == 201, response.json()
    kit = BrandKit.objects.get()
    from django.core.files.storage import default_storage
    with default_storage.open(kit.logo.name, "rb") as handle:
        stored = PILImage.open(io.BytesIO(handle.read()))
        assert (stored.format, stored.mode) == ("PNG", "RGBA")
    assert outsider.api().get_json(f"/api/brand-kits/{kit.pk}").status_code == 404
    assert [k["id"] for k in owner.api().get_json("/api/brand-kits").json()] == [kit.pk]


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "X", "palette": ["blue"]}, "palette.0"),
    ({"name": "X", "heading_font": "comic-sans"}, "heading_font"),
    ({"name": "X", "logo": "data:image/png;base64,bm90IGFuIGltYWdl"}, "logo"),
    ({"name": "X", "logo": "https://example.com/logo.png"}, "logo"),
])
def test_bad_brand_kits_name_the_field(owner: Persona, templates: None,
                                       body: dict[str, Any], field: str) -> None:
    response = owner.api().post_json("/api/brand-kits", body)
    assert response.status_code in (400, 422)
    assert field in [e["field"] for e in response.json()["errors"]]
    assert BrandKit.objects.count() == 0


def test_the_openapi_document_has_each_templates_form(owner: Persona, templates: None) -> None:
    from openapi_spec_validator import validate
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    document = owner.api().get_json("/api/openapi.json").json()
    validate(document)
    paths = document["paths"]
    assert "/api/templates/{slug}/runs" not in paths
    runs = {path for path in paths if path.startswith("/api/templates/") and
            path.endswith("/runs")}
    assert runs == {f"/api/templates/{slug}/runs"
                    for slug in ("billboard", "discount-banner", "product-shot")}
    slug = next(p for p in paths["/api/templates/{slug}"]["get"]["parameters"]
                if p["name"] == "slug")
    assert slug["schema"]["enum"] == ["billboard", "discount-banner", "product-shot"]
    operation = paths["/api/templates/product-shot/runs"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    registry = Registry().with_resource("urn:doc", Resource.from_contents(
        document, default_specification=DRAFT202012))
    validator = Draft202012Validator({"$ref": "urn:doc#/components/schemas/"
                                      + ref.rsplit("/", 1)[1]}, registry=registry)
    good = {"variables": variables_for("product-shot"), "formats": ["square"]}
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "formats": ["leaderboard"]})
    assert not validator.is_valid({"variables": {"product_name": "x"}})  # no photo
    assert not validator.is_valid({"variables": {**good["variables"], "headline": "a\x00"}})


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "a\x00b"}, "name"),
    ({"name": "X", "tone": "warm\x00"}, "tone"),
    ({"name": "X", "banned_words": ["ok", "bad\x00"]}, "banned_words.1"),
])
def test_nul_characters_in_a_brand_kit_are_refused(owner: Persona, templates: None,
                                                   body: dict[str, Any], field: str) -> None:
    response = owner.api().post_json("/api/brand-kits", body)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]
    assert BrandKit.objects.count() == 0
