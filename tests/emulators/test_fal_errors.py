"""Error paths (spec §2.3, §2.4, §3) and fault injection, through the stock SDK."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fal_client import Completed, FalClientHTTPError

from tests.emulators.fal_support import (  # noqa: F401  (fixtures)
    RunningFal,
    fal_factory_fixture,
    fal_fixture,
)

SCHNELL = "fal-ai/flux/schnell"
OK_INPUT = {"prompt": "a red bicycle", "image_size": "square", "seed": 5}
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4"
         "z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")


@pytest.mark.parametrize(("endpoint", "body", "kind", "loc", "ctx"), [
    (SCHNELL, {"prompt": "x", "num_inference_steps": 28}, "less_than_equal",
     ["body", "num_inference_steps"], {"le": 12}),
    (SCHNELL, {"image_size": "square"}, "missing", ["body", "prompt"], None),
    (SCHNELL, {"prompt": "x", "num_images": "two"}, "int_parsing", ["body", "num_images"], None),
    (SCHNELL, {"prompt": 3}, "string_type", ["body", "prompt"], None),
    ("fal-ai/flux/dev", {"prompt": "x", "guidance_scale": 0.5}, "greater_than_equal",
     ["body", "guidance_scale"], {"ge": 1}),
    ("fal-ai/flux/dev", {"prompt": "x", "image_size": "huge"}, "literal_error",
     ["body", "image_size"], {"expected": "'square_hd', 'square', 'portrait_4_3', "
                                          "'portrait_16_9', 'landscape_4_3' or 'landscape_16_9'"}),
    ("fal-ai/flux/dev", {"prompt": "x", "image_size": {"width": 0, "height": 64}},
     "greater_than", ["body", "image_size", "width"], {"gt": 0}),
    ("fal-ai/flux/dev", {"prompt": "x", "output_format": "gif"}, "literal_error",
     ["body", "output_format"], {"expected": "'jpeg' or 'png'"}),
    ("fal-ai/flux-lora", {"prompt": "x", "loras": [{"scale": 1}]}, "missing",
     ["body", "loras", 0, "path"], None),
    ("fal-ai/flux-lora", {"prompt": "x", "acceleration": "high"}, "literal_error",
     ["body", "acceleration"], {"expected": "'none' or 'regular'"}),
    ("fal-ai/flux/dev/image-to-image", {"prompt": "x"}, "missing", ["body", "image_url"], None),
    ("fal-ai/flux/dev/image-to-image", {"prompt": "x", "image_url": PIXEL, "strength": 2},
     "less_than_equal", ["body", "strength"], {"le": 1}),
    ("fal-ai/flux-pro/v1.1", {"prompt": "x", "safety_tolerance": 2}, "literal_error",
     ["body", "safety_tolerance"], {"expected": "'1', '2', '3', '4', '5' or '6'"}),
    ("fal-ai/flux-pro/v1.1", {"prompt": "x", "num_images": 5}, "less_than_equal",
     ["body", "num_images"], {"le": 4}),
    ("fal-ai/face-swap", {"base_image_url": PIXEL}, "missing", ["body", "swap_image_url"], None),
    ("fal-ai/birefnet/v2", {"image_url": PIXEL, "output_format": "jpeg"}, "literal_error",
     ["body", "output_format"], {"expected": "'webp', 'png' or 'gif'"}),
    ("fal-ai/birefnet/v2", {"image_url": PIXEL, "output_mask": "maybe"}, "bool_parsing",
     ["body", "output_mask"], None),
])
async def test_invalid_input_is_accepted_then_fails_with_a_422_detail_list(
        fal: RunningFal, endpoint: str, body: dict[str, Any], kind: str, loc: list[Any],
        ctx: dict[str, Any] | None) -> None:
    client = fal.async_client()
    handle = await client.submit(endpoint, body)
    with pytest.raises(FalClientHTTPError) as caught:
        await handle.get()
    assert caught.value.status_code == 422
    detail = caught.value.message
    assert isinstance(detail, list) and len(detail) == 1
    item: dict[str, Any] = detail[0]  # type: ignore[assignment]
    assert set(item) <= {"type", "loc", "msg", "input", "ctx"}
    assert (item["type"], item["loc"], item.get("ctx")) == (kind, loc, ctx)
    assert isinstance(item["msg"], str) and "input" in item
    status = await handle.status()
    assert isinstance(status, Completed)
    assert status.error == "Invalid status code: 422" and status.error_type == kind
    await client.aclose()


async def test_several_invalid_fields_are_all_reported(fal: RunningFal) -> None:
    client = fal.async_client()
    handle = await client.submit(SCHNELL, {"num_images": 9, "seed": "x"})
    with pytest.raises(FalClientHTTPError) as caught:
        await handle.get()
    kinds = {(e["type"], e["loc"][-1]) for e in caught.value.message}  # type: ignore[index]
    assert kinds == {("missing", "prompt"), ("less_than_equal", "num_images"),
                     ("int_parsing", "seed")}
    await client.aclose()


@pytest.mark.parametrize("key", ["totally-invalid:key", "invalid:secret"])
async def test_bad_key_is_rejected_with_401(fal: RunningFal, key: str) -> None:
    client = fal.async_client(key=key)
    with pytest.raises(FalClientHTTPError) as caught:
        await client.submit(SCHNELL, OK_INPUT)
    assert caught.value.status_code == 401
    assert caught.value.message == "No user found for Key ID and Secret"
    await client.aclose()


async def test_configured_keys_restrict_access(fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(api_keys={"team:good"})
    allowed, refused = emulator.async_client(key="team:good"), emulator.async_client()
    assert (await allowed.subscribe(SCHNELL, OK_INPUT))["images"]
    with pytest.raises(FalClientHTTPError) as caught:
        await refused.submit(SCHNELL, OK_INPUT)
    assert caught.value.status_code == 401
    await allowed.aclose()
    await refused.aclose()


async def test_unknown_app_is_404(fal: RunningFal) -> None:
    client = fal.async_client()
    with pytest.raises(FalClientHTTPError) as caught:
        await client.submit("fal-ai/no-such-model", OK_INPUT)
    assert caught.value.status_code == 404 and "not found" in str(caught.value)
    assert "x-fal-request-id" in caught.value.response_headers
    await client.aclose()


@pytest.mark.parametrize("first", ["429", "503_ingress", "502_ingress"])
async def test_sdk_retries_a_429_or_ingress_error_then_succeeds(
        fal: RunningFal, first: str) -> None:
    fal.state.set_faults("fal-ai/flux", {"sequence": [first, "ok"]})
    client = fal.async_client()
    result = await client.subscribe(SCHNELL, OK_INPUT)
    assert result["images"]
    stats = fal.state.stats()
    assert stats["submit_attempts"]["by_endpoint"][SCHNELL] == 2
    assert stats["submits"]["by_endpoint"][SCHNELL] == 1
    assert fal.state.submit_count(prompt_contains="red bicycle") == 1
    assert fal.state.submit_count(where=lambda r: r["input"]["seed"] == 5) == 1
    assert max(stats["submits"]["by_input"].values()) == 1
    await client.aclose()


@pytest.mark.parametrize(("kind", "error_type"), [("500", "internal_error"),
                                                  ("503", "runner_connection_error")])
async def test_hard_5xx_with_request_id_is_not_retried(
        fal: RunningFal, kind: str, error_type: str) -> None:
    fal.state.set_faults(SCHNELL, {"sequence": [kind, "ok"]})
    client = fal.async_client()
    with pytest.raises(FalClientHTTPError) as caught:
        await client.submit(SCHNELL, OK_INPUT)
    assert caught.value.status_code == int(kind) and caught.value.error_type == error_type
    assert "x-fal-request-id" in caught.value.response_headers
    assert fal.state.stats()["submit_attempts"]["total"] == 1
    assert fal.state.submit_count() == 0
    await client.aclose()


async def test_hung_submit_is_retried_by_the_sdk_after_its_timeout(fal: RunningFal) -> None:
    fal.state.set_faults(SCHNELL, {"sequence": ["hang_submit", "ok"]})
    client = fal.async_client(default_timeout=0.5)
    assert (await client.subscribe(SCHNELL, OK_INPUT))["images"]
    assert fal.state.stats()["submit_attempts"]["total"] == 2
    await client.aclose()


async def test_slow_result_arrives_late(fal: RunningFal) -> None:
    fal.state.set_faults(SCHNELL, {"sequence": ["slow_result"], "slow_s": 0.3})
    client = fal.async_client()
    handle = await client.submit(SCHNELL, OK_INPUT)
    async for _ in handle.iter_events(interval=0.02):
        pass
    began = time.monotonic()
    assert (await handle.get())["images"]
    assert time.monotonic() - began >= 0.3
    await client.aclose()


async def test_malformed_result_is_not_json(fal: RunningFal) -> None:
    fal.state.set_faults(SCHNELL, {"sequence": ["malformed"]})
    client = fal.async_client()
    handle = await client.submit(SCHNELL, OK_INPUT)
    with pytest.raises(json.JSONDecodeError):
        await handle.get()
    await client.aclose()


async def test_runner_error_fails_the_request_with_a_platform_error(fal: RunningFal) -> None:
    fal.state.set_faults(SCHNELL, {"sequence": ["runner_error"]})
    client = fal.async_client()
    handle = await client.submit(SCHNELL, OK_INPUT)
    with pytest.raises(FalClientHTTPError) as caught:
        await handle.get()
    assert caught.value.status_code == 500 and caught.value.error_type == "runner_server_error"
    status = await handle.status()
    assert isinstance(status, Completed) and status.error_type == "runner_server_error"
    await client.aclose()


async def test_content_policy_token_gives_a_safety_refusal(fal: RunningFal) -> None:
    client = fal.async_client()
    prompt = "something nasty [[fal:content_policy]]"
    handle = await client.submit(SCHNELL, {"prompt": prompt})
    with pytest.raises(FalClientHTTPError) as caught:
        await handle.get()
    assert caught.value.status_code == 422
    [item] = caught.value.message  # type: ignore[misc]
    assert item["type"] == "content_policy_violation" and item["input"] == prompt
    status = await handle.status()
    assert isinstance(status, Completed) and status.error_type == "content_policy_violation"
    await client.aclose()


async def test_fault_rates_are_drawn_per_submit(fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(faults={"*": {"rate": {"429": 0.5}}}, seed=3)
    client = emulator.async_client()
    for n in range(4):
        assert (await client.subscribe(SCHNELL, {**OK_INPUT, "seed": n}))["images"]
    stats = emulator.state.stats()
    assert stats["submits"]["total"] == 4 and stats["submit_attempts"]["total"] > 4
    await client.aclose()


def test_queue_length_limit_answers_429(fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(runners=1)
    with emulator.http() as http:  # the SDK cannot send fal_max_queue_length
        blocker = http.post(f"/{SCHNELL}", json={"prompt": "[[fal:hang]]"}).json()
        time.sleep(0.05)
        http.post(f"/{SCHNELL}", json=OK_INPUT)
        refused = http.post(f"/{SCHNELL}", params={"fal_max_queue_length": "1"}, json=OK_INPUT)
        assert refused.status_code == 429
        accepted = http.post(f"/{SCHNELL}", params={"fal_max_queue_length": "2"}, json=OK_INPUT)
        assert accepted.status_code == 200 and accepted.json()["queue_position"] == 1
        assert http.put(blocker["cancel_url"]).status_code == 202


def test_control_routes_steer_and_reset_the_emulator(fal: RunningFal) -> None:
    client = fal.sync_client()
    with httpx.Client(base_url=fal.url, timeout=10) as control:
        faults = control.post("/_emulator/faults", json={SCHNELL: {"sequence": ["500"]}})
        assert faults.json()[SCHNELL]["sequence"] == ["500"]
        assert control.post("/_emulator/faults", json={"x": {"rate": {"nope": 1}}}
                            ).status_code == 400
        with pytest.raises(FalClientHTTPError):
            client.submit(SCHNELL, OK_INPUT)
        client.subscribe(SCHNELL, OK_INPUT)
        stats = control.get("/_emulator/stats").json()
        assert stats["submit_attempts"]["total"] == 2 and stats["submits"]["total"] == 1
        assert stats["cold_loads"]["total"] == 1
        listed = control.get("/_emulator/requests").json()["requests"]
        detail = control.get(f"/_emulator/requests/{listed[0]['request_id']}").json()
        assert detail["status"] == "COMPLETED" and detail["logs"]
        assert control.get("/_emulator/runners").json()["fal-ai/flux"][0]["hints"] == [SCHNELL]
        assert control.post("/_emulator/reset").json() == {"status": "reset"}
        stats = control.get("/_emulator/stats").json()
        assert stats["submits"]["total"] == 0 and stats["faults"] == {}
        assert stats["cold_loads"]["total"] == 0
    client._client.close()


def test_stop_returns_promptly_with_hung_work(fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(faults={SCHNELL: {"sequence": ["hang_submit"]}})
    events: list[str] = []

    def watch(rid: str) -> None:
        with emulator.http() as http, http.stream(
                "GET", f"/fal-ai/flux/requests/{rid}/status/stream") as stream:
            events.extend(stream.iter_lines())

    with emulator.http() as http:
        rid = http.post(f"/{SCHNELL}", json={"prompt": "[[fal:hang]]"}).json()["request_id"]
        watcher = threading.Thread(target=watch, args=(rid,))
        watcher.start()
        with pytest.raises(httpx.ReadTimeout):
            http.post(f"/{SCHNELL}", json=OK_INPUT, timeout=0.2)
    began = time.monotonic()
    emulator.thread.stop()
    watcher.join(timeout=5)
    assert time.monotonic() - began < 2
    assert not watcher.is_alive() and any("IN_PROGRESS" in line for line in events)
