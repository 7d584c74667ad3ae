"""Text, JSON, streaming, countTokens and the models API, through the stock SDK only."""

from __future__ import annotations

import enum
import json

import jsonschema
import pydantic
import pytest
from google import genai
from google.genai import types

from tests.emulators.gemini_support import (
    PRO_IMAGE,
    TEXT_MODEL,
    RunningEmulator,
    client,
    gemini,
    gemini_server,
    make_client,
    png_bytes,
)

__all__ = ["client", "gemini", "gemini_server"]  # fixtures, imported explicitly


class Channel(enum.Enum):
    INSTAGRAM = "instagram"
    BILLBOARD = "billboard"


class Variant(pydantic.BaseModel):
    headline: str
    cta: str
    channel: Channel
    discount_percent: int = pydantic.Field(ge=5, le=30)
    hashtags: list[str] = pydantic.Field(min_length=3)
    note: str | None = None


class Campaign(pydantic.BaseModel):
    product: str
    variants: list[Variant]
    approved: bool


def test_sync_text_answer_is_deterministic_and_uses_the_prompt(client: genai.Client) -> None:
    prompt = "Write a headline for handmade lavender soap"
    first = client.models.generate_content(model=TEXT_MODEL, contents=prompt)
    second = client.models.generate_content(model=TEXT_MODEL, contents=prompt)
    assert first.text == second.text
    assert first.text is not None and "lavender" in first.text.lower()
    assert first.response_id != second.response_id
    assert first.model_version == TEXT_MODEL
    assert first.candidates is not None
    assert first.candidates[0].finish_reason == types.FinishReason.STOP
    other = client.models.generate_content(model=TEXT_MODEL, contents="Sell mountain bikes")
    assert other.text != first.text


async def test_async_text_matches_sync(client: genai.Client) -> None:
    prompt = "Tagline for an espresso bar"
    sync = client.models.generate_content(model=TEXT_MODEL, contents=prompt)
    answer = await client.aio.models.generate_content(model=TEXT_MODEL, contents=prompt)
    assert answer.text == sync.text
    usage = answer.usage_metadata
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
    assert usage.total_token_count == (usage.prompt_token_count + usage.candidates_token_count
                                       + (usage.thoughts_token_count or 0))


def test_stream_splits_text_and_ends_with_finish_and_usage(client: genai.Client) -> None:
    prompt = "Write a short ad for recycled sneakers"
    chunks = list(client.models.generate_content_stream(model=TEXT_MODEL, contents=prompt))
    assert len(chunks) >= 2
    whole = client.models.generate_content(model=TEXT_MODEL, contents=prompt)
    assert "".join(c.text or "" for c in chunks) == whole.text
    assert len({c.response_id for c in chunks}) == 1
    for chunk in chunks[:-1]:
        assert chunk.candidates and chunk.candidates[0].finish_reason is None
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata and last.usage_metadata.candidates_token_count


async def test_async_stream_yields_the_same_text(client: genai.Client) -> None:
    prompt = "Write a short ad for recycled sneakers"
    pieces = [c.text async for c in await client.aio.models.generate_content_stream(
        model=TEXT_MODEL, contents=prompt)]
    assert len(pieces) >= 2
    assert "".join(p or "" for p in pieces) == client.models.generate_content(
        model=TEXT_MODEL, contents=prompt).text


def test_pydantic_response_schema_parses_into_the_model(client: genai.Client) -> None:
    resp = client.models.generate_content(
        model=TEXT_MODEL, contents="Campaign for solar lanterns aimed at campers",
        config=types.GenerateContentConfig(response_mime_type="application/json",
                                           response_schema=Campaign))
    assert isinstance(resp.parsed, Campaign)
    assert resp.parsed.variants and all(len(v.hashtags) >= 3 for v in resp.parsed.variants)
    assert all(5 <= v.discount_percent <= 30 for v in resp.parsed.variants)
    assert resp.text is not None
    assert list(json.loads(resp.text)) == ["product", "variants", "approved"]


async def test_json_schema_dict_answer_validates(client: genai.Client) -> None:
    schema = {
        "type": "object",
        "properties": {
            "headline": {"type": "string", "maxLength": 40},
            "body": {"type": "string", "minLength": 20},
            "colours": {"type": "array", "items": {"type": "string", "pattern": "^#[0-9a-f]{6}$"},
                        "minItems": 2, "maxItems": 4},
            "rating": {"type": "number", "minimum": 1, "maximum": 5},
            "score": {"type": "integer", "exclusiveMinimum": 10, "exclusiveMaximum": 13},
            "tone": {"enum": ["calm", "loud"]},
            "launch": {"type": "string", "format": "date"},
            "owner": {"$ref": "#/$defs/Person"},
            "extra": {"anyOf": [{"type": "null"}, {"type": "boolean"}]},
        },
        "required": ["headline", "body", "colours", "rating", "score", "tone", "owner"],
        "$defs": {"Person": {"type": "object", "properties": {"email": {
            "type": "string", "format": "email"}}, "required": ["email"]}},
    }
    resp = await client.aio.models.generate_content(
        model="gemini-2.5-flash-lite", contents="Copy for a citrus sparkling water",
        config=types.GenerateContentConfig(response_mime_type="application/json",
                                           response_json_schema=schema))
    assert resp.text is not None
    jsonschema.validate(json.loads(resp.text), schema)


def test_openapi_schema_respects_property_ordering_and_enum_mode(client: genai.Client) -> None:
    schema = types.Schema(type=types.Type.OBJECT, property_ordering=["z", "a"], required=["a"],
                          properties={"a": types.Schema(type=types.Type.STRING),
                                      "z": types.Schema(type=types.Type.INTEGER, minimum=3,
                                                        maximum=3)})
    resp = client.models.generate_content(
        model="gemini-3-flash", contents="numbers",
        config=types.GenerateContentConfig(response_mime_type="application/json",
                                           response_schema=schema))
    assert resp.text is not None
    assert json.loads(resp.text) == {"z": 3, "a": json.loads(resp.text)["a"]}
    assert list(json.loads(resp.text)) == ["z", "a"]
    enum_resp = client.models.generate_content(
        model=TEXT_MODEL, contents="Pick a channel",
        config=types.GenerateContentConfig(response_mime_type="text/x.enum",
                                           response_schema=Channel))
    assert enum_resp.parsed in (Channel.INSTAGRAM, Channel.BILLBOARD)


def test_max_output_tokens_cuts_the_answer(client: genai.Client) -> None:
    resp = client.models.generate_content(
        model=TEXT_MODEL, contents="Long ad copy for winter boots",
        config=types.GenerateContentConfig(max_output_tokens=5))
    assert resp.text is not None and len(resp.text) <= 20
    assert resp.candidates and resp.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS


def test_thinking_models_report_thought_tokens_and_parts_on_request(client: genai.Client) -> None:
    plain = client.models.generate_content(model="gemini-3-flash", contents="Ad for tea")
    assert plain.usage_metadata and plain.usage_metadata.thoughts_token_count
    assert not any(p.thought for p in plain.parts or [])
    assert all(p.thought_signature for p in plain.parts or [])
    thoughtful = client.models.generate_content(
        model="gemini-3-flash", contents="Ad for tea",
        config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(include_thoughts=True)))
    assert thoughtful.parts and thoughtful.parts[0].thought
    assert thoughtful.text == plain.text  # resp.text skips thought parts
    lite = client.models.generate_content(model="gemini-2.5-flash-lite", contents="Ad for tea")
    assert lite.usage_metadata and not lite.usage_metadata.thoughts_token_count
    assert not any(p.thought_signature for p in lite.parts or [])


def test_count_tokens_counts_text_and_images(client: genai.Client) -> None:
    text_only = client.models.count_tokens(model=TEXT_MODEL, contents="four words here now")
    assert text_only.total_tokens == 5
    with_image = client.models.count_tokens(
        model=TEXT_MODEL, contents=["four words here now",
                                    types.Part.from_bytes(data=png_bytes((1, 2, 3)),
                                                          mime_type="image/png")])
    assert with_image.total_tokens == 5 + 258
    pro = client.models.count_tokens(
        model=PRO_IMAGE, contents=[types.Part.from_bytes(data=png_bytes((1, 2, 3)),
                                                         mime_type="image/png")])
    assert pro.total_tokens == 1120


def test_models_get_and_paged_list(client: genai.Client) -> None:
    model = client.models.get(model="gemini-3.1-flash-image")
    assert model.name == "models/gemini-3.1-flash-image"
    assert model.display_name == "Nano Banana 2"
    assert model.supported_actions and "generateContent" in model.supported_actions
    assert model.input_token_limit and model.output_token_limit
    first_page = client.models.list(config={"page_size": 3})
    assert len(first_page.page) == 3
    names = [m.name for m in first_page]  # iterating follows nextPageToken
    assert len(names) == len(set(names)) >= 9
    assert {"models/gemini-2.5-flash-image", "models/gemini-3-pro-image",
            "models/gemini-3-pro-image-preview", "models/gemini-2.5-flash"} <= set(names)
    alias = client.models.get(model="nano-banana-pro-preview")
    assert alias.name == "models/gemini-3-pro-image-preview"


@pytest.mark.parametrize("api_version", ["v1", "v1beta", "v1alpha"])
def test_every_api_version_is_served(gemini: RunningEmulator, api_version: str) -> None:
    with make_client(gemini.url, api_version=api_version) as sdk:
        resp = sdk.models.generate_content(model=TEXT_MODEL, contents="hello versions")
        assert resp.text
    assert gemini.state.requests(TEXT_MODEL, "generateContent") == 1


def test_base_url_path_prefix_is_tolerated(gemini: RunningEmulator) -> None:
    with make_client(gemini.url + "/some/prefix/") as sdk:
        assert sdk.models.generate_content(model=TEXT_MODEL, contents="prefixed").text
        assert sdk.models.get(model=TEXT_MODEL).name == f"models/{TEXT_MODEL}"


def test_chat_history_round_trips(client: genai.Client) -> None:
    chat = client.chats.create(model="gemini-3-flash")
    first = chat.send_message("Name a coffee brand")
    second = chat.send_message("Now a slogan for it")
    assert first.text and second.text and first.text != second.text
    assert len(chat.get_history()) == 4
