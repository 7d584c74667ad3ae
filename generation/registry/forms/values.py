"""What the form modules share: limits, the markers for values that are not JSON, and
small readers of a schema property (its type, its nullability, its help text)."""

from __future__ import annotations

import json
import math
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString

# Objects nested this deep are edited as JSON rather than flattened into fields.
MAX_DEPTH = 3
UPLOAD_SUFFIX = "__upload"
REQUIRED = "This field is required."


# --- values that are not JSON --------------------------------------------------------------

class _Marker:
    """A cleaned value that is not JSON itself; ``inputs()`` reads each for what it means."""

    def __init__(self, meaning: str) -> None:
        self.meaning = meaning

    def __repr__(self) -> str:
        return f"<{self.meaning}>"


MISSING = _Marker("no value: a blank optional field")
CUSTOM = _Marker('the "custom" choice: the value is the object\'s own fields')
# An enum's null option: a choice field's None would read as "left blank".
NULL = _Marker("null, chosen")



def collapse_nullable(prop: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``anyOf: [X, {type: null}]`` (and ``type: [X, "null"]``) reads as an optional X."""
    kind = prop.get("type")
    if isinstance(kind, list) and "null" in kind:
        rest = [k for k in kind if k != "null"]
        return {**prop, "type": rest[0] if len(rest) == 1 else rest}, True
    for key in ("anyOf", "oneOf"):
        branches = prop.get(key)
        if not isinstance(branches, list):
            continue
        real = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
        if len(real) == len(branches) or not real:
            continue
        others = {k: v for k, v in prop.items() if k != key}
        if len(real) == 1 and isinstance(real[0], dict):
            return {**real[0], **others}, True
        return {**others, key: real}, True
    return prop, False


def json_type(prop: dict[str, Any]) -> str:
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "")
    if not kind and isinstance(prop.get("properties"), dict):
        kind = "object"
    return kind if isinstance(kind, str) else ""


def help_html(prop: dict[str, Any], extra: str = "") -> SafeString:
    description = prop.get("description")
    return escape(" ".join(t for t in (str(description) if description else "", extra) if t))


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else as_json(value)


def as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def count_of(value: Any) -> int | None:
    """A schema length or item count, if it is one."""
    return value if isinstance(value, int) and not isinstance(value, bool) \
        and value >= 0 else None


def as_number(value: Any) -> int | float | None:
    """A schema bound, if it is one (and finite)."""
    if isinstance(value, int | float) and not isinstance(value, bool) \
            and math.isfinite(value):
        return value
    return None
