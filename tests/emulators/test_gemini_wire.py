"""What the SDK cannot send: raw REST bodies, ``?key=``, framing and content types."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.emulators.gemini_support import (
    API_KEY,
    FLASH_IMAGE,
    NB2_IMAGE,
    PRO_IMAGE,
    TEXT_MODEL,
    RunningEmulator,
    gemini,
    gemini_server,
    png_bytes,
)

__all__ = ["gemini", "gemini_server"]  # fixtures, imported explicitly
JSON_TYPE = "application/json; charset=UTF-8"


def post(gemini: RunningEmulator, model: str, body: Any, *, method: str = "generateContent",
         version: str = "v1beta", **params: str) -> httpx.Response:
    return httpx.post(f"{gemini.url}/{version}/models/{model}:{method}",
                      params={"key": API_KEY, **params},
                      content=body if isinstance(body, bytes) else json.dumps(body).encode(),
                      headers={"Content-Type": "application/json"}, timeout=30)


def user(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "parts": list(parts)}]


def test_camel_case_standard_unpadded_base64_and_query_key(gemini: RunningEmulator) -> None:
    data = base64.b64encode(png_bytes((10, 200, 30), (300, 100))).decode().rstrip("=")
    body = {
        "contents": user({"text": "Make it a banner"},
                         {"inlineData": {"mimeType": "IMAGE/PNG", "data": data}}),
        "generationConfig": {"response_modalities": ["Image"], "topK": 40.0,
                             "temperature": "0.5", "candidate_count": 1.0},
        "safety_settings": [{"category": "harm_category_harassment",
                             "threshold": "Block_Only_High"}],
        "someFutureField": {"whatever": True},
    }
    resp = post(gemini, FLASH_IMAGE, body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == JSON_TYPE
    payload = resp.json()
    parts = payload["candidates"][0]["content"]["parts"]
    assert [list(p) for p in parts] == [["inlineData"]]
    blob = parts[0]["inlineData"]
    assert blob["mimeType"] == "image/png"
    assert "-" not in blob["data"] and "_" not in blob["data"]  # standard alphabet out
    image = Image.open(io.BytesIO(base64.b64decode(blob["data"])))
    assert image.size == (1536, 672)  # 3:1 input -> nearest 2.5 Flash ratio, 21:9
    assert payload["usageMetadata"]["promptTokensDetails"][1] == {"modality": "IMAGE",
                                                                  "tokenCount": 258}
    assert len(payload["responseId"]) >= 20


def test_url_safe_padded_base64_is_accepted(gemini: RunningEmulator) -> None:
    data = base64.urlsafe_b64encode(png_bytes((1, 2, 3))).decode()
    resp = post(gemini, TEXT_MODEL, {"contents": user(
        {"text": "Describe"}, {"inline_data": {"mime_type": "image/png", "data": data}})})
    assert resp.status_code == 200


@pytest.mark.parametrize(("model", "body", "needle"), [
    (TEXT_MODEL, b"{not json", "Invalid JSON payload"),
    (TEXT_MODEL, {"contents": []}, "contents is not specified"),
    (TEXT_MODEL, {"contents": user({"inlineData": {"mimeType": "image/png", "data": "@@@"}})},
     "Base64 decoding failed"),
    (TEXT_MODEL, {"contents": user({"inlineData": {"mimeType": "image/png", "data": "aGVsbG8"}})},
     "Unable to process input image"),
    (TEXT_MODEL, {"contents": user({"text": "x"}),
                  "generationConfig": {"responseModalities": ["PICTURE"]}}, "Invalid value"),
    (FLASH_IMAGE, {"contents": user({"text": "x"}),
                   "systemInstruction": {"parts": [{"text": "be nice"}]}},
     "Developer instruction is not enabled"),
    (FLASH_IMAGE, {"contents": user({"text": "x"}), "tools": [{"googleSearch": {}}]},
     "Search Grounding is not supported"),
    (TEXT_MODEL, {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
     "valid role"),
    (TEXT_MODEL, {"contents": user({"thought": True})}, "required oneof field 'data'"),
])
def test_malformed_requests_get_rpc_400s(gemini: RunningEmulator, model: str, body: Any,
                                         needle: str) -> None:
    resp = post(gemini, model, body)
    assert resp.status_code == 400
    assert resp.headers["content-type"] == JSON_TYPE
    error = resp.json()["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert needle in error["message"]


def test_gemini_3_image_history_needs_thought_signatures(gemini: RunningEmulator) -> None:
    image = {"inlineData": {"mimeType": "image/png",
                            "data": base64.b64encode(png_bytes((9, 9, 9))).decode()}}
    history = [*user({"text": "a poster"}), {"role": "model", "parts": [image]},
               *user({"text": "make it blue"})]
    missing = post(gemini, PRO_IMAGE, {"contents": history})
    assert missing.status_code == 400
    assert "thought_signature" in missing.json()["error"]["message"]
    history[1]["parts"][0]["thoughtSignature"] = "skip_thought_signature_validator"
    assert post(gemini, PRO_IMAGE, {"contents": history}).status_code == 200
    assert post(gemini, FLASH_IMAGE, {"contents": [*history[:1], {"role": "model", "parts": [
        {"inlineData": image["inlineData"]}]}, *history[2:]]}).status_code == 200


def test_sse_framing_and_no_continuation(gemini: RunningEmulator) -> None:
    resp = post(gemini, NB2_IMAGE, {"contents": user({"text": "A kite festival poster"})},
                method="streamGenerateContent", alt="sse")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = resp.text.split("\r\n\r\n")
    assert events[-1] == ""
    assert all(e.startswith("data: ") and "\n" not in e for e in events[:-1])
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert "finishReason" in payloads[-1]["candidates"][0]
    assert all("finishReason" not in p["candidates"][0] for p in payloads[:-1])
    assert "continuationToken" not in resp.text and "CONTINUATION" not in resp.text
    without_sse = post(gemini, TEXT_MODEL, {"contents": user({"text": "hi"})},
                       method="streamGenerateContent")
    assert isinstance(without_sse.json(), list)


def test_mid_stream_error_is_a_data_event(gemini: RunningEmulator) -> None:
    resp = post(gemini, TEXT_MODEL, {"contents": user({"text": "ad copy [[gemini:stream_error]]"})},
                method="streamGenerateContent", alt="sse")
    events = [json.loads(e.removeprefix("data: ")) for e in resp.text.split("\r\n\r\n") if e]
    assert resp.status_code == 200 and len(events) == 2
    assert "candidates" in events[0]
    assert events[1] == {"error": {"code": 500, "status": "INTERNAL",
                                   "message": events[1]["error"]["message"]}}


def test_models_routes_and_unknown_paths(gemini: RunningEmulator) -> None:
    params = {"key": API_KEY}
    bad_token = httpx.get(f"{gemini.url}/v1/models", params={**params, "pageToken": "zzz"})
    assert bad_token.status_code == 400
    missing = httpx.get(f"{gemini.url}/v1beta/models/nope", params=params)
    assert missing.status_code == 404 and missing.headers["content-type"] == JSON_TYPE
    unknown = httpx.get(f"{gemini.url}/v1beta/somewhere/else", params=params)
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == "NOT_FOUND"
    embed = post(gemini, TEXT_MODEL, {}, method="embedContent")
    assert embed.status_code == 404 and "embedContent" in embed.json()["error"]["message"]
    counted = post(gemini, TEXT_MODEL, {"generateContentRequest": {
        "contents": user({"text": "12345678"}),
        "systemInstruction": {"parts": [{"text": "abcd"}]}}}, method="countTokens")
    assert counted.json()["totalTokens"] == 3


KEYS = st.sampled_from([
    "contents", "role", "parts", "text", "inlineData", "inline_data", "mimeType", "mime_type",
    "data", "generationConfig", "generation_config", "responseModalities", "imageConfig",
    "aspectRatio", "imageSize", "responseMimeType", "responseSchema", "responseJsonSchema",
    "type", "properties", "items", "enum", "required", "minItems", "thinkingConfig",
    "includeThoughts", "thinking_level", "tools", "googleSearch", "systemInstruction",
    "temperature", "topK", "candidateCount", "maxOutputTokens", "stopSequences", "thought",
    "thoughtSignature", "safetySettings", "category", "threshold", "unknownField"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-3, 3),
                    st.sampled_from(["user", "model", "TEXT", "image", "1:1", "16:9", "2K",
                                     "1k", "application/json", "image/png", "STRING",
                                     "OBJECT", "aGk=", "", "HIGH"]), st.text(max_size=12))
JUNK = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)), max_leaves=20)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(JUNK, st.fixed_dictionaries(
    {"contents": st.just(user({"text": "fuzz"}))}, optional={
        "generationConfig": JUNK, "tools": JUNK, "systemInstruction": JUNK,
        "safetySettings": JUNK})), model=st.sampled_from([TEXT_MODEL, FLASH_IMAGE, NB2_IMAGE]))
def test_arbitrary_bodies_get_a_200_or_a_400_never_a_crash(gemini: RunningEmulator, body: Any,
                                                            model: str) -> None:
    resp = post(gemini, model, body)
    assert resp.status_code in (200, 400), resp.text
    assert resp.headers["content-type"] == JSON_TYPE
    payload = resp.json()
    if resp.status_code == 400:
        assert payload["error"]["code"] == 400
    else:
        assert "candidates" in payload or "promptFeedback" in payload
