"""Copy that fits: what the copy model is asked, and whether its answer fits.

Every text box has a budget (characters per line × lines at its smallest size,
measured with the real font). The copy model is asked for JSON of a schema whose
``maxLength`` is the tightest budget over the requested formats. Its answer is then
measured with the real font in every format; copy that does not fit is asked for
again with the measured budget, at most twice, and then the step fails naming the
box. Nothing is ever cut.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from templates_app.compose import (
    COPY_FIELDS,
    FORMATS,
    REQUIRED_FIELDS,
    BoxFit,
    Brand,
    measure_copy,
)
from templates_app.models import TemplateKind

# The fields the copy model may write, per kind; the others come from the form.
WRITABLE: dict[str, tuple[str, ...]] = {
    TemplateKind.BILLBOARD: ("headline", "subline", "cta"),
    TemplateKind.DISCOUNT_BANNER: ("cta",),
    TemplateKind.PRODUCT_SHOT: (),
}
DESCRIBED = {"headline": "the headline: short, concrete, memorable",
             "subline": "one supporting line under the headline",
             "cta": "a call to action of two to four words"}
MAX_REASKS = 2
# A sample word to measure a box's budget with (a budget does not depend on the text).
_PROBE = "Brenia"


@dataclass(frozen=True)
class Misfit:
    field: str
    format: str
    chars: int
    message: str


def copy_fields(kind: str, variables: dict[str, Any]) -> dict[str, str]:
    """The copy given in the form, by box name."""
    return {name: str(variables.get(name) or "").strip() for name in COPY_FIELDS[kind]
            if str(variables.get(name) or "").strip()}


def fields_to_write(kind: str, variables: dict[str, Any]) -> tuple[str, ...]:
    """What the copy model must write: nothing when the headline is given."""
    writable = WRITABLE.get(kind, ())
    if kind == TemplateKind.BILLBOARD and str(variables.get("headline") or "").strip():
        return ()
    return tuple(name for name in writable if not str(variables.get(name) or "").strip())


def budgets(*, kind: str, formats: list[str], brand: Brand,
            fields: tuple[str, ...]) -> dict[str, int]:
    """The tightest character budget of each field over ``formats``."""
    found: dict[str, int] = {}
    probe = {name: _PROBE for name in fields}
    for slug in formats:
        for fit in measure_copy(kind=kind, fmt=FORMATS[slug], brand=brand,
                                copy=_measurable(kind, probe)):
            if fit.box in fields:
                found[fit.box] = min(found.get(fit.box, 10**6), fit.max_chars)
    return found


def _measurable(kind: str, copy: dict[str, str]) -> dict[str, str]:
    """``copy`` with a stand-in for each required box it lacks (a box's budget and fit
    do not depend on the other boxes' text being final)."""
    return {**{name: _PROBE for name in REQUIRED_FIELDS[kind]}, **copy}


def copy_request(*, kind: str, variables: dict[str, Any], brand_tone: str,
                 banned_words: list[str], fields: tuple[str, ...],
                 limits: dict[str, int]) -> dict[str, Any]:
    """The copy model's inputs: a brief, instructions, and the answer's JSON schema."""
    tone = str(variables.get("tone") or brand_tone or "confident, warm, plain-spoken")
    brief = [f"Write advertising copy for a {kind.replace('_', ' ')}."]
    for name, label in (("product", "Product"), ("product_name", "Product"),
                        ("offer", "Offer"), ("audience", "Audience"),
                        ("discount", "Discount")):
        if variables.get(name):
            brief.append(f"{label}: {variables[name]}")
    fixed = copy_fields(kind, variables)
    if fixed:
        brief.append("Already written (keep consistent): " + "; ".join(
            f"{name}: {text}" for name, text in fixed.items()))
    brief.append("Write " + "; ".join(
        f"{DESCRIBED.get(name, name)} (at most {limits.get(name, 60)} characters)"
        for name in fields) + ".")
    system = (f"You are a senior copywriter. Tone of voice: {tone}. Respect every maximum "
              "length exactly: it is what fits the layout. No hashtags, no emoji.")
    if banned_words:
        system += " Never use these words: " + ", ".join(banned_words) + "."
    schema = {"type": "object", "required": list(fields),
              "properties": {name: {"type": "string", "minLength": 1,
                                    "maxLength": max(1, limits.get(name, 60))}
                             for name in fields}}
    return {"prompt": "\n".join(brief), "system": system, "response_schema": schema,
            "temperature": 0.8}


def parse_answer(text: str, fields: tuple[str, ...]) -> dict[str, str] | None:
    """The model's JSON answer as copy, or None if it is not the JSON asked for."""
    try:
        answer = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(answer, dict):
        return None
    copy = {name: str(answer.get(name) or "").strip() for name in fields}
    return copy if all(copy.values()) else None


def banned_in(text: str, banned_words: Sequence[str]) -> list[str]:
    return [word for word in banned_words
            if word.strip() and re.search(rf"\b{re.escape(word.strip())}\b", text, re.I)]


def misfits(*, kind: str, formats: list[str], brand: Brand, copy: dict[str, str],
            fields: tuple[str, ...] | None = None,
            banned_words: Sequence[str] = ()) -> list[Misfit]:
    """Every box (of ``fields``, or all) whose copy does not fit, in every format."""
    found: list[Misfit] = []
    for name, text in copy.items():
        used = banned_in(text, banned_words) if fields is None or name in fields else []
        if used:
            found.append(Misfit(name, "", 0, f"The {_label(name)} uses a banned word "
                                f"({', '.join(used)})."))
    for slug in formats:
        fmt = FORMATS[slug]
        for fit in measure_copy(kind=kind, fmt=fmt, brand=brand,
                                copy=_measurable(kind, copy)):
            if fit.box in copy and not fit.fits and (fields is None or fit.box in fields):
                found.append(Misfit(fit.box, slug, fit.max_chars, _misfit_message(fit)))
    return found


def _label(box: str) -> str:
    return {"cta": "call to action", "product_name": "product name",
            "subline": "subline"}.get(box, box)


def _misfit_message(fit: BoxFit) -> str:
    fmt = FORMATS[fit.format]
    lines = "1 line" if fit.max_lines == 1 else f"{fit.max_lines} lines"
    return (f"The {_label(fit.box)} does not fit its box in {fmt.width}×{fmt.height} "
            f"({fmt.label}): at most {lines} of about {fit.chars_per_line} characters.")


def tighter_limits(limits: dict[str, int], found: list[Misfit],
                   copy: dict[str, str]) -> dict[str, int]:
    """Budgets for asking again: the measured budget, and shorter than what failed."""
    tighter = dict(limits)
    for misfit in found:
        if not misfit.format:
            continue
        current = len(copy.get(misfit.field, ""))
        budget = min(misfit.chars or current, int(current * 0.8))
        tighter[misfit.field] = max(1, min(tighter.get(misfit.field, budget), budget))
    return tighter
