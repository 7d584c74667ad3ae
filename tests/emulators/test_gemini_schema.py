"""Property test of the schema-driven JSON answers, in both schema dialects.

Hypothesis draws JSON Schemas; each is also translated into Gemini's OpenAPI dialect
(upper-case types, snake_case keywords, ``nullable``) as the SDK would send it. The
emulator's answer for either must validate against the JSON Schema.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from generation.emulators.gemini.schema import fake_json
from generation.emulators.gemini.text import Copywriter

NAMES = st.sampled_from(["headline", "cta", "price", "tags", "colour", "id", "rating",
                         "body", "launch_date", "site", "count", "x", "email", "variants"])


@st.composite
def strings(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    choice = draw(st.sampled_from(["plain", "enum", "format", "length"]))
    if choice == "enum":
        schema["enum"] = draw(st.lists(st.text(min_size=1, max_size=8), min_size=1,
                                       max_size=4, unique=True))
    elif choice == "format":
        schema["format"] = draw(st.sampled_from(["date", "date-time", "email", "uri", "uuid"]))
    elif choice == "length":
        low = draw(st.integers(0, 30))
        schema["minLength"] = low
        schema["maxLength"] = draw(st.integers(max(low, 1), 60))
    return schema


@st.composite
def numbers(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["integer", "number"]))
    schema: dict[str, Any] = {"type": kind}
    low = draw(st.one_of(st.none(), st.integers(-1000, 1000)))
    high = draw(st.one_of(st.none(), st.integers(-1000, 1000)))
    if low is not None and high is not None and high < low + 8:
        high = low + 8  # room for a multiple of 3 strictly inside the bounds
    exclusive = draw(st.booleans())
    if low is not None:
        schema["exclusiveMinimum" if exclusive else "minimum"] = low
    if high is not None:
        schema["exclusiveMaximum" if exclusive else "maximum"] = high
    if kind == "integer" and draw(st.booleans()) and low is not None and high is not None:
        schema["multipleOf"] = draw(st.integers(1, 3))
    return schema


def containers(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        if draw(st.booleans()):
            low = draw(st.integers(0, 4))
            return {"type": "array", "items": draw(children), "minItems": low,
                    "maxItems": draw(st.integers(low, 6))}
        props = draw(st.dictionaries(NAMES, children, min_size=1, max_size=5))
        schema: dict[str, Any] = {"type": "object", "properties": props,
                                  "required": draw(st.lists(st.sampled_from(sorted(props)),
                                                            unique=True))}
        if draw(st.booleans()):
            schema["propertyOrdering"] = draw(st.permutations(sorted(props)))
        return schema

    return build()


def nullable(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return children.map(lambda s: {"anyOf": [s, {"type": "null"}]})


SCHEMAS = st.recursive(st.one_of(strings(), numbers(), st.just({"type": "boolean"})),
                       lambda inner: st.one_of(containers(inner), nullable(inner)),
                       max_leaves=12)


def to_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema -> the Gemini Schema dialect the SDK sends in responseSchema."""
    if "anyOf" in schema:
        inner = to_openapi(schema["anyOf"][0])
        return {**inner, "nullable": True}
    renames = {"minItems": "min_items", "maxItems": "max_items", "minLength": "min_length",
               "maxLength": "max_length", "propertyOrdering": "property_ordering"}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            out["type"] = value.upper()
        elif key == "properties":
            out[key] = {name: to_openapi(sub) for name, sub in value.items()}
        elif key == "items":
            out[key] = to_openapi(value)
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            # The OpenAPI dialect has no exclusive bounds: tighten to inclusive ones.
            step = 1 if schema["type"] == "integer" else 0.5
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = (
                value + step if key == "exclusiveMinimum" else value - step)
        else:
            out[renames.get(key, key)] = value
    return out


@settings(max_examples=150, deadline=None)
@given(schema=SCHEMAS, prompt=st.text(max_size=40), salt=st.integers(0, 10))
def test_answers_validate_against_any_schema(schema: dict[str, Any], prompt: str,
                                             salt: int) -> None:
    copy = Copywriter(prompt, f"digest-{salt}")
    jsonschema.validate(fake_json(schema, copy), schema)
    jsonschema.validate(fake_json(to_openapi(schema), copy), schema)


def test_answers_are_deterministic() -> None:
    schema = {"type": "object", "properties": {"headline": {"type": "string"},
                                               "tags": {"type": "array",
                                                        "items": {"type": "string"}}}}
    first = fake_json(schema, Copywriter("vegan ice cream", "d1"))
    assert first == fake_json(schema, Copywriter("vegan ice cream", "d1"))
    assert first != fake_json(schema, Copywriter("vegan ice cream", "d2"))
