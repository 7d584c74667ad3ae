"""Each enabled registry model's own request schema, in the OpenAPI document.

``POST /api/images/generate`` and ``POST /api/text/generate`` accept a union of
per-model bodies discriminated by ``model``; it is rebuilt from the registry every
time the document is requested, so the docs stay right when an admin edits a model.

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

from generation.models import AIModel, ModelKind
from generation.registry.validation import (
    FORMAT_REGEXES,
    OPTIONS_SCHEMA,
    anchored,
    closed_schema,
)

ENDPOINTS = {"/images/generate": "image", "/text/generate": "text"}
COMPONENTS = "#/components/schemas/"
# Brenia formats that JSON Schema also defines (the rest, like image-url, are ours).
STANDARD_FORMATS = frozenset({"uri"})
# Values that are data, not subschemas: never rewritten.
DATA_KEYWORDS = frozenset({"const", "default", "enum", "example", "examples"})
# No database stores NUL in text or JSON, so the API refuses it (422) in inputs and
# metadata; the document says so with this pattern and the component below.
NUL_FREE = r"^[^\x00]*$"
JSON_WITHOUT_NUL = "JsonWithoutNul"


def _component_name(slug: str) -> str:
    return "Generate_" + re.sub(r"[^A-Za-z0-9]+", "_", slug)


def _json_without_nul() -> dict[str, Any]:
    # One schema for every JSON type (each keyword applies to its own type only), and
    # recursion through additionalProperties and unevaluatedItems rather than anyOf
    # or items: tools that walk those (openapi-spec-validator) loop on a cycle.
    ref = {"$ref": COMPONENTS + JSON_WITHOUT_NUL}
    return {
        "title": "JSON without NUL characters",
        "description": "No NUL (U+0000) in any string or key: no database stores it.",
        "pattern": NUL_FREE,
        "propertyNames": {"pattern": NUL_FREE},
        "additionalProperties": ref,
        "unevaluatedItems": ref,
    }


def _documented(node: Any, base: str) -> Any:
    """A copy of an admin-written schema that reads the same inside the document.

    Local ``$ref``s (``#/$defs/…``) are rebased onto where the schema now sits, and
    every Brenia format gets the ``pattern`` its check applies, so clients and
    generic validators know what ``image-url`` means without reading our code.
    """
    if isinstance(node, list):
        return [_documented(item, base) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: value if key in DATA_KEYWORDS else _documented(value, base)
              for key, value in node.items()}
    ref = result.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        result["$ref"] = base + ref[1:]
    regex = FORMAT_REGEXES.get(result["format"]) if isinstance(result.get("format"), str) \
        else None
    if regex is not None:
        if result["format"] in STANDARD_FORMATS:
            # The pattern says exactly what the API takes, a subset of the standard
            # format's strings; keeping both only sends fuzzers hunting for strings
            # that match the pattern yet break the format, and there are none.
            del result["format"]
        if "pattern" in result:  # the admin's own pattern applies as well
            result["allOf"] = [*result.get("allOf", []), {"pattern": anchored(regex)}]
        else:
            result["pattern"] = anchored(regex)
    return result


def model_request_schema(model: AIModel, body: dict[str, Any], name: str) -> dict[str, Any]:
    """The endpoint's request ``body`` schema narrowed to ``model``, for component ``name``."""
    schema = copy.deepcopy(body)
    schema["title"] = model.display_name
    schema["description"] = model.description
    properties = schema.setdefault("properties", {})
    nul_free = {"$ref": COMPONENTS + JSON_WITHOUT_NUL}
    properties["model"] = {"type": "string", "const": model.slug, "enum": [model.slug]}
    inputs = closed_schema(model.input_schema)
    inputs.setdefault("title", f"{model.display_name} inputs")
    base = f"{COMPONENTS}{name}/properties/inputs/allOf/0"
    properties["inputs"] = {"allOf": [_documented(inputs, base), nul_free]}
    if "options" in properties:
        properties["options"] = {
            "description": properties["options"].get("description", ""),
            "anyOf": [copy.deepcopy(OPTIONS_SCHEMA), {"type": "null"}]}
    if "metadata" in properties:
        properties["metadata"] = {
            "description": properties["metadata"].get("description", ""),
            "anyOf": [{"type": "object", "propertyNames": {"pattern": NUL_FREE},
                       "additionalProperties": nul_free}, {"type": "null"}]}
    return schema


def _body_schema(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any] | None:
    """The schema ninja wrote for an operation's JSON body, its ``$ref`` followed."""
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = content.get("schema", {})
    ref = schema.get("$ref", "")
    if ref.startswith(COMPONENTS):
        schema = document["components"]["schemas"].get(ref[len(COMPONENTS):], {})
    return schema if schema.get("properties") else None


def extend_openapi(document: dict[str, Any]) -> None:
    components = document.setdefault("components", {}).setdefault("schemas", {})
    models = list(AIModel.objects.filter(enabled=True).order_by("slug"))
    for path, operations in document.get("paths", {}).items():
        output = next((o for suffix, o in ENDPOINTS.items() if path.endswith(suffix)), None)
        if output is None or "post" not in operations:
            continue
        body = _body_schema(document, operations["post"])
        chosen = [m for m in models if (m.kind == ModelKind.TEXT) == (output == "text")]
        if body is None or not chosen:
            continue
        components[JSON_WITHOUT_NUL] = _json_without_nul()
        refs = {}
        for model in chosen:
            name = _component_name(model.slug)
            components[name] = model_request_schema(model, body, name)
            refs[model.slug] = COMPONENTS + name
        operations["post"]["requestBody"]["content"]["application/json"] = {"schema": {
            "oneOf": [{"$ref": ref} for ref in refs.values()],
            "discriminator": {"propertyName": "model", "mapping": refs},
        }}
