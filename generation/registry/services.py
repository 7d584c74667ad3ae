"""Loading the seed registry shipped with Brenia."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import transaction

from generation.models import AIModel

SEED_FILE = Path(__file__).resolve().parent / "seed" / "registry.json"
DECIMAL_FIELDS = ("price_per_image", "price_per_megapixel", "price_per_million_tokens")


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
            values = {k: (Decimal(v) if k in DECIMAL_FIELDS else v)
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
