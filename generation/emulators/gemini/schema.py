"""Valid JSON for a response schema: Gemini's OpenAPI subset or a full JSON Schema.

Handles type (any case, or a list), properties/required, propertyOrdering (either
spelling), items/prefixItems with minItems/maxItems, enum/const, anyOf/oneOf/allOf,
$ref into $defs/definitions, nullable, numbers within minimum/maximum (exclusive too)
and multipleOf, string formats and lengths. Strings come from the prompt's words,
chosen by the property name (a "headline" gets a headline, a "cta" a call to action).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from .text import Copywriter
from .wire import get

MAX_DEPTH = 6
_PLURAL_HINTS = ("headlines", "variants", "options", "ideas", "slogans", "taglines",
                 "hashtags", "items", "suggestions")


class SchemaFaker:
    def __init__(self, root: dict[str, Any], copy: Copywriter) -> None:
        self.root = root
        self.copy = copy

    def generate(self) -> Any:
        return self.value(self.root, "root", 0, ())

    # -- dispatch --------------------------------------------------------------------

    def value(self, schema: Any, name: str, depth: int, path: tuple[object, ...]) -> Any:
        if schema is True or not isinstance(schema, dict):
            return self.copy.phrase(*path)
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        enum = get(schema, "enum")
        if isinstance(enum, list) and enum:
            return enum[self.copy.number(len(enum), "enum", *path)]
        for key in ("anyOf", "oneOf"):
            options = get(schema, key)
            if isinstance(options, list) and options:
                non_null = [o for o in options if self._type_of(self._resolve(o)) != "null"]
                return self.value((non_null or options)[0], name, depth, path)
        all_of = get(schema, "allOf")
        if isinstance(all_of, list) and all_of:
            merged: dict[str, Any] = {}
            for part in all_of:
                merged = _merge(merged, self._resolve(part))
            rest = {k: v for k, v in schema.items() if k not in ("allOf", "all_of")}
            return self.value(_merge(merged, rest), name, depth, path)
        kind = self._type_of(schema)
        if kind == "object":
            return self._object(schema, depth, path)
        if kind == "array":
            return self._array(schema, name, depth, path)
        if kind == "integer":
            return int(self._number(schema, name, path, integer=True))
        if kind == "number":
            return self._number(schema, name, path, integer=False)
        if kind == "boolean":
            return self.copy.number(2, "bool", *path) == 0
        if kind == "null":
            return None
        return self._string(schema, name, path)

    def _resolve(self, schema: Any) -> Any:
        seen = 0
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and seen < 32:
            target = self._pointer(schema["$ref"])
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            schema = _merge(target, extra) if extra else target
            seen += 1
        return schema

    def _pointer(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return {}
        node: Any = self.root
        for token in ref.lstrip("#").strip("/").split("/"):
            if not token:
                continue
            token = token.replace("~1", "/").replace("~0", "~")
            node = node.get(token, {}) if isinstance(node, dict) else {}
        return node

    @staticmethod
    def _type_of(schema: Any) -> str:
        if not isinstance(schema, dict):
            return "string"
        kind = schema.get("type")
        if isinstance(kind, list):
            names = [str(k).lower() for k in kind]
            kind = next((k for k in names if k != "null"), names[0] if names else None)
        if isinstance(kind, str) and kind and kind.upper() != "TYPE_UNSPECIFIED":
            return kind.lower()
        if get(schema, "properties") is not None:
            return "object"
        if get(schema, "items") is not None or get(schema, "prefixItems") is not None:
            return "array"
        return "string"

    # -- containers ------------------------------------------------------------------

    def _object(self, schema: dict[str, Any], depth: int, path: tuple[object, ...]) -> Any:
        properties = get(schema, "properties") or {}
        required = list(get(schema, "required") or [])
        ordering = list(get(schema, "propertyOrdering") or [])
        names = [n for n in ordering if n in properties]
        names += [n for n in properties if n not in names]
        if depth >= MAX_DEPTH:
            names = [n for n in names if n in required]
        result: dict[str, Any] = {}
        for prop in names:
            result[prop] = self.value(properties[prop], prop, depth + 1, (*path, prop))
        extra = get(schema, "additionalProperties")
        if not properties and isinstance(extra, dict):
            for i in range(2):
                key = self.copy.phrase("key", i, *path).split()[0].lower() + str(i + 1)
                result[key] = self.value(extra, key, depth + 1, (*path, key))
        return result

    def _array(self, schema: dict[str, Any], name: str, depth: int,
               path: tuple[object, ...]) -> list[Any]:
        min_items = int(get(schema, "minItems") or 0)
        max_items = get(schema, "maxItems")
        wanted = 3 if name.lower() in _PLURAL_HINTS else 2
        if depth >= MAX_DEPTH:
            wanted = 0
        count = max(min_items, wanted)
        if max_items is not None:
            count = min(count, int(max_items))
        prefix = get(schema, "prefixItems")
        items = get(schema, "items")
        singular = name[:-1] if name.endswith("s") and len(name) > 3 else name
        out: list[Any] = []
        for i in range(count):
            if isinstance(prefix, list) and i < len(prefix):
                item_schema = prefix[i]
            elif isinstance(items, dict):
                item_schema = items
            elif items is False:
                break
            else:
                item_schema = {"type": "string"}
            out.append(self.value(item_schema, singular, depth + 1, (*path, i)))
        return out

    # -- scalars ---------------------------------------------------------------------

    def _number(self, schema: dict[str, Any], name: str, path: tuple[object, ...], *,
                integer: bool) -> float | int:
        hint_low, hint_high = _hint_range(name)
        span = hint_high - hint_low
        minimum, maximum = get(schema, "minimum"), get(schema, "maximum")
        ex_min, ex_max = get(schema, "exclusiveMinimum"), get(schema, "exclusiveMaximum")
        if isinstance(ex_min, bool):  # draft-4 style flags
            ex_min, minimum = (minimum, None) if ex_min else (None, minimum)
        if isinstance(ex_max, bool):
            ex_max, maximum = (maximum, None) if ex_max else (None, maximum)
        step = 1.0 if integer else 0.01
        lo = float(ex_min) + step if ex_min is not None else (
            float(minimum) if minimum is not None else None)
        hi = float(ex_max) - step if ex_max is not None else (
            float(maximum) if maximum is not None else None)
        if lo is None and hi is None:
            lo, hi = hint_low, hint_high
        elif hi is None:
            assert lo is not None
            hi = lo + span
        elif lo is None:
            lo = hi - span
        assert lo is not None and hi is not None
        if hi < lo:  # an exclusive range narrower than one step
            middle = (float(ex_min or lo) + float(ex_max or hi)) / 2
            return int(middle) if integer else middle
        multiple = get(schema, "multipleOf")
        if multiple:
            m = float(multiple)
            k_lo, k_hi = _ceil(lo / m), int(hi // m)
            k = k_lo + self.copy.number(max(1, k_hi - k_lo + 1), "mult", *path)
            value = k * m
            return int(value) if integer else value
        if integer:
            i_lo, i_hi = _ceil(lo), int(hi // 1)
            return i_lo + self.copy.number(max(1, i_hi - i_lo + 1), "int", *path)
        fraction = self.copy.number(10_000, "num", *path) / 10_000
        value = lo + (hi - lo) * fraction
        rounded = round(value, 2)
        return rounded if lo <= rounded <= hi else value

    def _string(self, schema: dict[str, Any], name: str, path: tuple[object, ...]) -> str:
        fmt = str(get(schema, "format") or "").lower()
        text = _formatted(fmt, self.copy, path) if fmt else None
        if text is None:
            text = _named(name, self.copy, path)
        pattern = get(schema, "pattern")
        if isinstance(pattern, str) and not _matches(pattern, text):
            text = next((c for c in _pattern_candidates(self.copy, path)
                         if _matches(pattern, c)), text)
        min_len = int(get(schema, "minLength") or 0)
        max_len = get(schema, "maxLength")
        while len(text) < min_len:
            text = f"{text} {self.copy.sentence('pad', len(text), *path)}"
        if max_len is not None and len(text) > int(max_len):
            cut = text[: int(max_len)]
            text = cut.rstrip() if len(cut.rstrip()) >= min_len else cut
        return text


def _named(name: str, copy: Copywriter, path: tuple[object, ...]) -> str:
    key = re.sub(r"[^a-z]", "", name.lower())
    table = (
        (("subhead", "tagline", "slogan", "subtitle"), copy.tagline),
        (("headline", "title", "heading"), copy.headline),
        (("cta", "calltoaction", "button", "action"), copy.cta),
        (("hashtag",), copy.hashtag),
        (("tone", "style", "mood", "voice"), copy.tone),
        (("description", "body", "copy", "text", "caption", "summary", "message", "content",
          "paragraph", "details", "reason", "rationale", "explanation"), copy.paragraph),
    )
    for hints, writer in table:
        if any(hint in key for hint in hints):
            return writer(*path)
    if "colo" in key or key == "hex":
        return f"#{copy.number(0xFFFFFF, 'colour', *path):06x}"
    if any(hint in key for hint in ("url", "link", "website", "href")):
        return _formatted("uri", copy, path) or ""
    if "email" in key:
        return _formatted("email", copy, path) or ""
    if "phone" in key:
        return f"+1 555 01{copy.number(100, 'phone', *path):02d}"
    if key in ("language", "lang", "locale"):
        return "en"
    if key == "id" or key.endswith("id"):
        return _slug(copy.phrase(*path)) + "-" + str(copy.number(1000, "id", *path))
    if "prompt" in key:
        return f"A vivid scene of {copy.phrase(*path).lower()}, soft studio lighting"
    if "alt" in key:
        return f"Image showing {copy.phrase(*path).lower()}"
    if "audience" in key:
        return f"People who love {copy.phrase(*path).lower()}"
    return copy.phrase(*path)


def _formatted(fmt: str, copy: Copywriter, path: tuple[object, ...]) -> str | None:
    day = dt.date(2026, 1, 1) + dt.timedelta(days=copy.number(365, "date", *path))
    slug = _slug(copy.phrase(*path)) or "brand"
    if fmt in ("date-time", "datetime"):
        return f"{day.isoformat()}T09:30:00Z"
    if fmt == "date":
        return day.isoformat()
    if fmt == "time":
        return "09:30:00"
    if fmt == "email":
        return f"hello@{slug}.example.com"
    if fmt in ("uri", "url", "iri", "uri-reference"):
        return f"https://{slug}.example.com/"
    if fmt == "uuid":
        return str(uuid.UUID(int=copy.number(2**64, "uuid", *path) << 64 | 0x4000_8000_0000_0000))
    if fmt in ("hostname", "idn-hostname"):
        return f"{slug}.example.com"
    if fmt == "ipv4":
        return f"192.0.2.{1 + copy.number(250, 'ip', *path)}"
    return None


def _pattern_candidates(copy: Copywriter, path: tuple[object, ...]) -> list[str]:
    return [f"#{copy.number(0xFFFFFF, 'pattern', *path):06x}", "#3A7BD5",
            _slug(copy.phrase(*path)), "A1", "abc", "ABC", "123", "2026-01-15", "en", "EN"]


def _matches(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return True


def _hint_range(name: str) -> tuple[float, float]:
    key = name.lower()
    if any(h in key for h in ("rating", "stars", "score")):
        return 1, 5
    if "price" in key or "cost" in key:
        return 9.99, 199.0
    if "year" in key:
        return 2024, 2027
    if "percent" in key or "discount" in key:
        return 5, 50
    if "confidence" in key or "probability" in key:
        return 0, 1
    if any(h in key for h in ("count", "qty", "quantity", "number")):
        return 1, 10
    return 1, 100


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _ceil(value: float) -> int:
    return -int(-value // 1)


def _merge(base: Any, extra: Any) -> dict[str, Any]:
    merged = dict(base) if isinstance(base, dict) else {}
    if isinstance(extra, dict):
        for key, val in extra.items():
            if key in ("properties",) and isinstance(val, dict):
                merged[key] = {**merged.get(key, {}), **val}
            elif key == "required" and isinstance(val, list):
                merged[key] = list(dict.fromkeys([*merged.get(key, []), *val]))
            else:
                merged[key] = val
    return merged


def fake_json(schema: dict[str, Any], copy: Copywriter) -> Any:
    """A JSON value valid against ``schema``, derived from the prompt."""
    return SchemaFaker(schema, copy).generate()


def default_json(copy: Copywriter) -> dict[str, Any]:
    """JSON mode without a schema: a small ad-copy object."""
    return {"headline": copy.headline("json"), "body": copy.paragraph("json"),
            "cta": copy.cta("json")}
