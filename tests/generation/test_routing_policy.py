"""Provider policy: the model that serves a kind, switched by operators in one change."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import IntegrityError, transaction
from django.test import Client

from brenia.errors import Conflict, InvalidInput
from generation.emulators.server import EmulatorThread
from generation.models import AIModel, Job, ModelKind, ProviderPolicy
from generation.routing.breaker import CircuitBreaker
from generation.routing.policy import policy_model_for_kind
from tests.conftest import ApiClient, Persona, run_background_work
from tests.generation.test_api import request_validator

pytestmark = pytest.mark.django_db


def test_a_kind_resolves_to_the_model_its_policy_names(seeded: None) -> None:
    ProviderPolicy.objects.create(kind=ModelKind.TEXT_TO_IMAGE,
                                  model=AIModel.objects.get(slug="flux-schnell"))
    assert policy_model_for_kind(kind="text-to-image").slug == "flux-schnell"


def test_switching_a_kind_to_another_provider_is_one_change(
        seeded: None, admin_client: Client) -> None:
    policy = ProviderPolicy.objects.create(kind=ModelKind.TEXT_TO_IMAGE,
                                           model=AIModel.objects.get(slug="flux-schnell"))
    banana = AIModel.objects.get(slug="nano-banana")
    answer = admin_client.post(f"/admin/generation/providerpolicy/{policy.pk}/change/", {
        "kind": "text-to-image", "model": banana.pk, "note": "fal is down"})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    resolved = policy_model_for_kind(kind="text-to-image")
    assert (resolved.slug, resolved.provider) == ("nano-banana", "gemini")
    assert ProviderPolicy.objects.get().note == "fal is down"


def test_a_kind_without_a_policy_or_unknown_is_named_as_the_bad_field(seeded: None) -> None:
    for kind in ("text-to-image", "video"):
        with pytest.raises(InvalidInput) as refused:
            policy_model_for_kind(kind=kind)
        assert [problem.field for problem in refused.value.errors] == ["kind"]


def test_a_policy_pointing_at_a_disabled_model_is_a_conflict(seeded: None) -> None:
    model = AIModel.objects.get(slug="flux-dev")
    ProviderPolicy.objects.create(kind=ModelKind.TEXT_TO_IMAGE, model=model)
    AIModel.objects.filter(pk=model.pk).update(enabled=False)
    with pytest.raises(Conflict) as refused:
        policy_model_for_kind(kind="text-to-image")
    assert refused.value.code == "model_disabled"


def test_one_policy_per_kind(seeded: None) -> None:
    copy = AIModel.objects.get(slug="gemini-copy")
    ProviderPolicy.objects.create(kind=ModelKind.TEXT, model=copy)
    with pytest.raises(IntegrityError), transaction.atomic():
        ProviderPolicy.objects.create(kind=ModelKind.TEXT, model=copy)


def test_the_policy_list_shows_each_model_s_breaker(seeded: None, admin_client: Client,
                                                      settings: Any) -> None:
    ProviderPolicy.objects.create(kind=ModelKind.TEXT_TO_IMAGE,
                                  model=AIModel.objects.get(slug="flux-schnell"))
    breaker = CircuitBreaker("fal:fal-ai/flux/schnell", failures=1)
    breaker.record_failure()
    page = admin_client.get("/admin/generation/providerpolicy/").content.decode()
    assert "flux-schnell" in page
    assert "open (probe in" in page


# -- requests that name a kind ---------------------------------------------------------


def _policy(kind: str, slug: str) -> ProviderPolicy:
    return ProviderPolicy.objects.create(kind=kind, model=AIModel.objects.get(slug=slug))


def _kind_body(**extra: Any) -> dict[str, Any]:
    return {"kind": "text-to-image", "inputs": {"prompt": "a lemonade stand at dawn"},
            "options": {"width": 256, "height": 256}, **extra}


@pytest.mark.django_db(transaction=True)
def test_a_request_naming_a_kind_runs_on_the_policy_s_model_and_says_so(
        owner: Persona, fal_emulator: EmulatorThread, gemini_emulator: EmulatorThread,
        admin_client: Client) -> None:
    policy = _policy(ModelKind.TEXT_TO_IMAGE, "flux-schnell")
    api = owner.api()
    accepted = api.post_json("/api/images/generate", _kind_body())
    assert accepted.status_code == 202, accepted.json()
    async_to_sync(run_background_work)()
    first = api.get_json(f"/api/jobs/{accepted.json()['id']}").json()
    assert (first["status"], first["model"], first["routed_by"]) == \
        ("completed", "flux-schnell", "policy")
    assert first["images"] and Decimal(first["cost"]) > 0
    # fal is down: an operator points the kind at Nano Banana in one change.
    banana = AIModel.objects.get(slug="nano-banana")
    answer = admin_client.post(f"/admin/generation/providerpolicy/{policy.pk}/change/", {
        "kind": "text-to-image", "model": banana.pk, "note": "fal is down"})
    assert answer.status_code == 302
    accepted = api.post_json("/api/images/generate", _kind_body(options=None))
    assert accepted.status_code == 202, accepted.json()
    async_to_sync(run_background_work)()
    second = api.get_json(f"/api/jobs/{accepted.json()['id']}").json()
    assert (second["status"], second["model"], second["routed_by"]) == \
        ("completed", "nano-banana", "policy")
    # A request naming a model keeps it, whatever the policy says.
    named = Job.objects.create(user=owner.user, model=banana, model_slug="nano-banana")
    assert api.get_json(f"/api/jobs/{named.pk}").json()["routed_by"] == "explicit"


def test_a_dry_run_naming_a_kind_quotes_the_policy_s_model(owner: Persona) -> None:
    _policy(ModelKind.TEXT_TO_IMAGE, "flux-dev")
    quote = owner.api().post_json("/api/images/generate?dry_run=true", _kind_body())
    assert quote.status_code == 200, quote.json()
    assert (quote.json()["model"], quote.json()["valid"]) == ("flux-dev", True)


@pytest.mark.parametrize(("body", "field"), [
    (_kind_body(), "kind"),  # no policy for text-to-image yet
    (_kind_body(model="flux-dev"), "kind"),  # both
    ({"inputs": {"prompt": "x"}}, "model"),  # neither
    (_kind_body(kind="text"), "kind"),  # a text kind at the images endpoint
    (_kind_body(kind="video"), "kind"),
])
def test_a_request_that_names_no_servable_model_is_refused_naming_the_field(
        owner: Persona, body: dict[str, Any], field: str) -> None:
    for dry_run in ("", "?dry_run=true"):
        answer = owner.api().post_json("/api/images/generate" + dry_run, body)
        assert answer.status_code == 422, answer.json()
        assert field in {problem["field"] for problem in answer.json()["errors"]}
    assert not Job.objects.exists()


def test_a_kind_whose_policy_model_is_disabled_is_a_conflict(owner: Persona) -> None:
    _policy(ModelKind.TEXT_TO_IMAGE, "flux-dev")
    AIModel.objects.filter(slug="flux-dev").update(enabled=False)
    answer = owner.api().post_json("/api/images/generate", _kind_body())
    assert (answer.status_code, answer.json()["code"]) == (409, "model_disabled")
    assert not Job.objects.exists()


def test_the_text_endpoint_takes_the_text_kind(owner: Persona) -> None:
    _policy(ModelKind.TEXT, "gemini-copy")
    quote = owner.api().post_json("/api/text/generate?dry_run=true",
                                  {"kind": "text", "inputs": {"prompt": "a slogan"}})
    assert (quote.status_code, quote.json()["model"]) == (200, "gemini-copy")


def test_the_document_offers_a_body_per_kind_with_a_policy(owner: Persona) -> None:
    def union() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        document = json.loads(ApiClient().get("/api/openapi.json").content)
        schemas = document["components"]["schemas"]
        one_of = document["paths"]["/api/images/generate"]["post"]["requestBody"][
            "content"]["application/json"]["schema"]["oneOf"]
        return document, [schemas[ref["$ref"].rsplit("/", 1)[1]] for ref in one_of]

    _, bodies = union()
    assert not [body for body in bodies if "kind" in body["properties"]]
    _policy(ModelKind.TEXT_TO_IMAGE, "flux-lora")
    document, bodies = union()
    (by_kind,) = [body for body in bodies if "kind" in body["properties"]]
    assert by_kind["properties"]["kind"]["const"] == "text-to-image"
    assert "model" not in by_kind["properties"] and "kind" in by_kind["required"]
    # The inputs are the policy model's now: flux-lora needs its LoRA.
    assert by_kind["properties"]["inputs"]["allOf"][0]["required"] == ["prompt", "lora_url"]
    validator = request_validator(document, "/api/images/generate")
    good = {"kind": "text-to-image",
            "inputs": {"prompt": "x", "lora_url": "https://cdn.example.com/a.safetensors"}}
    assert not list(validator.iter_errors(good))
    assert list(validator.iter_errors({**good, "model": "flux-lora"}))
    assert list(validator.iter_errors({**good, "kind": "image-to-image"}))
    assert owner.api().post_json("/api/images/generate?dry_run=true", good).status_code == 200


def test_the_seed_gives_every_kind_a_policy_and_keeps_operators_choices(seeded: None) -> None:
    from generation.registry.services import policy_seed

    assert policy_seed() == len(ModelKind.values)
    policy = ProviderPolicy.objects.get(kind=ModelKind.TEXT_TO_IMAGE)
    policy.model = AIModel.objects.get(slug="nano-banana")
    policy.save()
    assert policy_seed() == 0
    assert policy_model_for_kind(kind="text-to-image").slug == "nano-banana"
    assert policy_model_for_kind(kind="text").slug == "gemini-copy"
