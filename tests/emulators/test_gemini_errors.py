"""Errors, fault injection, retries and the control routes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from google import genai
from google.genai import errors, types

from generation.emulators.gemini import GeminiEmulatorConfig, create_app
from generation.emulators.gemini.state import GeminiEmulatorState
from generation.emulators.server import EmulatorThread
from tests.emulators.gemini_support import (
    FLASH_IMAGE,
    NB2_IMAGE,
    PRO_IMAGE,
    TEXT_MODEL,
    RunningEmulator,
    client,
    gemini,
    gemini_server,
    image_config,
    make_client,
)

__all__ = ["client", "gemini", "gemini_server"]  # fixtures, imported explicitly
RPC = "type.googleapis.com/google.rpc."


def _detail(exc: errors.APIError, kind: str) -> dict[str, object]:
    return next(d for d in exc.details["error"]["details"] if d["@type"] == RPC + kind)


@pytest.mark.parametrize(("model", "config", "needle"), [
    (FLASH_IMAGE, image_config("7:3"), "aspect ratio"),
    (PRO_IMAGE, image_config("1:1", "1k"), "image size"),
    (NB2_IMAGE, image_config("1:1", "8K"), "image size"),
    (FLASH_IMAGE, image_config("1:1", "1K"), "Image size is not supported"),
    (PRO_IMAGE, image_config("4:1"), "aspect ratio"),
    (TEXT_MODEL, types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"]),
     "response modalities: text,image"),
])
def test_invalid_image_requests_are_rejected_with_400(
        client: genai.Client, model: str, config: types.GenerateContentConfig,
        needle: str) -> None:
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=model, contents="a cat", config=config)
    assert caught.value.code == 400
    assert caught.value.status == "INVALID_ARGUMENT"
    assert needle.lower() in (caught.value.message or "").lower()


def test_unknown_model_is_404_with_googles_wording(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gemini-9-ultra", contents="hi")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"
    assert caught.value.message == (
        "models/gemini-9-ultra is not found for API version v1, or is not supported for "
        "generateContent. Call ListModels to see the list of available models and their "
        "supported methods.")


def test_missing_key_is_403_and_bad_key_is_400(gemini: RunningEmulator) -> None:
    url = f"{gemini.url}/v1beta/models/{TEXT_MODEL}:generateContent"
    raw = httpx.post(url, json={"contents": [{"parts": [{"text": "hi"}]}]})
    assert raw.status_code == 403
    assert raw.headers["content-type"] == "application/json; charset=UTF-8"
    assert raw.json()["error"]["status"] == "PERMISSION_DENIED"
    assert "unregistered callers" in raw.json()["error"]["message"]
    with (make_client(gemini.url, api_key="an-invalid-key") as bad,
          pytest.raises(errors.ClientError) as caught):
        bad.models.generate_content(model=TEXT_MODEL, contents="hi")
    assert caught.value.code == 400
    assert caught.value.message == "API key not valid. Please pass a valid API key."
    assert _detail(caught.value, "ErrorInfo")["reason"] == "API_KEY_INVALID"


def test_configured_key_set_restricts_access() -> None:
    thread = EmulatorThread(lambda: create_app(GeminiEmulatorConfig(
        latency="instant", api_keys={"k1"})))
    url = thread.start()
    try:
        with make_client(url, api_key="k1") as good:
            assert good.models.generate_content(model=TEXT_MODEL, contents="hi").text
        with (make_client(url, api_key="k2") as other,
              pytest.raises(errors.ClientError) as caught):
            other.models.get(model=TEXT_MODEL)
        assert caught.value.code == 400
    finally:
        thread.stop()


def test_quota_error_carries_retry_quota_and_help_details(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=PRO_IMAGE, contents="poster [[gemini:429=7]]")
    exc = caught.value
    assert exc.code == 429 and exc.status == "RESOURCE_EXHAUSTED"
    assert _detail(exc, "RetryInfo")["retryDelay"] == "7s"
    violation = _detail(exc, "QuotaFailure")["violations"][0]  # type: ignore[index]
    assert violation["quotaDimensions"]["model"] == PRO_IMAGE
    assert _detail(exc, "Help")["links"]
    assert str(exc).startswith("429 RESOURCE_EXHAUSTED.")
    with pytest.raises(errors.ClientError) as bare:
        client.models.generate_content(model=PRO_IMAGE, contents="poster [[gemini:429=none]]")
    assert not any("RetryInfo" in d["@type"] for d in bare.value.details["error"]["details"])


@pytest.mark.parametrize(("token", "code", "status"), [
    ("500", 500, "INTERNAL"), ("503", 503, "UNAVAILABLE"), ("504", 504, "DEADLINE_EXCEEDED")])
async def test_server_errors_raise_server_error(client: genai.Client, token: str, code: int,
                                                status: str) -> None:
    with pytest.raises(errors.ServerError) as caught:
        await client.aio.models.generate_content(model=TEXT_MODEL,
                                                 contents=f"hi [[gemini:{token}]]")
    assert caught.value.code == code and caught.value.status == status


def test_sdk_retry_options_recover_from_a_scripted_503(gemini: RunningEmulator) -> None:
    gemini.state.set_faults({NB2_IMAGE: ["503", "ok"]})
    retry = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.05, jitter=0)
    with make_client(gemini.url, retry_options=retry) as sdk:
        resp = sdk.models.generate_content(model=NB2_IMAGE, contents="retry me",
                                           config=image_config("1:1", "512"))
    assert resp.parts and resp.parts[-1].inline_data
    stats = gemini.state.stats()["models"][NB2_IMAGE]
    assert stats["by_status"] == {"503": 1, "200": 1}


def test_without_retry_options_the_sdk_makes_one_attempt(gemini: RunningEmulator,
                                                         client: genai.Client) -> None:
    gemini.state.set_faults({"*": {"sequence": ["500"], "cycle": True}})
    with pytest.raises(errors.ServerError):
        client.models.generate_content(model=TEXT_MODEL, contents="once")
    assert gemini.state.requests(TEXT_MODEL) == 1


def test_mid_stream_error_raises_after_earlier_chunks(client: genai.Client) -> None:
    seen: list[str] = []
    with pytest.raises(errors.ServerError) as caught:
        for chunk in client.models.generate_content_stream(
                model=TEXT_MODEL, contents="Long ad for ski boots [[gemini:stream_error]]"):
            seen.append(chunk.text or "")
    assert seen and seen[0]
    assert caught.value.code == 500 and caught.value.status == "INTERNAL"


async def test_async_mid_stream_error_and_pre_stream_error(client: genai.Client) -> None:
    seen: list[str] = []
    with pytest.raises(errors.ServerError) as caught:
        async for chunk in await client.aio.models.generate_content_stream(
                model=TEXT_MODEL, contents="Long ad for ski boots [[gemini:stream_error=503]]"):
            seen.append(chunk.text or "")
    assert seen and caught.value.code == 503
    with pytest.raises(errors.ClientError) as early:
        async for _ in await client.aio.models.generate_content_stream(
                model=TEXT_MODEL, contents="hi [[gemini:429]]"):
            pytest.fail("no chunk expected before a 429")
    assert early.value.code == 429


def test_header_fault_and_slow_token(gemini: RunningEmulator, client: genai.Client) -> None:
    with (make_client(gemini.url, headers={"X-Emulator-Fault": "503"}) as faulty,
          pytest.raises(errors.ServerError)):
        faulty.models.generate_content(model=TEXT_MODEL, contents="hi")
    started = time.monotonic()
    assert client.models.generate_content(model=TEXT_MODEL, contents="hi [[gemini:slow=0.3]]").text
    assert time.monotonic() - started >= 0.3


def test_control_routes_work_from_another_process(gemini: RunningEmulator,
                                                  client: genai.Client) -> None:
    with httpx.Client(base_url=gemini.url) as control:
        posted = control.post("/_emulator/faults", json={"faults": {PRO_IMAGE: ["429"]}})
        assert posted.status_code == 200
        with pytest.raises(errors.ClientError):
            client.models.generate_content(model=PRO_IMAGE, contents="hi")
        assert client.models.generate_content(model=PRO_IMAGE, contents="hi",
                                              config=image_config("1:1")).parts
        stats = control.get("/_emulator/stats").json()
        assert stats["models"][PRO_IMAGE]["requests"] == 2
        assert stats["models"][PRO_IMAGE]["by_status"] == {"429": 1, "200": 1}
        assert stats["models"][PRO_IMAGE]["images"] == 1
        assert control.post("/_emulator/faults", json={"faults": {"x": ["boom"]}}
                            ).status_code == 400
        assert control.post("/_emulator/reset").status_code == 200
        assert control.get("/_emulator/stats").json()["total_requests"] == 0


def test_rate_faults_are_reproducible() -> None:
    def sequence() -> list[str]:
        state = GeminiEmulatorState(GeminiEmulatorConfig(
            faults={"*": {"rate": 0.5, "fault": "503", "seed": 7}}))
        return [(f.kind if (f := state.next_rule_fault(TEXT_MODEL)) else "ok")
                for _ in range(20)]
    first = sequence()
    assert first == sequence()
    assert {"ok", "error"} == set(first)
    with pytest.raises(ValueError):
        GeminiEmulatorConfig(faults={TEXT_MODEL: ["teapot"]})
    with pytest.raises(ValueError):
        GeminiEmulatorConfig(latency="glacial")  # type: ignore[arg-type]


@pytest.fixture
def realistic_url() -> Iterator[str]:
    thread = EmulatorThread(lambda: create_app(GeminiEmulatorConfig(latency="realistic")))
    yield thread.start()
    thread.stop()


def test_realistic_latency_takes_seconds_for_an_image(realistic_url: str) -> None:
    with make_client(realistic_url) as sdk:
        started = time.monotonic()
        sdk.models.generate_content(model=FLASH_IMAGE, contents="slow poster",
                                    config=image_config())
        elapsed = time.monotonic() - started
    assert 1.0 <= elapsed <= 3.5
