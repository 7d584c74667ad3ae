"""Each enabled template's own run endpoint, with its form, in the OpenAPI document.

``POST /api/templates/{slug}/runs`` takes a different form per template, so the
document lists one path per template (``/api/templates/billboard/runs`` …) whose body
has that template's ``variables`` schema and its formats; ``{slug}`` of the detail
path is one of the templates. Rebuilt from the database on every request of the
document, so an admin's edit shows at once. What the document cannot say: whether the
copy fits its boxes (measured with the real font) and whether a brand kit is yours.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from generation.registry.documents import (
    COMPONENTS,
    JSON_WITHOUT_NUL,
    body_schema,
    documented,
    json_without_nul,
)
from templates_app.selectors import ad_template_list_enabled, ad_template_version_latest
from templates_app.spec import variables_schema

RUNS_PATH = "/api/templates/{slug}/runs"
DETAIL_PATH = "/api/templates/{slug}"


def _component_name(slug: str) -> str:
    return "RunTemplate_" + re.sub(r"[^A-Za-z0-9]+", "_", slug)


def extend_openapi(document: dict[str, Any]) -> None:
    templates = [(t, ad_template_version_latest(template=t))
                 for t in ad_template_list_enabled().order_by("slug")]
    paths = document.get("paths", {})
    if not templates or RUNS_PATH not in paths:
        return
    slugs = [template.slug for template, _ in templates]
    for parameter in paths.get(DETAIL_PATH, {}).get("get", {}).get("parameters", []):
        if parameter.get("name") == "slug":
            parameter["schema"] = {"type": "string", "enum": slugs, "title": "Slug"}
    generic = paths.pop(RUNS_PATH)["post"]
    body = body_schema(document, generic)
    if body is None:
        return
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components[JSON_WITHOUT_NUL] = json_without_nul()
    for template, version in templates:
        spec = version.spec
        name = _component_name(template.slug)
        schema = copy.deepcopy(body)
        schema["title"] = f"Run the {spec['name']} template"
        properties = schema.setdefault("properties", {})
        base = f"{COMPONENTS}{name}/properties/variables/allOf/0"
        properties["variables"] = {
            "description": "The template's form",
            "allOf": [documented(variables_schema(spec), base),
                      {"$ref": COMPONENTS + JSON_WITHOUT_NUL}]}
        properties["formats"] = {
            "description": "Formats to render; all of the template's when absent",
            "anyOf": [{"type": "array", "maxItems": 40,
                       "items": {"type": "string", "enum": list(spec["formats"])}},
                      {"type": "null"}]}
        components[name] = schema
        operation = copy.deepcopy(generic)
        operation["operationId"] = f"{generic.get('operationId', 'start_run')}_{name}"
        operation["summary"] = f"Run the {spec['name']} template"
        operation["description"] = spec.get("description", "")
        operation["parameters"] = [p for p in operation.get("parameters", [])
                                   if p.get("name") != "slug"]
        operation["requestBody"]["content"]["application/json"]["schema"] = {
            "$ref": COMPONENTS + name}
        paths[f"/api/templates/{template.slug}/runs"] = {"post": operation}
