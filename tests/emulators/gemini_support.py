"""Fixtures and helpers for the Gemini emulator tests (imported explicitly, no conftest).

One emulator runs per test module on a free loopback port; ``gemini`` resets its
counters and fault rules before each test, so tests stay independent.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from google import genai
from google.genai import types
from PIL import Image

from generation.emulators.gemini import GEMINI_STATE, GeminiEmulatorConfig, create_app
from generation.emulators.gemini.state import GeminiEmulatorState
from generation.emulators.server import EmulatorThread

API_KEY = "test-key"
TEXT_MODEL = "gemini-2.5-flash"
FLASH_IMAGE = "gemini-2.5-flash-image"
PRO_IMAGE = "gemini-3-pro-image-preview"
NB2_IMAGE = "gemini-3.1-flash-image"


@dataclass
class RunningEmulator:
    url: str
    thread: EmulatorThread

    @property
    def state(self) -> GeminiEmulatorState:
        assert self.thread.app is not None
        return self.thread.app[GEMINI_STATE]

    def client(self, **options: object) -> genai.Client:
        return make_client(self.url, **options)


def make_client(url: str, *, api_key: str = API_KEY, **options: object) -> genai.Client:
    return genai.Client(api_key=api_key,
                        http_options=types.HttpOptions(base_url=url, **options))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def gemini_server() -> Iterator[RunningEmulator]:
    thread = EmulatorThread(lambda: create_app(GeminiEmulatorConfig(latency="instant")))
    url = thread.start()
    yield RunningEmulator(url=url, thread=thread)
    thread.stop()


@pytest.fixture
def gemini(gemini_server: RunningEmulator) -> RunningEmulator:
    gemini_server.state.reset()
    return gemini_server


@pytest.fixture
def client(gemini: RunningEmulator) -> Iterator[genai.Client]:
    with gemini.client() as sdk_client:
        yield sdk_client


def png_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def image_parts(response: types.GenerateContentResponse, *,
                thoughts: bool = False) -> list[Image.Image]:
    """The PIL images of a response's first candidate (final images unless ``thoughts``)."""
    images = []
    for part in response.parts or []:
        if part.inline_data is not None and bool(part.thought) == thoughts:
            assert part.inline_data.data is not None
            images.append(Image.open(io.BytesIO(part.inline_data.data)))
    return images


def only_image(response: types.GenerateContentResponse) -> Image.Image:
    images = image_parts(response)
    assert len(images) == 1, f"expected one final image, got {len(images)}"
    return images[0]


def image_config(aspect_ratio: str | None = None, image_size: str | None = None,
                 **config: object) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        response_modalities=["IMAGE"],
        image_config=types.ImageConfig(aspect_ratio=aspect_ratio, image_size=image_size),
        **config,  # type: ignore[arg-type]
    )
