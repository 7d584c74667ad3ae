"""The field a schema property becomes: choices, numbers with their bounds, lists one
per line and JSON for the rest (strings and images: ``text.py``).

Each is a plain Django field with its validators; ``SchemaForm`` (``form.py``) picks one
per property and reads the JSON back from them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import (
    BaseValidator,
    MaxLengthValidator,
    MinLengthValidator,
)
from django.forms.fields import InvalidJSONInput

from brenia.inputs import MAX_JSON_DEPTH, json_problems
from generation.registry.forms.text import (
    string_field,
)
from generation.registry.forms.values import (
    CUSTOM,
    NULL,
    as_json,
    as_number,
    as_text,
    collapse_nullable,
    count_of,
    help_html,
    json_type,
)

SCALARS = ("string", "integer", "number", "boolean")


def property_field(prop: dict[str, Any], kind: str, common: dict[str, Any], *,
           initial: Any) -> forms.Field:
    """The field for a value asked in one control (or a JSON box when nothing fits)."""
    if isinstance(prop.get("enum"), list):
        options = choice_options(prop["enum"])
        return choice_field(options, key_of(options, initial), **common)
    if kind == "boolean":
        return forms.BooleanField(**{**common, "required": False}, initial=initial is True)
    if kind in ("integer", "number"):
        return _number_field(prop, integer=kind == "integer", initial=initial, **common)
    if kind == "string":
        return string_field(prop, initial=initial, **common)
    items = _line_items(prop) if kind == "array" else None
    if items is not None:
        return _lines_field(prop, items, common, initial=initial)
    return json_field(prop, kind, common, initial=initial)


# --- choices --------------------------------------------------------------------------------

def choice_options(values: list[Any]) -> dict[str, Any]:
    """Option value → the JSON value it stands for.

    Strings stand for themselves; other values are written as JSON. Should two options
    read the same (1 and "1"), or one be empty, every option is JSON, so none is lost.
    """
    texts = [as_text(v) for v in values]
    if len(set(texts)) < len(texts) or "" in texts:
        texts = [as_json(v) for v in values]
    return dict(zip(texts, values, strict=True))


def key_of(options: dict[str, Any], value: Any) -> str | None:
    if value is None:
        return None
    return next((key for key, option in options.items()
                 if option is not CUSTOM and as_json(option) == as_json(value)), None)


def choice_field(options: dict[str, Any], initial_key: str | None, *,
                  labels: dict[str, str] | None = None, required: bool,
                  **common: Any) -> forms.TypedChoiceField:
    """A select whose cleaned value is the option's JSON value (ints stay ints).

    Without a default there is an empty first option: "(none)" leaves an optional
    value to the model, "Choose…" makes the user pick a required one deliberately.
    """
    choices = [(key, (labels or {}).get(key, key)) for key in options]
    if initial_key is None:
        choices.insert(0, ("", "Choose…" if required else "(none)"))
    return forms.TypedChoiceField(choices=choices, coerce=_coercion(options),
                                  empty_value=None, required=required,
                                  initial=initial_key, **common)


def _coercion(options: dict[str, Any]) -> Callable[[str], Any]:
    """Option value → JSON value; an unknown option is a ValueError, which Django reports
    as an invalid choice (and counts as a change)."""
    def coerce(key: str) -> Any:
        try:
            value = options[key]
        except KeyError:
            raise ValueError(key) from None
        return NULL if value is None else value
    return coerce


# --- numbers --------------------------------------------------------------------------------

class _Above(BaseValidator):
    message = "Ensure this value is greater than %(limit_value)s."
    code = "exclusive_minimum"

    def compare(self, a: Any, b: Any) -> bool:
        return bool(a <= b)


class _Below(BaseValidator):
    message = "Ensure this value is less than %(limit_value)s."
    code = "exclusive_maximum"

    def compare(self, a: Any, b: Any) -> bool:
        return bool(a >= b)


class _MultipleOf(BaseValidator):
    """JSON Schema's ``multipleOf``, computed as the server's validator (jsonschema) does."""

    message = "Ensure this value is a multiple of %(limit_value)s."
    code = "multiple_of"

    def compare(self, a: Any, b: Any) -> bool:
        if isinstance(b, float):
            try:
                quotient = a / b
                return int(quotient) != quotient
            except OverflowError:
                return (Fraction(a) / Fraction(b)).denominator != 1
        return bool(a % b)


def _number_field(prop: dict[str, Any], *, integer: bool, initial: Any,
                  **common: Any) -> forms.Field:
    """Bounds as validators and min/max; exclusive integer bounds become inclusive."""
    low, high = as_number(prop.get("minimum")), as_number(prop.get("maximum"))
    above, below = as_number(prop.get("exclusiveMinimum")), as_number(prop.get("exclusiveMaximum"))
    if integer:
        low = _tighter(low, None if above is None else math.floor(above) + 1, max)
        high = _tighter(high, None if below is None else math.ceil(below) - 1, min)
        above = below = None
    bounds: dict[str, Any] = {"min_value": low, "max_value": high}
    number = (forms.IntegerField if integer else forms.FloatField)(
        **bounds, initial=initial, **common)
    step = as_number(prop.get("multipleOf"))
    step = step if step is not None and step > 0 else None
    extra = [(above, _Above, "min", low), (below, _Below, "max", high)]
    for bound, validator, attr, inclusive in extra:
        if bound is not None:
            number.validators.append(validator(bound))
            if inclusive is None:
                number.widget.attrs[attr] = bound
    if step is not None:
        number.validators.append(_MultipleOf(step))
    number.widget.attrs["step"] = step if step is not None else (1 if integer else "any")
    return number


def _tighter(a: int | float | None, b: int | float | None, pick: Any) -> int | float | None:
    return b if a is None else a if b is None else pick(a, b)


# --- arrays and JSON ------------------------------------------------------------------------

class _LinesField(forms.Field):
    """An array of scalars, one per line, each cleaned by the field its item schema calls
    for (so "3" becomes 3 for integers, and every URL is checked)."""

    widget = forms.Textarea

    def __init__(self, *, item: forms.Field, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.item = item
        self.widget.attrs.setdefault("rows", 4)

    def to_python(self, value: Any) -> list[Any] | None:
        lines = [line.strip() for line in str(value or "").splitlines() if line.strip()]
        values, problems = [], []
        for number, line in enumerate(lines, start=1):
            try:
                values.append(self.item.clean(line))
            except ValidationError as exc:
                problems += [f"Line {number}: {message}" for message in exc.messages]
        if problems:
            raise ValidationError(problems)
        return values or None

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(as_text(v) for v in value) if isinstance(value, list) else value


def _line_items(prop: dict[str, Any]) -> dict[str, Any] | None:
    """The item schema of an array asked one value per line (of strings or numbers)."""
    items = prop.get("items")
    if not isinstance(items, dict):
        return None
    items, _nullable = collapse_nullable(items)
    scalar = json_type(items) in ("string", "integer", "number") or (
        isinstance(items.get("enum"), list)
        and all(isinstance(v, str | int | float) for v in items["enum"]))
    return items if scalar and not (items.get("anyOf") or items.get("oneOf")) else None


def _unique(values: list[Any]) -> None:
    texts = [as_json(v) for v in values]
    if len(set(texts)) < len(texts):
        raise ValidationError("Give each value once.", code="unique_items")


def _lines_field(prop: dict[str, Any], items: dict[str, Any], common: dict[str, Any], *,
                 initial: Any) -> _LinesField:
    item = property_field(items, json_type(items), {"required": True}, initial=None)
    lines = _LinesField(item=item,
                        **{**common, "help_text": help_html(prop, "One value per line.")},
                        initial=initial)
    least, most = count_of(prop.get("minItems")), count_of(prop.get("maxItems"))
    if least is not None:
        lines.validators.append(MinLengthValidator(
            least, message="Give at least %(limit_value)d values, one per line."))
    if most is not None:
        lines.validators.append(MaxLengthValidator(
            most, message="Give at most %(limit_value)d values, one per line."))
    if prop.get("uniqueItems") is True:
        lines.validators.append(_unique)
    return lines


_JSON_SHAPES = {"object": (dict, 'a JSON object, e.g. {"key": "value"}'),
                "array": (list, "a JSON array, e.g. [1, 2]")}


class _JSONField(forms.JSONField):
    """Free-form JSON; bad JSON is refused with the parser's own words and position."""

    def __init__(self, *, shape: tuple[type, str] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shape = shape

    def to_python(self, value: Any) -> Any:
        try:
            parsed = super().to_python(value)
        except ValidationError:
            raise ValidationError(_json_problem(str(value)), code="invalid") from None
        except RecursionError:  # deeper than Python's parser goes
            raise ValidationError(f"This JSON is nested more than {MAX_JSON_DEPTH} levels "
                                  "deep.", code="too_deep") from None
        # Brenia's input limits, as the API applies them at its door.
        sentences = {f"This JSON {p.problem}." if "nested" in p.problem
                     else f"The value at {p.field} {p.problem}."
                     for p in json_problems(parsed, "")}
        if sentences:
            raise ValidationError(sorted(sentences), code="input_limits")
        return parsed

    def bound_data(self, data: Any, initial: Any) -> Any:
        try:
            return super().bound_data(data, initial)
        except RecursionError:  # shown again as typed, like any other invalid JSON
            return InvalidJSONInput(data)

    def validate(self, value: Any) -> None:
        super().validate(value)
        if self.shape and value is not None and not isinstance(value, self.shape[0]):
            raise ValidationError(f"Enter {self.shape[1]}.", code="shape")


def _json_problem(text: str) -> str:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return (f"This is not valid JSON: {exc.msg} (line {exc.lineno}, "
                f"column {exc.colno}).")
    return "This is not valid JSON."


def json_field(prop: dict[str, Any], kind: str, common: dict[str, Any], *,
                initial: Any) -> _JSONField:
    shape = _JSON_SHAPES.get(kind)
    hint = f"As {shape[1]}." if shape else "As JSON."
    return _JSONField(shape=shape, **{**common, "help_text": help_html(prop, hint)},
                      initial=initial, widget=forms.Textarea(attrs={"rows": 4}))
