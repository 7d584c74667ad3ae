"""Provider policy: which registry model serves a request that names a kind, not a model.

An integrator or a template step that asks for "a text-to-image model" should not need
to know that fal is down today: operators keep one ``ProviderPolicy`` row per kind in the
admin, and switching every text-to-image request to a Nano Banana model is one edit.
Requests that name a model keep it (``routed_by = "explicit"``); requests resolved here
are recorded with ``routed_by = "policy"``.
"""

from __future__ import annotations

from brenia.errors import Conflict, FieldProblem, InvalidInput
from generation.models import AIModel, ModelKind, ProviderPolicy


def policy_model_for_kind(*, kind: str) -> AIModel:
    """The model the policy names for ``kind``. InvalidInput (field ``kind``) for an
    unknown kind or one without a policy; Conflict if its model is disabled."""
    if kind not in ModelKind.values:
        raise InvalidInput("The request has invalid fields.", errors=[FieldProblem(
            "kind", f"must be one of {', '.join(ModelKind.values)}")])
    policy = ProviderPolicy.objects.select_related("model").filter(kind=kind).first()
    if policy is None:
        raise InvalidInput("No model serves this kind.", errors=[FieldProblem(
            "kind", "has no provider policy: name a model, or ask an operator to set one")])
    if not policy.model.enabled:
        raise Conflict(f"The model {policy.model.slug!r} that serves {kind} is disabled.",
                       code="model_disabled")
    return policy.model
