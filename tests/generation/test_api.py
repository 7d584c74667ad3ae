"""The generation API: models, dry runs, idempotency, listing, cancel, ownership."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.db import connection
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from generation.models import AIModel, Job, JobStatus
from generation.registry.services import seed_rows
from tests.conftest import ApiClient, Persona
from tests.generation.factories import make_job
from tests.generation.samples import valid_inputs

SEEDED = [row["slug"] for row in seed_rows()]
TEXT_MODELS = {row["slug"] for row in seed_rows() if row["kind"] == "text"}


def endpoint(slug: str) -> str:
    return "/api/text/generate" if slug in TEXT_MODELS else "/api/images/generate"


@pytest.mark.parametrize("slug", SEEDED)
def test_every_seeded_model_accepts_a_valid_request(owner: Persona, slug: str) -> None:
    response = owner.api().post_json(endpoint(slug) + "?dry_run=true",
                                     {"model": slug, "inputs": valid_inputs(slug)})
    assert response.status_code == 200, response.json()
    quote = response.json()
    assert quote["valid"] is True
    assert quote["model"] == slug
    assert Job.objects.count() == 0  # a dry run creates nothing


def test_dry_run_quotes_by_megapixel(owner: Persona) -> None:
    quote = owner.api().post_json("/api/images/generate?dry_run=true", {
        "model": "flux-dev", "inputs": {"prompt": "x"},
        "options": {"width": 2048, "height": 1024, "num_images": 2}}).json()
    assert quote["estimated_cost"] == "0.150000"  # 2.1 MP billed as 3 MP, at $0.025, for 2 images
    assert quote["provider_arguments"]["image_size"] == {"width": 2048, "height": 1024}


def test_an_image_model_on_the_text_endpoint_names_the_model_field(owner: Persona) -> None:
    response = owner.api().post_json("/api/text/generate",
                                     {"model": "flux-schnell", "inputs": {"prompt": "x"}})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "model", "problem": "is a image model: use /api/images/generate"}]


def test_generate_creates_a_job_with_links(owner: Persona) -> None:
    response = owner.api().post_json("/api/images/generate", {
        "model": "flux-schnell", "inputs": {"prompt": "x"}, "metadata": {"campaign": "summer"}})
    assert response.status_code == 202
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    assert job.user == owner.user
    assert job.metadata == {"campaign": "summer"}
    assert body["links"]["self"] == f"/api/jobs/{job.pk}"


def test_idempotency_key_replays_and_conflicts(owner: Persona) -> None:
    api = owner.api()
    body = {"model": "flux-schnell", "inputs": {"prompt": "same"}}
    first = api.post_json("/api/images/generate", body, headers={"Idempotency-Key": "abc"})
    again = api.post_json("/api/images/generate", body, headers={"Idempotency-Key": "abc"})
    other = api.post_json("/api/images/generate", {**body, "inputs": {"prompt": "else"}},
                          headers={"Idempotency-Key": "abc"})
    assert first.json()["id"] == again.json()["id"]
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"
    assert Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_with_one_idempotency_key_make_one_job(owner: Persona) -> None:
    body = {"model": "flux-schnell", "inputs": {"prompt": "race"}}
    ids: list[str] = []
    errors: list[Any] = []

    def post() -> None:
        try:
            response = ApiClient(owner.key).post_json(
                "/api/images/generate", body, headers={"Idempotency-Key": "race-1"})
            ids.append(response.json().get("id", response.status_code))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(ids)) == 1, ids
    assert Job.objects.filter(idempotency_key="race-1").count() == 1


def test_models_list_shows_enabled_models_with_schema_and_price(owner: Persona) -> None:
    AIModel.objects.filter(slug="flux-pro").update(enabled=False)
    models = {m["slug"]: m for m in owner.api().get_json("/api/models").json()}
    assert "flux-pro" not in models
    assert set(models) == set(SEEDED) - {"flux-pro"}
    schnell = models["flux-schnell"]
    assert schnell["price_per_megapixel"] == "0.003000"
    assert schnell["input_schema"]["required"] == ["prompt"]
    assert owner.api().get_json("/api/models/flux-pro").status_code == 404
    assert owner.api().get_json("/api/models/gemini-copy").json()["kind"] == "text"


def test_jobs_list_filters_and_paginates_only_own_jobs(owner: Persona, outsider: Persona) -> None:
    for _ in range(3):
        make_job(owner)
    make_job(owner, status=JobStatus.COMPLETED)
    make_job(outsider)
    api = owner.api()
    page = api.get_json("/api/jobs?limit=2").json()
    assert page["count"] == 4 and len(page["items"]) == 2
    done = api.get_json("/api/jobs?status=completed").json()
    assert [j["status"] for j in done["items"]] == ["completed"]
    assert api.get_json("/api/jobs?model=flux-dev").json()["count"] == 0
    future = api.get_json("/api/jobs?created_after=2999-01-01T00:00:00Z").json()
    assert future["count"] == 0


def test_cancel_queued_then_finished(owner: Persona) -> None:
    queued = make_job(owner)
    response = owner.api().post_json(f"/api/jobs/{queued.pk}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    again = owner.api().post_json(f"/api/jobs/{queued.pk}/cancel")
    assert again.status_code == 409
    assert again.json()["code"] == "job_not_cancellable"


def test_another_users_job_is_404_on_every_route(owner: Persona, outsider: Persona) -> None:
    job = make_job(owner, status=JobStatus.SUBMITTED)
    api = outsider.api()
    assert api.get_json(f"/api/jobs/{job.pk}").status_code == 404
    assert api.post_json(f"/api/jobs/{job.pk}/cancel").status_code == 404
    assert api.get_json("/api/jobs").json()["count"] == 0
    job.refresh_from_db()
    assert job.status == JobStatus.SUBMITTED


def test_openapi_document_validates_and_carries_each_models_schema(owner: Persona) -> None:
    document = json.loads(ApiClient().get("/api/openapi.json").content)
    validate(document)
    schemas = document["components"]["schemas"]
    body = document["paths"]["/api/images/generate"]["post"]["requestBody"]
    union = body["content"]["application/json"]["schema"]
    assert set(union_models(document, union)) == set(SEEDED) - TEXT_MODELS
    lora, nul_free = schemas["Generate_flux_lora"]["properties"]["inputs"]["allOf"]
    assert lora["required"] == ["prompt", "lora_url"]
    assert nul_free == {"$ref": "#/components/schemas/JsonWithoutNul"}
    # Every field the endpoint takes besides the model's inputs is there, and no other.
    body = schemas["Generate_flux_lora"]
    assert set(body["properties"]) == {"model", "inputs", "options", "metadata", "webhook_url",
                                       "team", "cache"}
    assert "model" in body["required"]
    assert body["additionalProperties"] is False
    assert set(schemas["Generate_gemini_copy"]["properties"]) == {
        "model", "inputs", "metadata", "webhook_url", "team", "cache"}


def union_models(document: dict[str, Any], union: dict[str, Any]) -> list[str]:
    """The model slugs of the per-model bodies in a generate endpoint's union."""
    schemas = document["components"]["schemas"]
    bodies = [schemas[ref["$ref"].rsplit("/", 1)[1]] for ref in union["oneOf"]]
    return [body["properties"]["model"]["const"] for body in bodies
            if "model" in body["properties"]]


def test_openapi_document_follows_registry_edits(owner: Persona) -> None:
    AIModel.objects.filter(slug="flux-pro").update(enabled=False)
    schema = AIModel.objects.get(slug="flux-dev").input_schema
    schema["properties"]["style"] = {"type": "string", "enum": ["bold", "calm"]}
    AIModel.objects.filter(slug="flux-dev").update(input_schema=schema)
    document = json.loads(ApiClient().get("/api/openapi.json").content)
    union = document["paths"]["/api/images/generate"]["post"]["requestBody"][
        "content"]["application/json"]["schema"]
    assert "flux-pro" not in union_models(document, union)
    dev = document["components"]["schemas"]["Generate_flux_dev"]["properties"]["inputs"]
    assert dev["allOf"][0]["properties"]["style"]["enum"] == ["bold", "calm"]


@pytest.mark.parametrize(("slug", "inputs", "quote"), [
    ("nano-banana", {"prompt": "x"}, "0.038700"),  # 1290 image tokens at $30/M
    ("nano-banana-2", {"prompt": "x", "image_size": "4K"}, "0.151200"),  # 2520 at $60/M
    ("nano-banana-pro", {"prompt": "x"}, "0.134400"),  # 1120 at $120/M
    ("face-swap", valid_inputs("face-swap"), "0.020000"),  # per image
])
def test_token_and_per_image_models_are_quoted_before_anything_is_spent(
        owner: Persona, slug: str, inputs: dict[str, Any], quote: str) -> None:
    response = owner.api().post_json("/api/images/generate?dry_run=true",
                                     {"model": slug, "inputs": inputs})
    assert response.json()["estimated_cost"] == quote


def request_validator(document: dict[str, Any], path: str) -> Draft202012Validator:
    """Validates a JSON body against the document's schema for POST ``path``."""
    uri = "urn:brenia:openapi"
    pointer = ("/paths/" + path.replace("/", "~1")
               + "/post/requestBody/content/application~1json/schema")
    registry = Registry().with_resource(uri, Resource.from_contents(
        document, default_specification=DRAFT202012))
    return Draft202012Validator({"$ref": f"{uri}#{pointer}"}, registry=registry)


@pytest.mark.parametrize("slug", SEEDED)
def test_every_body_the_api_accepts_the_document_accepts(owner: Persona, slug: str,
                                                         settings: Any) -> None:
    settings.BRENIA_WEBHOOK_ALLOWED_HOSTS = ["hooks.example.com"]  # no DNS offline
    document = json.loads(ApiClient().get("/api/openapi.json").content)
    body: dict[str, Any] = {"model": slug, "inputs": valid_inputs(slug),
                            "metadata": {"campaign": "summer", "tags": ["a", 1, None]},
                            "webhook_url": "https://hooks.example.com:8443/brenia?x=1"}
    if slug not in TEXT_MODELS:
        body["options"] = {"width": 1024, "height": 768, "seed": 7, "priority": "low"}
    validator = request_validator(document, endpoint(slug))
    assert not list(validator.iter_errors(body))
    for blank in ({"metadata": None, "webhook_url": None}, {"webhook_url": ""}):
        assert not list(validator.iter_errors({**body, **blank}))
    response = owner.api().post_json(endpoint(slug) + "?dry_run=true", body)
    assert response.status_code == 200, response.json()


@pytest.mark.parametrize(("change", "field"), [
    ({"userId": "u1"}, "userId"),
    ({"metadata": {"k": "a\u0000b"}}, "metadata.k"),
    ({"metadata": ["not", "an", "object"]}, "metadata"),
    ({"webhook_url": "ftp://hooks.example.com/x"}, "webhook_url"),
    ({"webhook_url": "http://hooks.example.com:70000/x"}, "webhook_url"),
    ({"inputs": {"prompt": "x", "image_url": "data:text/plain;base64,aGk="}}, "inputs.image_url"),
    ({"inputs": {"prompt": "x", "image_url": "http://[::1/x.png"}}, "inputs.image_url"),
    ({"inputs": {"prompt": "x\u0000", "image_url": "https://cdn.example.com/a.png"}},
     "inputs.prompt"),
    ({"options": {"width": 100}}, "options.height"),
])
def test_every_body_the_document_refuses_the_api_refuses(
        owner: Persona, change: dict[str, Any], field: str) -> None:
    document = json.loads(ApiClient().get("/api/openapi.json").content)
    body = {"model": "image-to-image",
            "inputs": {"prompt": "x", "image_url": "https://cdn.example.com/a.png"}, **change}
    assert list(request_validator(document, "/api/images/generate").iter_errors(body))
    response = owner.api().post_json("/api/images/generate?dry_run=true", body)
    assert response.status_code == 422
    assert field in {e["field"] for e in response.json()["errors"]}


def test_every_operation_declares_its_errors_in_the_one_shape(owner: Persona) -> None:
    document = json.loads(ApiClient().get("/api/openapi.json").content)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            expected = {"401", "500"} | ({"403", "413"} if method == "post" else set())
            if "requestBody" in operation:
                expected |= {"400", "422"}
            assert expected <= set(responses), (method, path)
            for status in {s for s in responses if s.startswith(("4", "5"))}:
                assert responses[status]["content"] == error, (method, path, status)
    content = document["paths"]["/api/images/{image_id}/content"]["get"]["responses"]
    assert "image/png" in content["200"]["content"]
    assert content["302"]["headers"]["Location"]["required"] is True
