"""Each enabled registry model's own request schema, in the OpenAPI document.

``POST /api/images/generate`` and ``POST /api/text/generate`` accept a union of
per-model bodies discriminated by ``model``; it is rebuilt from the registry every
time the document is requested, so the docs stay right when an admin edits a model.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from generation.models import AIModel, ModelKind
from generation.registry.validation import OPTIONS_SCHEMA

ENDPOINTS = {"/images/generate": "image", "/text/generate": "text"}


def _component_name(slug: str) -> str:
    return "Generate_" + re.sub(r"[^A-Za-z0-9]+", "_", slug)


def model_request_schema(model: AIModel) -> dict[str, Any]:
    inputs = copy.deepcopy(model.input_schema) or {"type": "object"}
    inputs["additionalProperties"] = False
    inputs.setdefault("title", f"{model.display_name} inputs")
    body: dict[str, Any] = {
        "type": "object",
        "title": model.display_name,
        "description": model.description,
        "required": ["model", "inputs"],
        "additionalProperties": False,
        "properties": {
            "model": {"type": "string", "const": model.slug, "enum": [model.slug]},
            "inputs": inputs,
            "metadata": {"type": "object", "description": "Kept with the job, echoed back"},
        },
    }
    if model.kind != ModelKind.TEXT:
        body["properties"]["options"] = copy.deepcopy(OPTIONS_SCHEMA)
    return body


def extend_openapi(document: dict[str, Any]) -> None:
    components = document.setdefault("components", {}).setdefault("schemas", {})
    models = list(AIModel.objects.filter(enabled=True).order_by("slug"))
    for path, operations in document.get("paths", {}).items():
        output = next((o for suffix, o in ENDPOINTS.items() if path.endswith(suffix)), None)
        if output is None or "post" not in operations:
            continue
        chosen = [m for m in models if (m.kind == ModelKind.TEXT) == (output == "text")]
        refs = {}
        for model in chosen:
            name = _component_name(model.slug)
            components[name] = model_request_schema(model)
            refs[model.slug] = f"#/components/schemas/{name}"
        if not refs:
            continue
        content = operations["post"].setdefault("requestBody", {}).setdefault("content", {})
        content["application/json"] = {"schema": {
            "oneOf": [{"$ref": ref} for ref in refs.values()],
            "discriminator": {"propertyName": "model", "mapping": refs},
        }}
