"""Model outputs (spec §6): shapes, sizes, formats, determinism, real transformations."""

from __future__ import annotations

from typing import Any

import pytest
from fal_client import FalClientHTTPError
from PIL import Image, ImageDraw

from tests.emulators.fal_support import (  # noqa: F401  (fixtures)
    RunningFal,
    data_uri_bytes,
    fal_factory_fixture,
    fal_fixture,
    image_data_uri,
    open_image,
)

SCHNELL = "fal-ai/flux/schnell"


async def generate(fal: RunningFal, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    client = fal.async_client()
    try:
        return await client.subscribe(endpoint, body)
    finally:
        await client.aclose()


def image_bytes(fal: RunningFal, image: dict[str, Any]) -> bytes:
    if image["url"].startswith("data:"):
        return data_uri_bytes(image["url"])
    response = fal.fetch(image["url"])
    assert response.headers["content-type"] == image["content_type"]
    return response.content


@pytest.mark.parametrize(("size", "expected"), [
    ("square_hd", (1024, 1024)), ("square", (512, 512)), ("portrait_4_3", (768, 1024)),
    ("portrait_16_9", (576, 1024)), ("landscape_4_3", (1024, 768)),
    ("landscape_16_9", (1024, 576)), ({"width": 300, "height": 200}, (300, 200)),
])
async def test_images_have_the_requested_size(
        fal: RunningFal, size: Any, expected: tuple[int, int]) -> None:
    result = await generate(fal, "fal-ai/flux/dev", {"prompt": "a field", "image_size": size})
    [image] = result["images"]
    assert (image["width"], image["height"]) == expected
    assert open_image(image_bytes(fal, image)).size == expected


@pytest.mark.parametrize(("fmt", "pil_format", "mime"), [("jpeg", "JPEG", "image/jpeg"),
                                                         ("png", "PNG", "image/png")])
async def test_output_format_and_file_metadata(
        fal: RunningFal, fmt: str, pil_format: str, mime: str) -> None:
    result = await generate(fal, "fal-ai/flux-pro/v1.1", {
        "prompt": "a harbour", "image_size": "square", "output_format": fmt, "seed": 9})
    assert set(result) == {"images", "timings", "seed", "has_nsfw_concepts", "prompt"}
    assert result["seed"] == 9 and result["has_nsfw_concepts"] == [False]
    [image] = result["images"]
    assert image["content_type"] == mime and image["url"].startswith(f"{fal.url}/files/")
    data = image_bytes(fal, image)
    assert image["file_size"] == len(data) and image["file_name"] in image["url"]
    assert open_image(data).format == pil_format


async def test_same_prompt_and_seed_give_identical_bytes(fal: RunningFal) -> None:
    body = {"prompt": "a teapot on a desk", "image_size": "square", "seed": 42}
    first = image_bytes(fal, (await generate(fal, SCHNELL, body))["images"][0])
    second = image_bytes(fal, (await generate(fal, SCHNELL, body))["images"][0])
    other_seed = image_bytes(fal, (await generate(fal, SCHNELL, {**body, "seed": 43}))["images"][0])
    assert first == second and first != other_seed


async def test_unseeded_requests_echo_the_seed_they_used(fal: RunningFal) -> None:
    result = await generate(fal, SCHNELL, {"prompt": "a kite", "image_size": "square",
                                           "num_images": 3})
    assert isinstance(result["seed"], int) and len(result["images"]) == 3
    assert result["has_nsfw_concepts"] == [False, False, False]
    replay = await generate(fal, SCHNELL, {"prompt": "a kite", "image_size": "square",
                                           "num_images": 3, "seed": result["seed"]})
    assert [image_bytes(fal, i) for i in replay["images"]] == [
        image_bytes(fal, i) for i in result["images"]]


async def test_images_carry_the_offline_preview_mark(fal: RunningFal) -> None:
    result = await generate(fal, SCHNELL, {"prompt": "a mark", "image_size": "square",
                                           "output_format": "png"})
    image = open_image(image_bytes(fal, result["images"][0])).convert("RGB")
    band = image.crop((0, 0, 512, 20))
    colours = {band.getpixel((x, y)) for x in range(0, 512, 2) for y in range(20)}
    assert (0, 0, 0) in colours and (255, 255, 255) in colours  # white text on a black band


async def test_sync_mode_returns_data_uris(fal: RunningFal) -> None:
    result = await generate(fal, SCHNELL, {"prompt": "inline", "image_size": "square",
                                           "sync_mode": True, "output_format": "png"})
    [image] = result["images"]
    assert image["url"].startswith("data:image/png;base64,")
    assert open_image(data_uri_bytes(image["url"])).size == (512, 512)
    assert fal.state.stats()["files"] == 0


async def test_nsfw_fault_flags_and_blacks_the_image(fal: RunningFal) -> None:
    result = await generate(fal, SCHNELL, {"prompt": "beach [[fal:nsfw]]",
                                           "image_size": "square", "num_images": 2})
    assert result["has_nsfw_concepts"] == [True, True]
    image = open_image(image_bytes(fal, result["images"][0])).convert("L")
    assert image.getextrema() == (0, 0)


async def test_image_to_image_transforms_the_input(fal: RunningFal) -> None:
    source = Image.new("RGB", (320, 240), (10, 90, 200))
    result = await generate(fal, "fal-ai/flux/dev/image-to-image", {
        "prompt": "make it warm", "image_url": image_data_uri(source), "strength": 0.9,
        "output_format": "png", "seed": 1})
    [image] = result["images"]
    assert (image["width"], image["height"]) == (320, 240)
    output = open_image(image_bytes(fal, image)).convert("RGB")
    assert output.size == (320, 240)
    middle = output.getpixel((160, 120))
    assert middle != (10, 90, 200)
    assert abs(middle[2] - 200) < 200  # still carries the input's colour


async def test_image_to_image_fetches_an_http_url(fal: RunningFal) -> None:
    made = await generate(fal, SCHNELL, {"prompt": "base", "image_size": "landscape_16_9"})
    result = await generate(fal, "fal-ai/flux/dev/image-to-image", {
        "prompt": "restyle", "image_url": made["images"][0]["url"]})
    assert (result["images"][0]["width"], result["images"][0]["height"]) == (1024, 576)


async def test_face_swap_pastes_the_swap_face_into_the_base(fal: RunningFal) -> None:
    base = Image.new("RGB", (400, 300), (0, 0, 255))
    swap = Image.new("RGB", (200, 200), (255, 0, 0))
    result = await generate(fal, "fal-ai/face-swap", {
        "base_image_url": image_data_uri(base), "swap_image_url": image_data_uri(swap)})
    assert set(result) == {"image"}
    output = open_image(image_bytes(fal, result["image"])).convert("RGB")
    assert output.size == (400, 300)
    assert output.getpixel((200, 120)) == (255, 0, 0)
    assert output.getpixel((5, 295)) == (0, 0, 255)


def subject_on_plain_background() -> Image.Image:
    image = Image.new("RGB", (300, 240), (30, 200, 40))
    ImageDraw.Draw(image).ellipse((100, 70, 200, 170), fill=(200, 20, 20))
    return image


@pytest.mark.parametrize(("fmt", "pil_format"), [("png", "PNG"), ("webp", "WEBP"),
                                                 ("gif", "GIF")])
async def test_background_removal_gives_real_transparency(
        fal: RunningFal, fmt: str, pil_format: str) -> None:
    result = await generate(fal, "fal-ai/birefnet/v2", {
        "image_url": image_data_uri(subject_on_plain_background()), "output_format": fmt})
    assert set(result) == {"image"}
    output = open_image(image_bytes(fal, result["image"]))
    assert output.format == pil_format and output.size == (300, 240)
    rgba = output.convert("RGBA")
    assert rgba.getpixel((2, 2))[3] == 0 and rgba.getpixel((150, 120))[3] == 255


async def test_background_removal_returns_the_mask_when_asked(fal: RunningFal) -> None:
    result = await generate(fal, "fal-ai/birefnet/v2", {
        "image_url": image_data_uri(subject_on_plain_background()), "output_mask": True,
        "model": "Portrait", "operating_resolution": "2048x2048"})
    mask = open_image(image_bytes(fal, result["mask_image"])).convert("L")
    assert mask.size == (300, 240)
    assert mask.getpixel((2, 2)) == 0 and mask.getpixel((150, 120)) == 255


async def test_lora_and_pro_models_produce_flux_outputs(fal: RunningFal) -> None:
    lora = await generate(fal, "fal-ai/flux-lora", {
        "prompt": "styled", "image_size": "square",
        "loras": [{"path": "https://example.com/style.safetensors", "scale": 0.7}]})
    pro = await generate(fal, "fal-ai/flux-pro/v1.1", {
        "prompt": "pro", "image_size": "square", "safety_tolerance": "5",
        "enhance_prompt": True})
    for result in (lora, pro):
        assert result["images"][0]["width"] == 512 and "inference" in result["timings"]


@pytest.mark.parametrize(("url", "kind"), [
    ("data:image/png;base64,bm90IGFuIGltYWdl", "image_load_error"),
    ("ftp://example.com/a.png", "file_download_error"),
])
async def test_unusable_input_images_fail_with_422(fal: RunningFal, url: str, kind: str) -> None:
    client = fal.async_client()
    handle = await client.submit("fal-ai/birefnet/v2", {"image_url": url})
    with pytest.raises(FalClientHTTPError) as caught:
        await handle.get()
    assert caught.value.status_code == 422
    [item] = caught.value.message  # type: ignore[misc]
    assert item["type"] == kind and item["loc"] == ["body", "image_url"]
    await client.aclose()


async def test_missing_http_image_is_a_download_error(fal: RunningFal) -> None:
    client = fal.async_client()
    handle = await client.submit("fal-ai/face-swap", {
        "base_image_url": f"{fal.url}/files/missing.png",
        "swap_image_url": f"{fal.url}/files/missing.png"})
    with pytest.raises(FalClientHTTPError) as caught:
        await handle.get()
    [item] = caught.value.message  # type: ignore[misc]
    assert item["type"] == "file_download_error" and item["loc"] == ["body", "base_image_url"]
    await client.aclose()
