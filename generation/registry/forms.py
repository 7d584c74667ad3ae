"""The HTML form a model's input schema implies, for the admin's preview page.

An admin editing ``input_schema`` sees what the schema will ask of a user: one
control per property in field order, the widget its type calls for, required
fields marked, defaults filled in, descriptions as help text. The schema is
admin-edited data, so every name, title, description and value is escaped; the
markup is assembled only from ``format_html`` and ``flatatt``.
"""

from __future__ import annotations

import json
from typing import Any

from django.forms.utils import flatatt
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

# Longer than this (or unbounded) and a string gets a textarea, not a one-line input.
SHORT_STRING_MAX = 255
URL_FORMATS = frozenset({"uri", "url", "image-url", "iri"})
MAX_DEPTH = 3


def ordered_properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Properties in display order: ``x-order`` (or fal's list), then any left out.

    Names in the order list that are not properties are ignored, so a stale order
    never hides or invents a field.
    """
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return []
    order = schema.get("x-order") or schema.get("x-fal-order-properties")
    names = [n for n in (order if isinstance(order, list) else [])
             if isinstance(n, str) and n in properties]
    names = list(dict.fromkeys(names))
    names += [n for n in properties if n not in names]
    return [(n, properties[n] if isinstance(properties[n], dict) else {}) for n in names]


def render_schema_form(schema: Any) -> SafeString:
    """The controls for every property of ``schema`` (an object schema), as safe HTML."""
    if not isinstance(schema, dict) or not schema.get("properties"):
        return format_html('<p class="help">{}</p>', "The schema declares no properties.")
    return _fields(schema, prefix="", depth=0)


def _fields(schema: dict[str, Any], *, prefix: str, depth: int) -> SafeString:
    listed = schema.get("required")
    required = {n for n in listed if isinstance(n, str)} if isinstance(listed, list) else set()
    return format_html_join(
        "\n", "{}",
        ((_field(name, prop, required=name in required, path=prefix + name, depth=depth),)
         for name, prop in ordered_properties(schema)),
    )


def _label_text(name: str, prop: dict[str, Any]) -> str:
    title = prop.get("title")
    return str(title) if title else name.replace("_", " ").capitalize()


def _field(name: str, prop: dict[str, Any], *, required: bool, path: str,
           depth: int) -> SafeString:
    input_id = "pv-" + path.replace(".", "-")
    prop = _collapse_nullable(prop)
    control = _control(prop, required=required, path=path, input_id=input_id, depth=depth)
    mark = format_html(' <abbr class="required-mark" title="required">{}</abbr>', "*") \
        if required else ""
    description = prop.get("description")
    help_text = format_html('<div class="help">{}</div>', description) if description else ""
    label_attrs = flatatt({"for": input_id, "class": "required" if required else None})
    return format_html(
        '<div class="form-row field-{}" data-field="{}"><div><div class="flex-container">'
        "<label{}>{}{}</label>{}</div>{}</div></div>",
        path, path, label_attrs, _label_text(name, prop), mark, control, help_text)


def _collapse_nullable(prop: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, {type: null}]`` (optional in pydantic's dialect) reads as X."""
    for key in ("anyOf", "oneOf"):
        branches = prop.get(key)
        if isinstance(branches, list):
            real = [b for b in branches if isinstance(b, dict) and b.get("type") != "null"]
            if len(real) == 1 and len(real) < len(branches):
                merged = {k: v for k, v in prop.items() if k != key}
                return {**real[0], **merged}
    return prop


def _type(prop: dict[str, Any]) -> str:
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "")
    if not kind and isinstance(prop.get("properties"), dict):
        kind = "object"
    return str(kind or "")


def _control(prop: dict[str, Any], *, required: bool, path: str, input_id: str,
             depth: int) -> SafeString:
    base = {"id": input_id, "name": path, "required": required}
    default = prop.get("default")
    branches = prop.get("anyOf") or prop.get("oneOf")
    if isinstance(branches, list) and branches:
        return _choice_of_forms(prop, branches, base=base, path=path, depth=depth)
    if isinstance(prop.get("enum"), list):
        return _select(prop["enum"], default, base=base, required=required)
    kind = _type(prop)
    if "const" in prop:
        return _input({**base, "type": "text", "value": _text(prop["const"]), "readonly": True})
    if kind == "boolean":
        return _input({**base, "type": "checkbox", "checked": default is True,
                       "required": False})
    if kind in ("integer", "number"):
        return _input({**base, "type": "number", **_number_bounds(prop, kind),
                       "value": None if default is None else _text(default)})
    if kind == "string":
        return _string(prop, base=base)
    if kind == "object" and isinstance(prop.get("properties"), dict) and depth < MAX_DEPTH:
        return format_html('<fieldset class="module schema-object">{}</fieldset>',
                           _fields(prop, prefix=path + ".", depth=depth + 1))
    hint = "one value per line" if kind == "array" and _type(prop.get("items") or {}) in (
        "string", "integer", "number") else "JSON"
    value = "" if default is None else json.dumps(default, indent=2)
    return format_html('<textarea{}>{}</textarea>',
                       flatatt({**base, "rows": 3, "cols": 60, "placeholder": hint,
                                "data-format": hint}), value)


def _string(prop: dict[str, Any], *, base: dict[str, Any]) -> SafeString:
    default = prop.get("default")
    fmt = prop.get("format")
    examples = prop.get("examples")
    example = examples[0] if isinstance(examples, list) and examples else None
    limits = {"minlength": prop.get("minLength"), "maxlength": prop.get("maxLength"),
              "pattern": prop.get("pattern"),
              "placeholder": None if example is None else _text(example)}
    if fmt in URL_FORMATS:
        return _input({**base, **limits, "type": "url", "value": default,
                       "placeholder": limits["placeholder"] or "https://…"})
    max_length = prop.get("maxLength")
    short = isinstance(max_length, int) and max_length <= SHORT_STRING_MAX
    if short or fmt or prop.get("pattern"):
        return _input({**base, **limits, "type": "text", "value": default})
    return format_html('<textarea{}>{}</textarea>',
                       flatatt({**base, **limits, "rows": 4, "cols": 60}),
                       "" if default is None else _text(default))


def _number_bounds(prop: dict[str, Any], kind: str) -> dict[str, Any]:
    """min/max/step attributes; exclusive bounds become inclusive ones for integers."""
    bounds: dict[str, Any] = {"step": prop.get("multipleOf") or (1 if kind == "integer"
                                                                 else "any")}
    for attr, inclusive, exclusive, nudge in (("min", "minimum", "exclusiveMinimum", 1),
                                              ("max", "maximum", "exclusiveMaximum", -1)):
        if isinstance(prop.get(inclusive), int | float):
            bounds[attr] = prop[inclusive]
        elif isinstance(prop.get(exclusive), int | float):
            # An HTML number input cannot exclude its bound; for integers it need not.
            bounds[attr] = prop[exclusive] + nudge if kind == "integer" else prop[exclusive]
    return {k: _text(v) for k, v in bounds.items()}


def _choice_of_forms(prop: dict[str, Any], branches: list[Any], *, base: dict[str, Any],
                     path: str, depth: int) -> SafeString:
    """``anyOf`` of named choices and an object (fal's image_size): a select whose last
    choice, "custom", reveals the object's own fields."""
    enum_branch = next((b for b in branches if isinstance(b, dict)
                        and isinstance(b.get("enum"), list)), None)
    object_branch = next((b for b in branches if isinstance(b, dict)
                          and _type(b) == "object"), None)
    default = prop.get("default")
    if enum_branch is None:
        first = next((b for b in branches if isinstance(b, dict) and _type(b) != "null"), {})
        merged = {**first, **{k: v for k, v in prop.items() if k not in ("anyOf", "oneOf")}}
        return _control(merged, required=bool(base["required"]), path=path,
                        input_id=base["id"], depth=depth)
    if object_branch is None:
        return _select(enum_branch["enum"], default, base=base, required=base["required"])
    custom_label = ("custom size" if {"width", "height"} <= set(object_branch.get(
        "properties") or {}) else "custom")
    chosen = "custom" if isinstance(default, dict) else default
    select = _select([*enum_branch["enum"], "custom"], chosen, base=base,
                     required=base["required"], labels={"custom": custom_label})
    custom = {**object_branch, "properties": {
        name: ({**sub, "default": default[name]}
               if isinstance(default, dict) and name in default and isinstance(sub, dict)
               else sub)
        for name, sub in (object_branch.get("properties") or {}).items()}}
    return format_html(
        '{}<fieldset class="module schema-custom" data-shown-when="custom">'
        '<legend>{}</legend>{}</fieldset>',
        select, custom_label, _fields(custom, prefix=path + ".", depth=depth + 1))


def _select(choices: list[Any], default: Any, *, base: dict[str, Any], required: bool,
            labels: dict[str, str] | None = None) -> SafeString:
    labels = labels or {}
    options = []
    if not required and default is None:
        options.append(format_html('<option value="">{}</option>', "—"))
    for choice in choices:
        value = _text(choice)
        options.append(format_html('<option{}>{}</option>',
                                   flatatt({"value": value, "selected": choice == default}),
                                   labels.get(value, value)))
    return format_html('<select{}>{}</select>', flatatt(base),
                       format_html_join("", "{}", ((o,) for o in options)))


def _input(attrs: dict[str, Any]) -> SafeString:
    clean = {k: v for k, v in attrs.items() if v is not None}
    return format_html("<input{}>", flatatt(clean))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)
