"""Provider lookup: a registry row names its provider, or a provider class path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

from generation.providers.base import PermanentProviderError, Provider

if TYPE_CHECKING:
    from generation.models import AIModel

BUILTIN_PROVIDERS: dict[str, str] = {
    "fal": "generation.providers.fal.FalProvider",
    "gemini": "generation.providers.gemini.GeminiProvider",
}


def provider_class_path(model: AIModel) -> str:
    return model.provider_class or BUILTIN_PROVIDERS.get(model.provider, "")


def get_provider(model: AIModel) -> Provider:
    path = provider_class_path(model)
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise PermanentProviderError(f"Provider {path!r} of model {model.slug} is unavailable.",
                                     code="provider_unavailable") from exc
    provider: Provider = cls()
    return provider
