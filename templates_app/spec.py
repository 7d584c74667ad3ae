"""A template's content as plain JSON: the version spec and its form's JSON Schema.

The spec is what a run pins. It names models by slug (the registry row as it stands
when a step runs: an admin's model change reaches new runs without a deploy) and keeps
the version label each model had when the spec was made, for provenance.
"""

from __future__ import annotations

from typing import Any

from generation.models import ModelKind
from templates_app.models import AdTemplate

STEP_MODELS = ("copy_model", "background_model", "person_model", "cutout_model",
               "scene_model", "face_swap_model")
# The roles a template cannot do without may be left to the provider policy of this
# kind: operators then switch every template's backgrounds in one admin change.
POLICY_KINDS: dict[str, str] = {
    "background": ModelKind.TEXT_TO_IMAGE,
    "scene": ModelKind.TEXT_TO_IMAGE,
    "cutout": ModelKind.BACKGROUND_REMOVAL,
}
VARIABLE_TYPES = ("string", "text", "integer", "image", "url", "choice", "boolean")
# An uploaded image travels as a data URI: the same limit as a model's image inputs.
IMAGE_MAX_LENGTH = 8_000_000


def template_spec(template: AdTemplate) -> dict[str, Any]:
    models: dict[str, Any] = {}
    for field in STEP_MODELS:
        model = getattr(template, field)
        models[field.removesuffix("_model")] = (
            {"slug": model.slug, "version": model.version_label} if model else None)
    return {
        "kind": template.kind,
        "name": template.name,
        "description": template.description,
        "models": models,
        "variables": template.variables,
        "formats": list(template.formats),
        "style": template.style,
        "output_format": template.output_format,
    }


def spec_model(spec: dict[str, Any], role: str) -> str:
    """The slug of the model ``role`` uses ("" when the template has none)."""
    entry = (spec.get("models") or {}).get(role)
    return str(entry["slug"]) if entry else ""


def _property(variable: dict[str, Any]) -> dict[str, Any]:
    kind = variable.get("type", "string")
    prop: dict[str, Any] = {"title": variable.get("label") or variable["name"]}
    if variable.get("help"):
        prop["description"] = variable["help"]
    if kind in ("string", "text"):
        prop["type"] = "string"
        prop["maxLength"] = int(variable.get("max") or (2000 if kind == "text" else 200))
        if variable.get("min"):
            prop["minLength"] = int(variable["min"])
    elif kind == "integer":
        prop["type"] = "integer"
        for key, name in (("min", "minimum"), ("max", "maximum")):
            if variable.get(key) is not None:
                prop[name] = int(variable[key])
    elif kind == "boolean":
        prop["type"] = "boolean"
    elif kind == "image":
        prop.update(type="string", format="image-url", maxLength=IMAGE_MAX_LENGTH)
    elif kind == "url":
        prop.update(type="string", format="uri", maxLength=2000)
    elif kind == "choice":
        prop["enum"] = list(variable.get("choices") or [])
    if "default" in variable and variable["default"] not in (None, ""):
        prop["default"] = variable["default"]
    if kind in ("string", "text") and variable.get("required"):
        prop.setdefault("minLength", 1)
    if variable.get("widget"):
        prop["x-widget"] = variable["widget"]
    return prop


def variables_schema(spec: dict[str, Any]) -> dict[str, Any]:
    """The form as a JSON Schema (what the API publishes and validates against)."""
    variables = spec.get("variables") or []
    return {
        "type": "object",
        "properties": {v["name"]: _property(v) for v in variables},
        "required": [v["name"] for v in variables if v.get("required")],
        "x-order": [v["name"] for v in variables],
        "additionalProperties": False,
    }


def check_variables_definition(variables: Any) -> list[str]:
    """Problems with an admin's variable list, as sentences (empty when it is fine)."""
    if not isinstance(variables, list):
        return ["must be a list of variables"]
    problems: list[str] = []
    seen: set[str] = set()
    for index, variable in enumerate(variables):
        where = f"variable {index + 1}"
        if not isinstance(variable, dict) or not isinstance(variable.get("name"), str) \
                or not variable["name"].isidentifier():
            problems.append(f"{where}: needs a name made of letters, digits and _")
            continue
        if variable["name"] in seen:
            problems.append(f"{where}: the name {variable['name']!r} is used twice")
        seen.add(variable["name"])
        if variable.get("type", "string") not in VARIABLE_TYPES:
            problems.append(f"{where}: type must be one of {', '.join(VARIABLE_TYPES)}")
        if variable.get("type") == "choice" and not variable.get("choices"):
            problems.append(f"{where}: a choice needs a list of choices")
    return problems
