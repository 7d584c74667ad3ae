"""Schemas as the OpenAPI document shows them: shared by every app that puts its own
per-row request schemas (registry models, template forms) into the document."""

from __future__ import annotations

from typing import Any

from generation.registry.validation import FORMAT_REGEXES, anchored

COMPONENTS = "#/components/schemas/"
# Brenia formats that JSON Schema also defines (the rest, like image-url, are ours).
STANDARD_FORMATS = frozenset({"uri"})
# Values that are data, not subschemas: never rewritten.
DATA_KEYWORDS = frozenset({"const", "default", "enum", "example", "examples"})
# No database stores NUL in text or JSON, so the API refuses it (422) in inputs and
# metadata; the document says so with this pattern and the component below.
NUL_FREE = r"^[^\x00]*$"
JSON_WITHOUT_NUL = "JsonWithoutNul"


def json_without_nul() -> dict[str, Any]:
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


def documented(node: Any, base: str) -> Any:
    """A copy of an admin-written schema that reads the same inside the document.

    Local ``$ref``s (``#/$defs/…``) are rebased onto where the schema now sits, and
    every Brenia format gets the ``pattern`` its check applies, so clients and
    generic validators know what ``image-url`` means without reading our code.
    """
    if isinstance(node, list):
        return [documented(item, base) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: value if key in DATA_KEYWORDS else documented(value, base)
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


def body_schema(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any] | None:
    """The schema ninja wrote for an operation's JSON body, its ``$ref`` followed."""
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = content.get("schema", {})
    ref = schema.get("$ref", "")
    if ref.startswith(COMPONENTS):
        schema = document["components"]["schemas"].get(ref[len(COMPONENTS):], {})
    return schema if schema.get("properties") else None
