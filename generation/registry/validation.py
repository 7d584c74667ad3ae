"""Checking a generation request against the registry row's JSON Schema.

Every problem is reported at once, each naming its field (``inputs.prompt``,
``options.width``) and what is wrong, before anything is created or spent.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError as MetaSchemaError
from jsonschema.exceptions import ValidationError as SchemaError

from brenia.errors import FieldProblem, InvalidInput

# Options common to every image model; each provider maps them onto its own
# parameters (image_size, num_images …).
OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "width": {"type": "integer", "minimum": 64, "maximum": 8192},
        "height": {"type": "integer", "minimum": 64, "maximum": 8192},
        "num_images": {"type": "integer", "minimum": 1, "maximum": 4},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
        "output_format": {"type": "string", "enum": ["jpeg", "png"]},
        # Queue lane at providers that have one (fal): "low" waits behind "normal".
        "priority": {"type": "string", "enum": ["normal", "low"]},
    },
    "dependentRequired": {"width": ["height"], "height": ["width"]},
}

_FORMATS = FormatChecker(formats=("email",))


@_FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and (parts.netloc or parts.scheme == "data"))


@_FORMATS.checks("image-url")
def _is_image_url(value: object) -> bool:
    """An http(s) URL, or a base64 data URI of an image (what fal models accept)."""
    if not isinstance(value, str):
        return True
    if value.startswith("data:"):
        return value.startswith("data:image/") and ";base64," in value
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _field_name(prefix: str, error: SchemaError) -> str:
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        # "'prompt' is a required property": the field is the missing one.
        missing = error.message.split("'")[1] if "'" in error.message else ""
        path.append(missing)
    elif error.validator == "additionalProperties":
        extras = error.message.split("'")[1::2]
        path.append(extras[0] if extras else "")
    elif error.validator == "dependentRequired":
        path.append(error.message.split("'")[1] if "'" in error.message else "")
    return ".".join([prefix, *[p for p in path if p]])


def _problem(error: SchemaError) -> str:
    v = error.validator
    value = error.validator_value
    if v == "required":
        return "is required"
    if v == "additionalProperties":
        return "is not an accepted field for this model"
    if v == "type":
        return f"must be of type {value if isinstance(value, str) else ' or '.join(value)}"
    if v == "minimum":
        return f"must be >= {value}"
    if v == "maximum":
        return f"must be <= {value}"
    if v == "exclusiveMinimum":
        return f"must be > {value}"
    if v == "exclusiveMaximum":
        return f"must be < {value}"
    if v == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters"
    if v == "maxLength":
        return f"must be at most {value} characters"
    if v == "enum":
        return "must be one of " + ", ".join(repr(x) for x in value)
    if v == "format":
        return f"must be a valid {value}"
    if v == "pattern":
        return "has an invalid format"
    if v in ("minItems", "maxItems"):
        return f"must have {'at least' if v == 'minItems' else 'at most'} {value} items"
    if v == "dependentRequired":
        parts = error.message.split("'")
        return f"is required when {parts[3]} is given" if len(parts) > 3 else error.message
    if v in ("anyOf", "oneOf"):
        return "does not match any accepted form"
    return error.message


def _check(schema: dict[str, Any], value: Any, prefix: str) -> list[FieldProblem]:
    validator = Draft202012Validator(schema, format_checker=_FORMATS)
    problems = [
        FieldProblem(_field_name(prefix, e), _problem(e))
        for e in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    ]
    # One line per field and problem, in a stable order.
    return sorted(set(problems), key=lambda p: (p.field, p.problem))


def closed_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown top-level fields rejected, whatever the admin wrote."""
    closed = copy.deepcopy(schema) if schema else {"type": "object"}
    closed.setdefault("type", "object")
    closed.setdefault("properties", {})
    closed["additionalProperties"] = False
    return closed


def apply_defaults(schema: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    result = dict(inputs)
    for name, prop in (schema.get("properties") or {}).items():
        if name not in result and isinstance(prop, dict) and "default" in prop:
            result[name] = copy.deepcopy(prop["default"])
    return result


def nul_problems(value: Any, prefix: str) -> list[FieldProblem]:
    """NUL characters anywhere: no database stores them in text or JSON, so say so."""
    if isinstance(value, str):
        return [FieldProblem(prefix, "must not contain NUL characters")] if "\x00" in value else []
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            if "\x00" in str(key):
                found.append(FieldProblem(prefix, "has a key with NUL characters"))
            found += nul_problems(item, f"{prefix}.{key}")
        return found
    if isinstance(value, list):
        return [problem for index, item in enumerate(value)
                for problem in nul_problems(item, f"{prefix}.{index}")]
    return []


def check_inputs(*, schema: dict[str, Any], inputs: Any, options: Any) -> dict[str, Any]:
    """Validate ``inputs`` and ``options``; return inputs with schema defaults applied.

    Raises InvalidInput listing every problem found in both.
    """
    problems: list[FieldProblem] = nul_problems(inputs, "inputs") + nul_problems(options, "options")
    if not isinstance(inputs, dict):
        problems.append(FieldProblem("inputs", "must be an object"))
    else:
        problems += _check(closed_schema(schema), inputs, "inputs")
    if options is not None:
        problems += _check(OPTIONS_SCHEMA, options, "options")
    if problems:
        raise InvalidInput("The request has invalid fields.", errors=problems)
    return apply_defaults(schema, inputs)


URL_FORMATS = ("uri", "image-url")


def url_fields(schema: dict[str, Any], inputs: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, url) for every http(s) value the schema marks as a URL, arrays included."""
    found: list[tuple[str, str]] = []
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict) or name not in inputs:
            continue
        value = inputs[name]
        if prop.get("format") in URL_FORMATS and isinstance(value, str):
            found.append((f"inputs.{name}", value))
        items = prop.get("items")
        if isinstance(items, dict) and items.get("format") in URL_FORMATS \
                and isinstance(value, list):
            found += [(f"inputs.{name}.{i}", v) for i, v in enumerate(value)
                      if isinstance(v, str)]
    return [(field, url) for field, url in found if url.startswith(("http://", "https://"))]


def check_schema(schema: Any) -> list[str]:
    """Problems with an input schema itself (for the admin), empty when it is usable."""
    if not isinstance(schema, dict):
        return ["The input schema must be a JSON object."]
    try:
        Draft202012Validator.check_schema(schema)
    except MetaSchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return [f"Invalid JSON Schema at {where}: {exc.message}"]
    if schema.get("type", "object") != "object":
        return ["The input schema must describe an object (type: object)."]
    return []
