"""Image generation through the stock SDK: pixel sizes, references, usage, thoughts."""

from __future__ import annotations

import io

import pytest
from google import genai
from google.genai import types
from PIL import Image

from tests.emulators.gemini_support import (
    FLASH_IMAGE,
    NB2_IMAGE,
    PRO_IMAGE,
    client,
    gemini,
    gemini_server,
    image_config,
    image_parts,
    only_image,
    png_bytes,
)

__all__ = ["client", "gemini", "gemini_server"]  # fixtures, imported explicitly


@pytest.mark.parametrize(("model", "ratio", "size", "pixels", "tokens"), [
    (FLASH_IMAGE, None, None, (1024, 1024), 1290),
    (FLASH_IMAGE, "16:9", None, (1344, 768), 1290),
    (FLASH_IMAGE, "21:9", None, (1536, 672), 1290),
    (PRO_IMAGE, "3:4", "1K", (896, 1200), 1120),
    ("gemini-3-pro-image", "16:9", "2K", (2752, 1536), 1120),
    (PRO_IMAGE, "16:9", "4K", (5504, 3072), 2000),
    (NB2_IMAGE, "1:1", "512", (512, 512), 747),
    (NB2_IMAGE, "4:1", "1K", (2048, 512), 1120),
    ("gemini-3.1-flash-image-preview", "9:16", "2K", (1536, 2752), 1680),
    (NB2_IMAGE, "4:5", "4K", (3712, 4608), 2520),
])
def test_image_pixel_size_and_tokens_follow_the_model_table(
        client: genai.Client, model: str, ratio: str | None, size: str | None,
        pixels: tuple[int, int], tokens: int) -> None:
    resp = client.models.generate_content(model=model, contents="A lemonade stand at dusk",
                                          config=image_config(ratio, size))
    image = only_image(resp)
    assert image.format == "PNG"
    assert image.size == pixels
    usage = resp.usage_metadata
    assert usage is not None and usage.candidates_tokens_details is not None
    assert [(d.modality, d.token_count) for d in usage.candidates_tokens_details] == [
        (types.MediaModality.IMAGE, tokens)]
    assert usage.candidates_token_count == tokens
    assert usage.total_token_count == (
        (usage.prompt_token_count or 0) + tokens + (usage.thoughts_token_count or 0))
    assert resp.model_version == model


def test_image_is_deterministic_and_marked_as_an_offline_preview(client: genai.Client) -> None:
    prompt = "Poster for a jazz night in Lisbon"
    first = client.models.generate_content(model=FLASH_IMAGE, contents=prompt)
    second = client.models.generate_content(model=FLASH_IMAGE, contents=prompt)
    other = client.models.generate_content(model=FLASH_IMAGE, contents="Poster for a bakery")
    data = [r.parts[-1].inline_data.data for r in (first, second, other)  # type: ignore[index, union-attr]
            if r.parts]
    assert data[0] == data[1] != data[2]
    image = only_image(first)
    assert "OFFLINE PREVIEW" in image.info["Comment"] and prompt in image.info["Comment"]
    # The default modalities (TEXT + IMAGE) give a caption before the image.
    assert first.parts and first.parts[0].text and first.parts[1].inline_data
    assert first.parts[1].inline_data.mime_type == "image/png"


def test_reference_image_fills_the_output_and_sets_its_shape(client: genai.Client) -> None:
    def edit(colour: tuple[int, int, int]) -> Image.Image:
        ref = types.Part.from_bytes(data=png_bytes(colour, (400, 200)), mime_type="image/png")
        resp = client.models.generate_content(model=NB2_IMAGE,
                                              contents=["Put this on a billboard", ref],
                                              config=image_config())
        return only_image(resp).convert("RGB")

    red, blue = edit((220, 20, 20)), edit((20, 20, 220))
    assert red.size == blue.size == (1376, 768)  # 2:1 input -> the nearest ratio, 16:9
    centre = (red.width // 2, red.height // 2)
    assert red.getpixel(centre) == (220, 20, 20)
    assert blue.getpixel(centre) == (20, 20, 220)
    without = client.models.generate_content(model=NB2_IMAGE, contents="Put this on a billboard",
                                             config=image_config())
    assert only_image(without).size == (1024, 1024)


def test_extra_references_appear_as_thumbnails_and_count_as_prompt_images(
        client: genai.Client) -> None:
    refs = [types.Part.from_bytes(data=png_bytes(c), mime_type="image/png")
            for c in ((250, 250, 250), (0, 255, 0), (255, 0, 255))]
    resp = client.models.generate_content(model=PRO_IMAGE, contents=["Group these", *refs],
                                          config=image_config("1:1", "1K"))
    colours = {colour for _, colour in only_image(resp).convert("RGB").getcolors(1 << 22) or []}
    assert {(0, 255, 0), (255, 0, 255)} <= colours
    usage = resp.usage_metadata
    assert usage and usage.prompt_tokens_details
    prompt_by_modality = {d.modality: d.token_count for d in usage.prompt_tokens_details}
    assert prompt_by_modality[types.MediaModality.IMAGE] == 3 * 1120
    assert usage.prompt_token_count == sum(prompt_by_modality.values())  # type: ignore[arg-type]


def test_gemini_3_signs_parts_and_shows_thoughts_only_when_asked(client: genai.Client) -> None:
    plain = client.models.generate_content(model=PRO_IMAGE, contents="Sneaker ad",
                                           config=image_config("1:1"))
    assert plain.parts and not any(p.thought for p in plain.parts)
    assert all(p.thought_signature for p in plain.parts)
    assert plain.usage_metadata and plain.usage_metadata.thoughts_token_count
    thoughtful = client.models.generate_content(
        model=PRO_IMAGE, contents="Sneaker ad",
        config=image_config("1:1", thinking_config=types.ThinkingConfig(include_thoughts=True)))
    assert thoughtful.parts and thoughtful.parts[0].thought and thoughtful.parts[0].text
    assert len(image_parts(thoughtful, thoughts=True)) == 1
    assert only_image(thoughtful).size == (1024, 1024)
    assert thoughtful.parts[-1].inline_data and not thoughtful.parts[-1].thought


def test_gemini_25_image_neither_thinks_nor_signs(client: genai.Client) -> None:
    resp = client.models.generate_content(
        model=FLASH_IMAGE, contents="Sneaker ad",
        config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(include_thoughts=True)))
    assert resp.parts and not any(p.thought or p.thought_signature for p in resp.parts)
    assert resp.usage_metadata and not resp.usage_metadata.thoughts_token_count


def test_multi_turn_edit_keeps_signatures_and_edits_the_last_image(client: genai.Client) -> None:
    chat = client.chats.create(model=NB2_IMAGE, config=image_config("16:9", "512"))
    first = chat.send_message("A red bicycle poster")
    edited = chat.send_message("Make it night time")
    assert only_image(first).size == only_image(edited).size == (688, 384)
    assert first.parts and edited.parts
    assert first.parts[-1].inline_data.data != edited.parts[-1].inline_data.data  # type: ignore[union-attr]


def test_stream_delivers_the_image_whole_in_one_chunk(client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(
        model=NB2_IMAGE, contents="Stream a poster for a kite festival",
        config=types.GenerateContentConfig(image_config=types.ImageConfig(image_size="1K"))))
    with_images = [c for c in chunks if any(p.inline_data for p in c.parts or [])]
    assert len(with_images) == 1
    image_part = next(p for p in with_images[0].parts or [] if p.inline_data)
    assert image_part.inline_data and image_part.inline_data.data
    assert Image.open(io.BytesIO(image_part.inline_data.data)).size == (1024, 1024)
    assert chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == "STOP"
    final_usage = chunks[-1].usage_metadata
    assert final_usage and final_usage.candidates_tokens_details
    assert any(d.modality == "IMAGE" and d.token_count == 1120
               for d in final_usage.candidates_tokens_details)


async def test_async_image_generation_with_search_grounding(client: genai.Client) -> None:
    search = types.GoogleSearch(search_types=types.SearchTypes(
        web_search=types.WebSearch(), image_search=types.ImageSearch()))
    resp = await client.aio.models.generate_content(
        model=NB2_IMAGE, contents="Poster of today's weather in Oslo",
        config=types.GenerateContentConfig(tools=[types.Tool(google_search=search)]))
    assert resp.candidates
    meta = resp.candidates[0].grounding_metadata
    assert meta and meta.web_search_queries and meta.image_search_queries
    assert meta.search_entry_point and meta.search_entry_point.rendered_content
    assert meta.grounding_chunks and meta.grounding_chunks[0].web
    assert meta.grounding_chunks[1].image and meta.grounding_chunks[1].image.source_uri
    assert resp.usage_metadata and resp.usage_metadata.tool_use_prompt_token_count
    assert len(image_parts(resp)) == 1
