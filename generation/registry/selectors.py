"""Reads on the registry."""

from __future__ import annotations

from django.db.models import QuerySet

from brenia.errors import NotFound
from generation.models import AIModel


def model_list_enabled() -> QuerySet[AIModel]:
    return AIModel.objects.filter(enabled=True)


def model_get(*, slug: str) -> AIModel:
    model = AIModel.objects.filter(slug=slug).first()
    if model is None:
        raise NotFound(f"There is no model {slug!r}.", code="unknown_model")
    return model
