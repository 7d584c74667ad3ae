"""Provider policy: the model that serves a kind, switched by operators in one change."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from brenia.errors import Conflict, InvalidInput
from generation.models import AIModel, ModelKind, ProviderPolicy
from generation.routing.breaker import CircuitBreaker
from generation.routing.policy import policy_model_for_kind

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
