"""A template that leaves a step's model to the provider policy: operators switch every
such template's backgrounds in one admin change, and each step job records it."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from brenia.errors import InvalidInput
from generation.emulators.server import EmulatorThread
from generation.models import AIModel, Job, ModelKind, ProviderPolicy
from templates_app.models import AdTemplate, RunStatus
from templates_app.services import ad_template_publish, ad_template_seed
from tests.conftest import Persona
from tests.templates_app.test_runs import start

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def templates(seeded: None) -> None:
    ad_template_seed()


def _leave_background_to_policy() -> AdTemplate:
    template = AdTemplate.objects.get(slug="discount-banner")
    template.background_model = None
    template.save()
    return template


def _step_models(run: Any) -> list[tuple[str, str]]:
    return list(Job.objects.filter(parent=run.job, model__isnull=False)
                .values_list("model_slug", "routed_by"))


async def test_a_step_left_to_the_policy_runs_on_its_model_and_follows_a_switch(
        owner: Persona, templates: None, fal_emulator: EmulatorThread) -> None:
    policy = await ProviderPolicy.objects.acreate(
        kind=ModelKind.TEXT_TO_IMAGE, model=await AIModel.objects.aget(slug="flux-dev"))
    template = await sync_to_async(_leave_background_to_policy)()
    await sync_to_async(ad_template_publish)(template=template)
    first = await start(owner, "discount-banner", formats=["social-square"])
    assert first.status == RunStatus.COMPLETED, first.error_message
    assert await sync_to_async(_step_models)(first) == [("flux-dev", "policy")]
    policy.model = await AIModel.objects.aget(slug="flux-schnell")
    await policy.asave()
    second = await start(owner, "discount-banner", formats=["social-square"])
    assert second.status == RunStatus.COMPLETED, second.error_message
    assert await sync_to_async(_step_models)(second) == [("flux-schnell", "policy")]


def test_leaving_a_required_step_empty_needs_a_policy(owner: Persona, templates: None) -> None:
    template = _leave_background_to_policy()
    with pytest.raises(InvalidInput) as refused:
        ad_template_publish(template=template)
    assert [p.field for p in refused.value.errors] == ["background_model"]
    assert "provider policy for text-to-image" in refused.value.errors[0].problem
    policy = ProviderPolicy.objects.create(kind=ModelKind.TEXT_TO_IMAGE,
                                           model=AIModel.objects.get(slug="flux-schnell"))
    ad_template_publish(template=template)
    # The policy removed later: a run is refused before anything is made or charged.
    policy.delete()
    answer = owner.api().post_json("/api/templates/discount-banner/runs", {
        "variables": {"discount": "30% OFF", "product_name": "Lemonade 1 L"},
        "formats": ["social-square"]})
    assert (answer.status_code, answer.json()["code"]) == (409, "template_unavailable")
    assert "provider policy for text-to-image" in answer.json()["message"]
    assert not Job.objects.exists()
