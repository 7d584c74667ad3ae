"""Each enabled registry model's own request schema, in the OpenAPI document.

``POST /api/images/generate`` and ``POST /api/text/generate`` accept a union of
per-model bodies (``model`` names one) and per-kind bodies (``kind`` names one that
has a provider policy, with the inputs of the model the policy names now); it is
rebuilt from the registry every time the document is requested, so the docs stay
right when an admin edits a model or switches a policy.

The contract: a body validates against the document exactly when the API accepts
it, short of what needs the world to decide (whether a model is still enabled,
whether a URL's host is public, an Idempotency-Key's earlier use). So each body is
the endpoint's own input schema (``GenerateIn`` / ``TextGenerateIn``: webhook_url,
metadata, options and any field added later) with ``model`` and ``inputs`` narrowed
to one model, plus the rules the API enforces beyond the model's schema: URL formats
spelled out as patterns, and no NUL characters anywhere.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from generation.models import AIModel, ModelKind, ProviderPolicy
from generation.registry.documents import (
    COMPONENTS,
    JSON_WITHOUT_NUL,
    NUL_FREE,
    body_schema,
    documented,
    json_without_nul,
)
from generation.registry.validation import closed_schema, options_schema

ENDPOINTS = {"/images/generate": "image", "/text/generate": "text"}
def _component_name(slug: str) -> str:
    return "Generate_" + re.sub(r"[^A-Za-z0-9]+", "_", slug)


def model_request_schema(model: AIModel, body: dict[str, Any], name: str, *,
                         kind: str = "") -> dict[str, Any]:
    """The endpoint's request ``body`` schema narrowed to ``model``, for component ``name``.

    With ``kind``, the body names that kind instead (the policy serves it with ``model``).
    """
    schema = copy.deepcopy(body)
    schema["title"] = f"Any {kind} model (now {model.display_name})" if kind \
        else model.display_name
    schema["description"] = model.description
    properties = schema.setdefault("properties", {})
    nul_free = {"$ref": COMPONENTS + JSON_WITHOUT_NUL}
    named, other = ("kind", "model") if kind else ("model", "kind")
    properties.pop(other, None)
    value = kind or model.slug
    properties[named] = {"type": "string", "const": value, "enum": [value]}
    schema["required"] = sorted({*schema.get("required", []), named} - {other})
    inputs = closed_schema(model.input_schema)
    inputs.setdefault("title", f"{model.display_name} inputs")
    base = f"{COMPONENTS}{name}/properties/inputs/allOf/0"
    properties["inputs"] = {"allOf": [documented(inputs, base), nul_free]}
    if "options" in properties:
        properties["options"] = {
            "description": properties["options"].get("description", ""),
            "anyOf": [options_schema(model.input_schema), {"type": "null"}]}
    if "metadata" in properties:
        properties["metadata"] = {
            "description": properties["metadata"].get("description", ""),
            "anyOf": [{"type": "object", "propertyNames": {"pattern": NUL_FREE},
                       "additionalProperties": nul_free}, {"type": "null"}]}
    return schema


def extend_openapi(document: dict[str, Any]) -> None:
    components = document.setdefault("components", {}).setdefault("schemas", {})
    models = list(AIModel.objects.filter(enabled=True).order_by("slug"))
    policies = list(ProviderPolicy.objects.select_related("model").order_by("kind"))
    for path, operations in document.get("paths", {}).items():
        output = next((o for suffix, o in ENDPOINTS.items() if path.endswith(suffix)), None)
        if output is None or "post" not in operations:
            continue
        body = body_schema(document, operations["post"])
        chosen = [m for m in models if (m.kind == ModelKind.TEXT) == (output == "text")]
        if body is None or not chosen:
            continue
        components[JSON_WITHOUT_NUL] = json_without_nul()
        refs = []
        for model in chosen:
            name = _component_name(model.slug)
            components[name] = model_request_schema(model, body, name)
            refs.append(COMPONENTS + name)
        for policy in policies:
            if policy.model.enabled and (policy.kind == ModelKind.TEXT) == (output == "text"):
                name = _component_name(f"kind-{policy.kind}")
                components[name] = model_request_schema(policy.model, body, name,
                                                         kind=policy.kind)
                refs.append(COMPONENTS + name)
        # No discriminator: a body names a model or a kind, never both (each variant
        # lacks the other property and forbids extra ones), so exactly one matches.
        operations["post"]["requestBody"]["content"]["application/json"] = {"schema": {
            "oneOf": [{"$ref": ref} for ref in refs]}}
