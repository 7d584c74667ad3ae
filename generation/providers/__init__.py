"""Provider lookup: a registry row's provider names a class in the settings' allow-list.

``settings.BRENIA_PROVIDER_CLASSES`` maps names to dotted class paths. A registry row
is edited in the admin, so what it holds is never imported as such: its ``provider``
(or, when set, its ``provider_class``, as a name or a path) must be in that list. An
admin account is then not a way to run arbitrary code on the workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.module_loading import import_string

from generation.providers.base import PermanentProviderError, Provider

if TYPE_CHECKING:
    from generation.models import AIModel


def allowed_provider_classes() -> dict[str, str]:
    """Name → dotted path of every provider class a registry row may use."""
    return dict(settings.BRENIA_PROVIDER_CLASSES)


def provider_class_path(*, provider: str, provider_class: str = "") -> str:
    """The allow-listed class path a row's ``provider``/``provider_class`` pick.

    ``provider_class`` overrides ``provider`` when set, and may name an entry of the
    allow-list by key or by path. Raises PermanentProviderError (code
    ``provider_unavailable``) for anything the allow-list does not hold.
    """
    allowed = allowed_provider_classes()
    chosen = provider_class or provider
    if chosen in allowed:
        return allowed[chosen]
    if provider_class and provider_class in allowed.values():
        return provider_class
    what = "provider class" if provider_class else "provider"
    raise PermanentProviderError(
        f"The {what} {chosen!r} is not in BRENIA_PROVIDER_CLASSES.",
        code="provider_unavailable")


def get_provider(model: AIModel) -> Provider:
    path = provider_class_path(provider=model.provider, provider_class=model.provider_class)
    try:
        cls = import_string(path)
    except ImportError as exc:
        # Only a broken allow-list gets here: its entries are deployment code.
        raise PermanentProviderError(f"Provider {path!r} of model {model.slug} is unavailable.",
                                     code="provider_unavailable") from exc
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise PermanentProviderError(f"{path!r} of model {model.slug} is not a provider class.",
                                     code="provider_unavailable")
    return cls()
