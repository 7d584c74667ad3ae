"""Reading a model's input schema out of fal's per-model queue OpenAPI document.

fal publishes one OpenAPI document per endpoint: queue status/cancel/result paths
under ``/<id>/requests/…`` and one POST path, ``/<id>``, whose request body is the
model's input. This module turns that body into the plain JSON Schema Brenia
stores in ``AIModel.input_schema``: every ``$ref`` inlined (the registry row must
stand alone), field order kept as ``x-order``, OpenAPI 3.0 dialect converted to
what the Draft 2020-12 validator expects. It reads only; it never touches a row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from generation.models import ModelKind
from generation.registry.validation import check_schema

# Keys that only mean something to OpenAPI tooling. They are dropped because they
# say nothing to a JSON Schema validator and would confuse an admin reading the row.
OPENAPI_ONLY_KEYS = frozenset({"discriminator", "xml", "externalDocs", "example"})
# Keys whose values are data, not schemas: copied verbatim, never converted.
DATA_KEYS = frozenset({"default", "enum", "const", "examples", "required"})
REF_DEPTH_LIMIT = 64


class OpenAPIImportError(ValueError):
    """The document cannot yield an input schema; the message says why, for the admin."""


@dataclass(frozen=True)
class ImportedSchema:
    """What a fal OpenAPI document says about one model."""

    endpoint_id: str
    input_schema: dict[str, Any]
    kind: str | None  # a ModelKind value, or None when the category is not one of ours
    category: str
    thumbnail_url: str


def parse_document(text: str) -> dict[str, Any]:
    """Parse pasted or uploaded text as an OpenAPI object, or raise OpenAPIImportError."""
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OpenAPIImportError(f"The document is not valid JSON: {exc}.") from None
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        raise OpenAPIImportError("The document is not an OpenAPI document: it has no "
                                 "'paths' object.")
    return document


def import_input_schema(document: dict[str, Any]) -> ImportedSchema:
    """The input schema, endpoint id and kind a fal queue OpenAPI document describes.

    Raises OpenAPIImportError when there is no single POST path outside
    ``/requests/``, when a ``$ref`` dangles or loops, or when the result is not a
    usable JSON Schema for an object.
    """
    info = _object(document.get("info"))
    metadata = _object(info.get("x-fal-metadata"))
    declared_id = str(metadata.get("endpointId") or "").strip("/")
    path, operation = _submit_operation(document, declared_id)
    body = _resolve(document, operation.get("requestBody"), "requestBody")
    content = body.get("content") if isinstance(body, dict) else None
    media = content.get("application/json") if isinstance(content, dict) else None
    if not isinstance(media, dict) or "schema" not in media:
        raise OpenAPIImportError(f"POST {path} has no application/json request body schema.")
    schema = _to_json_schema(_inline(document, media["schema"], ()))
    if not isinstance(schema, dict):
        raise OpenAPIImportError(f"The request body schema of POST {path} is not an object.")
    schema.setdefault("type", "object")
    problems = check_schema(schema)
    if problems:
        raise OpenAPIImportError("The imported schema is not usable: " + " ".join(problems))
    category = str(metadata.get("category") or "")
    kinds = {choice.value for choice in ModelKind}
    return ImportedSchema(
        endpoint_id=declared_id or path.strip("/"),
        input_schema=schema,
        kind=category if category in kinds else None,
        category=category,
        thumbnail_url=str(metadata.get("thumbnailUrl") or ""),
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _submit_operation(document: dict[str, Any], declared_id: str) -> tuple[str, dict[str, Any]]:
    """The one POST that submits a request (the queue's status/cancel paths are not it)."""
    candidates = [
        (path, item["post"]) for path, item in document["paths"].items()
        if isinstance(item, dict) and isinstance(item.get("post"), dict)
        and "/requests/" not in path
    ]
    if declared_id:
        exact = [(p, op) for p, op in candidates if p.strip("/") == declared_id]
        candidates = exact or candidates
    if not candidates:
        raise OpenAPIImportError("The document has no POST path outside /requests/: it is "
                                 "not a model's queue OpenAPI document.")
    if len(candidates) > 1:
        names = ", ".join(sorted(p for p, _ in candidates))
        raise OpenAPIImportError(f"The document has several POST paths ({names}); "
                                 "import one model's document at a time.")
    return candidates[0]


def _lookup(document: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise OpenAPIImportError(f"$ref {ref!r} points outside the document; only local "
                                 "references (#/components/…) can be imported.")
    node: Any = document
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise OpenAPIImportError(f"$ref {ref!r} points to nothing in the document.")
        node = node[part]
    return node


def _resolve(document: dict[str, Any], node: Any, where: str) -> Any:
    """Follow a chain of $refs at one spot (request bodies may be references too)."""
    seen: list[str] = []
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        if node["$ref"] in seen:
            raise OpenAPIImportError(f"{where}: circular $ref {' → '.join(seen)}.")
        seen.append(node["$ref"])
        node = _lookup(document, node["$ref"])
    if node is None:
        raise OpenAPIImportError(f"{where} is missing.")
    return node


def _inline(document: dict[str, Any], node: Any, stack: tuple[str, ...]) -> Any:
    """``node`` with every local $ref replaced by a copy of its target.

    ``stack`` holds the refs being expanded above this point: meeting one again
    means the schema is recursive, which a stored, self-contained schema cannot be.
    """
    if isinstance(node, list):
        return [_inline(document, item, stack) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in stack:
            raise OpenAPIImportError(f"The schema is recursive ({' → '.join([*stack, ref])}); "
                                     "it cannot be stored inline.")
        if len(stack) >= REF_DEPTH_LIMIT:
            raise OpenAPIImportError("The schema nests $refs too deeply to import.")
        # _inline builds new containers, so the document itself is never aliased.
        target = _inline(document, _lookup(document, ref), (*stack, ref))
        siblings = {k: _inline(document, v, stack) for k, v in node.items() if k != "$ref"}
        if isinstance(target, dict):
            # Keys written beside a $ref (a description, a default) refine the target.
            return {**target, **siblings}
        return target
    return {key: _inline(document, value, stack) for key, value in node.items()}


def _to_json_schema(node: Any) -> Any:
    """Convert OpenAPI 3.0 schema dialect to Draft 2020-12, recursively.

    ``nullable`` becomes a "null" type, boolean ``exclusiveMinimum``/``Maximum``
    become numeric bounds, fal's ``x-fal-order-properties`` becomes ``x-order``.
    """
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in OPENAPI_ONLY_KEYS or key == "nullable":
            continue
        if key in ("properties", "$defs", "definitions", "patternProperties",
                   "dependentSchemas") and isinstance(value, dict):
            # Maps of name → schema: the names are not keywords, keep them all.
            out[key] = {name: _to_json_schema(sub) for name, sub in value.items()}
        elif key == "x-fal-order-properties":
            out["x-order"] = list(value) if isinstance(value, list) else value
        elif key in DATA_KEYS or key.startswith("x-"):
            out[key] = value
        else:
            out[key] = _to_json_schema(value)
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        # OpenAPI 3.0: a boolean saying whether the minimum/maximum is exclusive.
        if isinstance(out.get(bound), bool) and out.pop(bound) and limit in out:
            out[bound] = out.pop(limit)
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out
