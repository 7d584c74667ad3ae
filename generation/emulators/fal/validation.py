"""A tiny pydantic-v2 look-alike: typed fields in, FastAPI-style 422 ``detail`` items out.

Each error is ``{"type", "loc", "msg", "input"[, "ctx"]}`` with ``loc`` starting at
``"body"``, using pydantic's type names and messages (``missing``, ``int_parsing``,
``less_than_equal`` with ``ctx: {"le": 12}``, ``literal_error`` …). Unknown fields are
ignored, as pydantic does by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ErrorItem = dict[str, Any]
Loc = tuple[str | int, ...]

IMAGE_SIZE_PRESETS: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
MAX_IMAGE_SIDE = 14142

_MISSING = object()
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def error(kind: str, loc: Loc, msg: str, value: Any, ctx: dict[str, Any] | None = None
          ) -> ErrorItem:
    item: ErrorItem = {"type": kind, "loc": ["body", *loc], "msg": msg, "input": value}
    if ctx is not None:
        item["ctx"] = ctx
    return item


class Invalid(Exception):
    def __init__(self, errors: list[ErrorItem]) -> None:
        super().__init__(errors)
        self.errors = errors


def _literal_text(choices: tuple[str, ...]) -> str:
    quoted = [f"'{c}'" for c in choices]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def check_str(value: Any, loc: Loc) -> str:
    if not isinstance(value, str):
        raise Invalid([error("string_type", loc, "Input should be a valid string", value)])
    return value


def check_int(value: Any, loc: Loc) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise Invalid([error("int_from_float", loc,
                             "Input should be a valid integer, got a number with a fractional "
                             "part", value)])
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise Invalid([error("int_parsing", loc, "Input should be a valid integer, unable "
                                 "to parse string as an integer", value)]) from None
    raise Invalid([error("int_type", loc, "Input should be a valid integer", value)])


def check_float(value: Any, loc: Loc) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise Invalid([error("float_parsing", loc, "Input should be a valid number, unable "
                                 "to parse string as a number", value)]) from None
    raise Invalid([error("float_type", loc, "Input should be a valid number", value)])


def check_bool(value: Any, loc: Loc) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        if value.strip().lower() in _TRUE:
            return True
        if value.strip().lower() in _FALSE:
            return False
        raise Invalid([error("bool_parsing", loc, "Input should be a valid boolean, unable to "
                             "interpret input", value)])
    raise Invalid([error("bool_type", loc, "Input should be a valid boolean", value)])


def check_bounds(number: float, loc: Loc, original: Any, *, ge: float | None = None,
                 le: float | None = None, gt: float | None = None) -> None:
    if gt is not None and not number > gt:
        raise Invalid([error("greater_than", loc, f"Input should be greater than {gt}",
                             original, {"gt": gt})])
    if ge is not None and not number >= ge:
        raise Invalid([error("greater_than_equal", loc,
                             f"Input should be greater than or equal to {ge}", original,
                             {"ge": ge})])
    if le is not None and not number <= le:
        raise Invalid([error("less_than_equal", loc, f"Input should be less than or equal to {le}",
                             original, {"le": le})])


def check_literal(value: Any, loc: Loc, choices: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in choices:
        return value
    text = _literal_text(choices)
    raise Invalid([error("literal_error", loc, f"Input should be {text}", value,
                         {"expected": text})])


def check_model(value: Any, loc: Loc, class_name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid([error("model_type", loc, "Input should be a valid dictionary or instance "
                             f"of {class_name}", value, {"class_name": class_name})])
    return value


@dataclass(frozen=True)
class Field:
    """One input field: ``check`` converts a present value or raises ``Invalid``."""

    name: str
    check: Callable[[Any, Loc], Any]
    default: Any = _MISSING  # _MISSING with required=False means "absent stays absent"
    required: bool = False
    nullable: bool = False


def text_field(name: str, *, required: bool = False, default: Any = _MISSING) -> Field:
    return Field(name, check_str, default=default, required=required)


def int_field(name: str, *, default: Any = _MISSING, ge: int | None = None,
              le: int | None = None, nullable: bool = False) -> Field:
    def check(value: Any, loc: Loc) -> int:
        number = check_int(value, loc)
        check_bounds(number, loc, value, ge=ge, le=le)
        return number
    return Field(name, check, default=default, nullable=nullable)


def float_field(name: str, *, default: Any = _MISSING, ge: float | None = None,
                le: float | None = None) -> Field:
    def check(value: Any, loc: Loc) -> float:
        number = check_float(value, loc)
        check_bounds(number, loc, value, ge=ge, le=le)
        return number
    return Field(name, check, default=default)


def bool_field(name: str, *, default: bool) -> Field:
    return Field(name, check_bool, default=default)


def literal_field(name: str, choices: tuple[str, ...], *, default: str) -> Field:
    return Field(name, lambda value, loc: check_literal(value, loc, choices), default=default)


def check_image_size(value: Any, loc: Loc) -> tuple[int, int]:
    """``Union[ImageSize, Literal[presets]]`` → (width, height)."""
    if isinstance(value, dict):
        errors: list[ErrorItem] = []
        size: list[int] = []
        for axis in ("width", "height"):
            raw = value.get(axis, 512)  # ImageSize defaults both sides to 512
            try:
                number = check_int(raw, (*loc, axis))
                check_bounds(number, (*loc, axis), raw, gt=0, le=MAX_IMAGE_SIDE)
                size.append(number)
            except Invalid as exc:
                errors.extend(exc.errors)
        if errors:
            raise Invalid(errors)
        return size[0], size[1]
    preset = check_literal(value, loc, tuple(IMAGE_SIZE_PRESETS))
    return IMAGE_SIZE_PRESETS[preset]


def check_loras(value: Any, loc: Loc) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise Invalid([error("list_type", loc, "Input should be a valid list", value)])
    loras: list[dict[str, Any]] = []
    errors: list[ErrorItem] = []
    for index, item in enumerate(value):
        try:
            weight = check_model(item, (*loc, index), "LoraWeight")
            if "path" not in weight:
                raise Invalid([error("missing", (*loc, index, "path"), "Field required", weight)])
            path = check_str(weight["path"], (*loc, index, "path"))
            scale = check_float(weight.get("scale", 1.0), (*loc, index, "scale"))
            loras.append({"path": path, "scale": scale})
        except Invalid as exc:
            errors.extend(exc.errors)
    if errors:
        raise Invalid(errors)
    return loras


def validate(fields: tuple[Field, ...], body: Any) -> dict[str, Any]:
    """Check ``body`` against ``fields``; returns the input with defaults filled in."""
    if not isinstance(body, dict):
        raise Invalid([{"type": "model_attributes_type", "loc": ["body"],
                        "msg": "Input should be a valid dictionary or object to extract fields "
                               "from", "input": body}])
    parsed: dict[str, Any] = {}
    errors: list[ErrorItem] = []
    for spec in fields:
        value = body.get(spec.name, _MISSING)
        if value is _MISSING:
            if spec.required:
                errors.append(error("missing", (spec.name,), "Field required", body))
            elif spec.default is not _MISSING:
                parsed[spec.name] = spec.default
            continue
        if value is None and (spec.nullable or (not spec.required and spec.default is None)):
            parsed[spec.name] = None
            continue
        try:
            parsed[spec.name] = spec.check(value, (spec.name,))
        except Invalid as exc:
            errors.extend(exc.errors)
    if errors:
        raise Invalid(errors)
    return parsed
