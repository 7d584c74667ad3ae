"""The reference-image cache: each content normalised once, URLs reused briefly, the
least recently used image out first when the byte bound is reached."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image as PILImage
from prometheus_client import REGISTRY

from generation.jobs.services import generation_check
from generation.providers import reference_cache
from generation.providers.reference_cache import (
    fetched,
    normalised,
    reference_cache_reset,
    remember_fetch,
)
from tests.conftest import Persona


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def fresh_cache(settings: Any) -> Iterator[Clock]:
    clock = Clock()
    settings.BRENIA_REFERENCE_CACHE_MB = 1.0
    settings.BRENIA_REFERENCE_CACHE_SECONDS = 60.0
    reference_cache_reset(clock)
    yield clock
    reference_cache_reset()


def _counted(kind: str, result: str) -> float:
    return REGISTRY.get_sample_value("brenia_reference_cache_requests_total",
                                     {"kind": kind, "result": result}) or 0.0


def _jpeg(colour: tuple[int, int, int], size: int = 64) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (size, size), colour).save(out, "JPEG", quality=90)
    return out.getvalue()


def test_the_same_content_is_normalised_once() -> None:
    calls: list[bytes] = []

    def make(raw: bytes) -> tuple[bytes, str]:
        calls.append(raw)
        return raw[::-1], "image/png"

    assert normalised(b"photo-1", make) == (b"1-otohp", "image/png")
    assert normalised(b"photo-1", make) == (b"1-otohp", "image/png")
    assert normalised(b"photo-2", make) == (b"2-otohp", "image/png")
    assert calls == [b"photo-1", b"photo-2"]


def test_a_refused_image_is_not_cached() -> None:
    def refuse(raw: bytes) -> tuple[bytes, str]:
        raise ValueError("not an image")

    for _ in range(2):
        with pytest.raises(ValueError):
            normalised(b"junk", refuse)
    assert reference_cache.stats()["images"] == 0


def test_the_least_recently_used_image_goes_first(settings: Any, fresh_cache: Clock) -> None:
    settings.BRENIA_REFERENCE_CACHE_MB = 0.25  # room for two of the 100 KB images below
    reference_cache_reset(fresh_cache)
    size = 100 * 1024
    images = {name: bytes([n]) * size for n, name in enumerate("abc")}
    made: list[str] = []

    def make_of(name: str) -> Any:
        def make(raw: bytes) -> tuple[bytes, str]:
            made.append(name)
            return raw, "image/png"
        return make

    normalised(images["a"], make_of("a"))
    normalised(images["b"], make_of("b"))
    normalised(images["a"], make_of("a"))  # a is now the most recently used
    normalised(images["c"], make_of("c"))  # over the bound: b goes, not a
    normalised(images["a"], make_of("a"))
    normalised(images["b"], make_of("b"))
    assert made == ["a", "b", "c", "b"]
    assert reference_cache.stats()["bytes"] <= 0.25 * 1024 * 1024


def test_a_fetched_url_is_reused_only_while_it_is_fresh(fresh_cache: Clock) -> None:
    url = "https://cdn.example.com/lemon.png"
    assert fetched(url) is None
    remember_fetch(url, b"lemon-bytes", "image/png")
    assert fetched(url) == (b"lemon-bytes", "image/png")
    fresh_cache.now += 61
    assert fetched(url) is None


def test_uploads_in_requests_are_normalised_once_per_content(owner: Persona) -> None:
    import base64

    uri = "data:image/jpeg;base64," + base64.b64encode(_jpeg((200, 40, 40))).decode()
    hits = _counted("normalised", "hit")
    inputs = {"prompt": "a lemon on a table", "image_url": uri}
    first = generation_check(model_slug="image-to-image", inputs=inputs, options=None)
    second = generation_check(model_slug="image-to-image", inputs=dict(inputs), options=None)
    assert first.provider_arguments["image_url"] == second.provider_arguments["image_url"]
    assert first.provider_arguments["image_url"].startswith("data:image/")
    assert _counted("normalised", "hit") == hits + 1
