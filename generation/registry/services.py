"""Registry writes: loading the seed, and what the operator console changes.

The admin calls these services rather than saving rows itself: duplicating a model
as a new (disabled) version and importing a model's input schema from fal's
OpenAPI document. ``schema_changes`` and ``price_changes`` describe an edit for
the admin's change history.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction

from brenia.errors import Conflict, FieldProblem, InvalidInput
from generation.models import AIModel, ModelKind, Provider, ProviderPolicy

if TYPE_CHECKING:
    from generation.registry.openapi_import import ImportedSchema

PRICE_FIELDS = ("price_per_image", "price_per_megapixel", "price_per_million_tokens")
SEED_FILE = Path(__file__).resolve().parent / "seed" / "registry.json"


def seed_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(SEED_FILE.read_text())
    return rows


def registry_seed(*, update: bool = False) -> tuple[int, int]:
    """Create missing seed models; with ``update``, also overwrite existing ones.

    Without ``update`` an admin's edits are kept. Returns (created, updated).
    """
    created = updated = 0
    with transaction.atomic():
        for row in seed_rows():
            values = {k: (Decimal(v) if k in PRICE_FIELDS else v)
                      for k, v in row.items() if k not in ("slug", "fallback")}
            model = AIModel.objects.filter(slug=row["slug"]).first()
            if model is None:
                AIModel.objects.create(slug=row["slug"], **values)
                created += 1
            elif update:
                for key, value in values.items():
                    setattr(model, key, value)
                model.save()
                updated += 1
    return created, updated


# The model each kind goes to out of the box, for requests that name a kind.
SEED_POLICIES = {
    ModelKind.TEXT_TO_IMAGE: "flux-schnell",
    ModelKind.IMAGE_TO_IMAGE: "image-to-image",
    ModelKind.FACE_SWAP: "face-swap",
    ModelKind.BACKGROUND_REMOVAL: "background-removal",
    ModelKind.TEXT: "gemini-copy",
}


def policy_seed() -> int:
    """A provider policy for each kind that has none (operators' choices are kept);
    returns how many were made. Kinds whose seed model is missing are left alone."""
    made = 0
    for kind, slug in SEED_POLICIES.items():
        model = AIModel.objects.filter(slug=slug).first()
        if model is None:
            continue
        _, created = ProviderPolicy.objects.get_or_create(
            kind=kind, defaults={"model": model, "note": "Brenia's default"})
        made += created
    return made


_VERSION_SUFFIX = re.compile(r"-v(\d+)$")
_PLAIN_LABEL = re.compile(r"(v?)(\d{1,6})")
_LAST_NUMBER = re.compile(r"(\d{1,6})(?!.*\d)")
SLUG_MAX = AIModel._meta.get_field("slug").max_length or 80
LABEL_MAX = AIModel._meta.get_field("version_label").max_length or 40


def _next_version(model: AIModel) -> tuple[str, str]:
    """The first free ``<base>-v<n>`` slug, and the bumped version label.

    A plain numeric label ("1", "v1") moves in step with the slug, so duplicating
    ``flux-dev`` (label "1") gives ``flux-dev-v2`` / "2", and again ``flux-dev-v3`` /
    "3". Other labels bump their last short number ("1.2" → "1.3") or gain one
    ("beta" → "beta-2").
    """
    match = _VERSION_SUFFIX.search(model.slug)
    base = model.slug[:match.start()] if match else model.slug
    plain = _PLAIN_LABEL.fullmatch(model.version_label)
    n = max(2, int(match.group(1)) + 1 if match else 0,
            int(plain.group(2)) + 1 if plain else 0)
    while True:
        suffix = f"-v{n}"
        slug = base[:SLUG_MAX - len(suffix)] + suffix
        if not AIModel.objects.filter(slug=slug).exists():
            break
        n += 1
    last = _LAST_NUMBER.search(model.version_label)
    if plain:
        label = f"{plain.group(1)}{n}"
    elif last:
        bumped = str(int(last.group(1)) + 1).zfill(len(last.group(1)))  # "05" → "06"
        label = model.version_label[:last.start()] + bumped + model.version_label[last.end():]
    else:
        label = f"{model.version_label}-{n}" if model.version_label else str(n)
    return slug, label[:LABEL_MAX]


def aimodel_duplicate_version(*, model: AIModel) -> AIModel:
    """Copy ``model`` to a new row, the next version, disabled.

    Everything the API uses (schema, endpoint, prices, fallback) is copied; the copy
    starts disabled so users see no change until an admin enables it. The source row
    is not touched.
    """
    for _ in range(5):
        slug, label = _next_version(model)
        values = {f.name: getattr(model, f.name) for f in AIModel._meta.concrete_fields
                  if f.name not in ("id", "slug", "version_label", "enabled",
                                    "created_at", "updated_at")}
        try:
            with transaction.atomic():
                return AIModel.objects.create(slug=slug, version_label=label, enabled=False,
                                              **values)
        except IntegrityError:
            continue  # another admin took the slug between the check and the insert
    raise Conflict(f"Could not find a free version slug for {model.slug!r}.",
                   code="slug_taken")


def aimodel_import_openapi(*, imported: ImportedSchema, model: AIModel | None = None,
                           slug: str = "", display_name: str = "",
                           kind: str = "") -> AIModel:
    """Apply an imported fal schema to ``model``, or create a new fal model from it.

    On an existing row: replaces ``input_schema`` and ``endpoint_id``, and ``kind``
    (the explicit ``kind``, else the document's category when it is one of ours).
    Without ``model``: creates ``slug`` as a *disabled* fal model with zero prices,
    so nobody can call it before an admin has priced and enabled it.
    """
    chosen_kind = kind or imported.kind or ""
    if model is not None:
        model.input_schema = imported.input_schema
        model.endpoint_id = imported.endpoint_id
        if chosen_kind:
            model.kind = chosen_kind
        model.save(update_fields=["input_schema", "endpoint_id", "kind", "updated_at"])
        return model
    problems = []
    if not slug:
        problems.append(FieldProblem("slug", "is required for a new model"))
    if chosen_kind not in ModelKind.values:
        problems.append(FieldProblem("kind", f"the document's category {imported.category!r} "
                                             "is not a Brenia kind; choose one"))
    if problems:
        raise InvalidInput("The new model needs more information.", errors=problems)
    try:
        with transaction.atomic():
            return AIModel.objects.create(
                slug=slug, display_name=display_name or imported.endpoint_id,
                provider=Provider.FAL, endpoint_id=imported.endpoint_id, kind=chosen_kind,
                input_schema=imported.input_schema, thumbnail_url=imported.thumbnail_url,
                enabled=False)
    except IntegrityError:
        raise Conflict(f"A model with slug {slug!r} already exists.", code="slug_taken",
                       errors=[FieldProblem("slug", "is already taken")]) from None


# --- describing edits for the admin's history -------------------------------------------

def _properties(schema: Any) -> dict[str, Any]:
    props = schema.get("properties") if isinstance(schema, dict) else None
    return props if isinstance(props, dict) else {}


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


def schema_changes(old: Any, new: Any) -> list[str]:
    """Human sentences naming which top-level properties an edit added, removed, changed.

    Also names required-ness and other top-level keys that changed, so a history
    entry never says "changed Input schema" with nothing more.
    """
    if old == new:
        return []
    old = old if isinstance(old, dict) else {}
    new = new if isinstance(new, dict) else {}
    before, after = _properties(old), _properties(new)
    added = [n for n in after if n not in before]
    removed = [n for n in before if n not in after]
    changed = [n for n in after if n in before and before[n] != after[n]]
    lines = []
    if added:
        lines.append(f"added properties {_names(added)}")
    if removed:
        lines.append(f"removed properties {_names(removed)}")
    if changed:
        lines.append(f"changed properties {_names(changed)}")
    old_required = set(old.get("required") or [])
    new_required = set(new.get("required") or [])
    if new_required - old_required:
        lines.append(f"now required: {_names(sorted(new_required - old_required))}")
    if old_required - new_required:
        lines.append(f"no longer required: {_names(sorted(old_required - new_required))}")
    other = sorted(k for k in {*old, *new} - {"properties", "required"}
                   if old.get(k) != new.get(k))
    if other:
        lines.append(f"changed schema keys {_names(other)}")
    return lines or ["changed the schema"]


def price_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``price_per_image 0.01 → 0.02`` for each price that differs (compared as Decimals)."""
    lines = []
    for name in PRICE_FIELDS:
        before, after = old.get(name), new.get(name)
        if before is None or after is None or Decimal(str(before)) == Decimal(str(after)):
            continue
        lines.append(f"{name} {_plain(before)} → {_plain(after)}")
    return lines


def _plain(value: Any) -> str:
    """0.010000 → 0.01: the stored scale pads with zeros nobody typed."""
    number = Decimal(str(value)).normalize()
    return format(number, "f")


def change_summary(*, old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """One history line for the schema and price parts of an edit; empty if neither moved."""
    parts = []
    schema = schema_changes(old.get("input_schema"), new.get("input_schema"))
    if schema and "input_schema" in old and "input_schema" in new:
        parts.append("Input schema: " + "; ".join(schema) + ".")
    prices = price_changes(old, new)
    if prices:
        parts.append("Prices: " + "; ".join(prices) + ".")
    return " ".join(parts)
