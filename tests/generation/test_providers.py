"""Provider lookup: a registry row only ever reaches a class in BRENIA_PROVIDER_CLASSES."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from generation.models import AIModel
from generation.providers import get_provider
from generation.providers.base import PermanentProviderError
from generation.providers.fal import FalProvider
from generation.providers.gemini import GeminiProvider


def row(provider: str = "fal", provider_class: str = "") -> AIModel:
    # Unsaved: lookup reads only these two fields, as the runner's copy of the row has them.
    return AIModel(slug="lookup-test", provider=provider, provider_class=provider_class)


@pytest.mark.parametrize("provider_class", [
    "os.system",
    "subprocess.Popen",
    "generation.providers.fal_transport.FalAsyncClient",
    "generation.providers.nowhere.Provider",
    "this.s",
])
def test_get_provider_refuses_a_class_path_outside_the_allow_list(provider_class: str) -> None:
    sys.modules.pop("this", None)
    with pytest.raises(PermanentProviderError) as refused:
        get_provider(row(provider_class=provider_class))
    assert refused.value.code == "provider_unavailable"
    assert provider_class in refused.value.message
    assert "this" not in sys.modules  # refused before any import


@pytest.mark.parametrize(("provider", "provider_class", "expected"), [
    ("fal", "", FalProvider),
    ("gemini", "", GeminiProvider),
    ("fal", "gemini", GeminiProvider),  # a key of the allow-list
    ("fal", "generation.providers.gemini.GeminiProvider", GeminiProvider),  # or its path
])
def test_get_provider_builds_the_allow_listed_class(provider: str, provider_class: str,
                                                    expected: type) -> None:
    assert type(get_provider(row(provider, provider_class))) is expected


def test_a_provider_taken_off_the_allow_list_is_refused(settings: Any) -> None:
    settings.BRENIA_PROVIDER_CLASSES = {"fal": "generation.providers.fal.FalProvider"}
    with pytest.raises(PermanentProviderError) as refused:
        get_provider(row("gemini"))
    assert refused.value.code == "provider_unavailable"
    with pytest.raises(PermanentProviderError):
        get_provider(row("fal", "generation.providers.gemini.GeminiProvider"))


def test_an_allow_list_entry_that_is_no_provider_is_refused(settings: Any) -> None:
    settings.BRENIA_PROVIDER_CLASSES = {"fal": "os.system"}
    with pytest.raises(PermanentProviderError) as refused:
        get_provider(row("fal"))
    assert refused.value.code == "provider_unavailable"
