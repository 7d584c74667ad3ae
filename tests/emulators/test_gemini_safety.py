"""Safety outcomes: blocked images, blocked prompts and text-only answers (HTTP 200)."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import types

from tests.emulators.gemini_support import (
    FLASH_IMAGE,
    NB2_IMAGE,
    PRO_IMAGE,
    client,
    gemini,
    gemini_server,
    image_config,
    image_parts,
)

__all__ = ["client", "gemini", "gemini_server"]  # fixtures, imported explicitly


@pytest.mark.parametrize(("token", "reason"), [
    ("image_safety", types.FinishReason.IMAGE_SAFETY),
    ("image_prohibited", types.FinishReason.IMAGE_PROHIBITED_CONTENT),
    ("image_other", types.FinishReason.IMAGE_OTHER),
    ("finish=NO_IMAGE", types.FinishReason.NO_IMAGE),
])
def test_withheld_image_is_200_with_finish_reason_and_no_image(
        client: genai.Client, token: str, reason: types.FinishReason) -> None:
    resp = client.models.generate_content(model=PRO_IMAGE,
                                          contents=f"A portrait [[gemini:{token}]]",
                                          config=image_config("1:1"))
    assert resp.candidates and resp.candidates[0].finish_reason == reason
    assert image_parts(resp) == []
    assert resp.text is None
    assert resp.usage_metadata and resp.usage_metadata.prompt_token_count


async def test_blocked_prompt_has_feedback_and_no_candidates(client: genai.Client) -> None:
    resp = await client.aio.models.generate_content(model=FLASH_IMAGE,
                                                    contents="Something [[gemini:block]]")
    assert resp.prompt_feedback
    assert resp.prompt_feedback.block_reason == types.BlockedReason.PROHIBITED_CONTENT
    assert not resp.candidates
    assert resp.text is None and resp.parts is None
    usage = resp.usage_metadata
    assert usage and usage.prompt_token_count and not usage.candidates_token_count
    other = await client.aio.models.generate_content(model=FLASH_IMAGE,
                                                     contents="x [[gemini:block=SAFETY]]")
    assert other.prompt_feedback and other.prompt_feedback.block_reason == "SAFETY"


def test_blocked_prompt_streams_as_one_chunk(client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(model=NB2_IMAGE,
                                                        contents="x [[gemini:block]]"))
    assert len(chunks) == 1 and chunks[0].prompt_feedback and not chunks[0].candidates


def test_text_only_stop_answer_has_no_image(client: genai.Client) -> None:
    resp = client.models.generate_content(model=NB2_IMAGE,
                                          contents="A logo for Acme [[gemini:no_image]]",
                                          config=types.GenerateContentConfig(
                                              response_modalities=["TEXT", "IMAGE"]))
    assert resp.candidates and resp.candidates[0].finish_reason == types.FinishReason.STOP
    assert image_parts(resp) == []
    assert resp.text and "?" in resp.text
    assert "[[" not in resp.text


def test_text_safety_finish_carries_ratings(client: genai.Client) -> None:
    resp = client.models.generate_content(model="gemini-2.5-flash",
                                          contents="x [[gemini:finish=SAFETY]]")
    assert resp.candidates and resp.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert resp.candidates[0].safety_ratings
    assert resp.text is None
