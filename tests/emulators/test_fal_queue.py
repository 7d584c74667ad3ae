"""Queue API conformance (spec §1, §2), driven through the stock fal-client SDK."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fal_client import Completed, FalClientHTTPError, InProgress, Queued

from tests.emulators.fal_support import (  # noqa: F401  (fixtures)
    RunningFal,
    fal_factory_fixture,
    fal_fixture,
)

SCHNELL = "fal-ai/flux/schnell"
PROMPT = {"prompt": "a lighthouse at dusk", "image_size": "square", "seed": 1}


async def test_submit_returns_app_only_urls_on_the_emulator(fal: RunningFal) -> None:
    client = fal.async_client()
    handle = await client.submit("fal-ai/flux/dev/image-to-image",
                                 {"prompt": "x", "image_url": "data:,"})
    uuid.UUID(handle.request_id)
    base = f"{fal.url}/fal-ai/flux/requests/{handle.request_id}"
    assert (handle.response_url, handle.status_url, handle.cancel_url) == (
        base, base + "/status", base + "/cancel")
    rebuilt = await client.get_handle("fal-ai/flux/dev/image-to-image", handle.request_id)
    assert rebuilt.request_id == handle.request_id
    await client.aclose()


async def test_subscribe_reports_queue_positions_and_growing_logs(
        fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(latency="fast")
    client = emulator.async_client()
    updates: list[object] = []
    enqueued: list[str] = []
    result = await client.subscribe(SCHNELL, PROMPT, with_logs=True,
                                    on_enqueue=enqueued.append, on_queue_update=updates.append)
    assert any(isinstance(u, Queued) and u.position == 0 for u in updates)
    in_progress = [u for u in updates if isinstance(u, InProgress)]
    assert in_progress and all(isinstance(u.logs, list) for u in in_progress)
    sizes = [len(u.logs or []) for u in in_progress]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]
    assert {"message", "level", "source", "timestamp"} <= set(in_progress[-1].logs[0])
    assert isinstance(updates[-1], Completed) and updates[-1].logs
    assert len(enqueued) == 1
    assert result["images"][0]["width"] == 512 and result["prompt"] == PROMPT["prompt"]
    assert emulator.state.submit_count() == 1
    await client.aclose()


async def test_status_without_logs_has_logs_none(
        fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(latency="fast")
    client = emulator.async_client()
    handle = await client.submit(SCHNELL, PROMPT)
    events = [event async for event in handle.iter_events(with_logs=False, interval=0.05)]
    assert isinstance(events[0], Queued)
    assert any(isinstance(e, InProgress) for e in events)
    assert all(e.logs is None for e in events if isinstance(e, InProgress | Completed))
    done = events[-1]
    assert isinstance(done, Completed) and done.error is None
    assert done.metrics["inference_time"] > 0
    with_logs = await handle.status(with_logs=True)
    assert isinstance(with_logs, Completed) and with_logs.logs
    await client.aclose()


async def test_id_based_calls_use_the_app_path_for_a_sub_path_endpoint(fal: RunningFal) -> None:
    client = fal.async_client()
    handle = await client.submit("fal-ai/flux/dev", PROMPT)
    result = await client.result("fal-ai/flux/dev", handle.request_id)
    status = await client.status("fal-ai/flux/dev", handle.request_id, with_logs=True)
    assert isinstance(status, Completed) and status.logs
    assert result["seed"] == 1 and len(result["images"]) == 1
    await client.aclose()


def test_status_codes_headers_and_logs_spellings(fal: RunningFal) -> None:
    # Raw HTTP: the SDK hides status codes and headers.
    fal.state.set_faults(SCHNELL, {"sequence": ["slow"], "slow_s": 0.4})
    with fal.http() as http:
        submitted = http.post(f"/{SCHNELL}", json=PROMPT)
        assert submitted.status_code == 200
        rid = submitted.json()["request_id"]
        assert submitted.headers["x-fal-request-id"] == rid
        assert submitted.headers["content-type"].startswith("application/json")
        assert submitted.json()["queue_position"] == 0
        early = http.get(f"/fal-ai/flux/requests/{rid}/status")
        assert early.status_code == 202 and early.headers["x-fal-request-id"] == rid
        assert http.get(f"/fal-ai/flux/requests/{rid}").status_code == 400
        for _ in range(200):
            if http.get(f"/fal-ai/flux/requests/{rid}/status").status_code == 200:
                break
            time.sleep(0.02)
        for value, expect_list in (("1", True), ("true", True), ("0", False), ("false", False)):
            body = http.get(f"/fal-ai/flux/requests/{rid}/status",
                            params={"logs": value}).json()
            assert body["status"] == "COMPLETED"
            assert isinstance(body["logs"], list) is expect_list
            if not expect_list:
                assert body["logs"] is None
        # Spec §1.1: routes also answer under the full endpoint path, and result at /response.
        full = http.get(f"/{SCHNELL}/requests/{rid}/status")
        assert full.status_code == 200
        assert http.get(f"/{SCHNELL}/requests/{rid}/response").json()["seed"] == 1
        assert http.get(f"/fal-ai/flux/requests/{rid}/response").status_code == 200
        assert http.get(f"/fal-ai/flux-lora/requests/{rid}/status").status_code == 404


def test_sse_stream_sends_status_events_until_completed(
        fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(latency="fast")
    with emulator.http() as http:
        rid = http.post(f"/{SCHNELL}", json=PROMPT).json()["request_id"]
        events = []
        with http.stream("GET", f"/fal-ai/flux/requests/{rid}/status/stream",
                         params={"logs": "1"}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
    statuses = [e["status"] for e in events]
    assert statuses[0] == "IN_QUEUE" and statuses[-1] == "COMPLETED"
    assert "IN_PROGRESS" in statuses
    logs = [entry for e in events for entry in (e.get("logs") or [])]
    messages = [entry["message"] for entry in logs]
    assert len(messages) == len(set(messages))  # deltas, not repeated arrays
    assert messages[-1] == "Request completed"


async def test_queue_positions_fall_as_work_proceeds(
        fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(runners=1, inference_s=0.12)
    client = emulator.async_client()
    handles = [await client.submit(SCHNELL, {**PROMPT, "seed": i}) for i in range(4)]
    positions = [event.position async for event in handles[-1].iter_events(interval=0.02)
                 if isinstance(event, Queued)]
    assert positions[0] >= 2 and positions[-1] == 0
    assert positions == sorted(positions, reverse=True)
    await asyncio.gather(*(h.get() for h in handles))
    await client.aclose()


async def test_low_priority_is_served_after_normal(fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(runners=1)
    client = emulator.async_client()
    emulator.state.set_faults("*", {"slow_s": 0.4})
    blocker = await client.submit(SCHNELL, {"prompt": "block [[fal:slow]]"})
    await until_running(blocker)
    low = await client.submit(SCHNELL, {**PROMPT, "seed": 2}, priority="low")
    normal = await client.submit(SCHNELL, {**PROMPT, "seed": 3}, priority="normal")
    low_status = await low.status()
    assert isinstance(low_status, Queued) and low_status.position == 1
    normal_status = await normal.status()
    assert isinstance(normal_status, Queued) and normal_status.position == 0
    await asyncio.gather(blocker.get(), low.get(), normal.get())
    info = {r["request_id"]: r for r in emulator.state.request_list()}
    assert info[normal.request_id]["started"] < info[low.request_id]["started"]
    assert info[low.request_id]["priority"] == "low"
    await client.aclose()


async def test_cancel_of_queued_request_completes_it_as_cancelled(
        fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(latency="fast")
    client = emulator.async_client()
    handle = await client.submit(SCHNELL, PROMPT)
    await handle.cancel()
    status = await handle.status()
    assert isinstance(status, Completed) and status.error_type == "client_cancelled"
    with pytest.raises(FalClientHTTPError) as caught:
        await handle.get()
    assert caught.value.status_code == 499 and caught.value.error_type == "client_cancelled"
    await client.aclose()


async def test_cancel_of_running_request_stops_it(fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory()
    client = emulator.async_client()
    handle = await client.submit(SCHNELL, {"prompt": "stuck [[fal:hang]]"})
    async for event in handle.iter_events(interval=0.02):
        if isinstance(event, InProgress):
            break
    await client.cancel(SCHNELL, handle.request_id)
    final = [e async for e in handle.iter_events(interval=0.02)][-1]
    assert isinstance(final, Completed) and final.error_type == "client_cancelled"
    await client.aclose()


async def test_cancel_of_finished_request_is_rejected(fal: RunningFal) -> None:
    client = fal.async_client()
    handle = await client.submit(SCHNELL, PROMPT)
    await handle.get()
    with pytest.raises(FalClientHTTPError) as caught:
        await handle.cancel()
    assert caught.value.status_code == 400 and "ALREADY_COMPLETED" in str(caught.value)
    await client.aclose()


async def test_unknown_request_ids_are_not_found(fal: RunningFal) -> None:
    client = fal.async_client()
    missing = str(uuid.uuid4())
    with pytest.raises(FalClientHTTPError) as on_status:
        await client.status(SCHNELL, missing)
    with pytest.raises(FalClientHTTPError) as on_cancel:
        await client.cancel(SCHNELL, missing)
    for caught in (on_status, on_cancel):
        assert caught.value.status_code == 404 and "NOT_FOUND" in str(caught.value)
    await client.aclose()


async def test_another_users_request_is_not_found(fal: RunningFal) -> None:
    owner, outsider = fal.async_client(), fal.async_client(key="someone-else:secret")
    handle = await owner.submit(SCHNELL, PROMPT)
    with pytest.raises(FalClientHTTPError) as caught:
        await outsider.status(SCHNELL, handle.request_id)
    assert caught.value.status_code == 404
    await owner.aclose()
    await outsider.aclose()


async def test_start_timeout_gives_504_that_is_not_retried(
        fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(runners=1)
    client = emulator.async_client()
    blocker = await client.submit(SCHNELL, {"prompt": "occupy [[fal:hang]]"})
    await until_running(blocker)
    handle = await client.submit(SCHNELL, PROMPT, start_timeout=1.2)
    with pytest.raises(FalClientHTTPError) as caught:
        await handle.get()
    assert caught.value.status_code == 504
    assert caught.value.response_headers["x-fal-request-timeout-type"] == "user"
    assert caught.value.error_type == "request_timeout"
    info = emulator.state.request_info(handle.request_id)
    assert info is not None and info["result_fetches"] == 1 and info["started"] is None
    await blocker.cancel()
    await client.aclose()


async def test_hint_is_recorded_and_routes_to_the_runner_holding_it(
        fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(runners=2, cache_size=1)
    client = emulator.async_client()
    lora = {"prompt": "p", "image_size": "square", "loras": [{"path": "https://x/a.safetensors"}]}
    first = await client.subscribe("fal-ai/flux-lora", lora)
    again = await client.submit("fal-ai/flux-lora", lora, hint="https://x/a.safetensors")
    await again.get()
    info = emulator.state.request_info(again.request_id)
    assert info is not None
    assert info["hint"] == "https://x/a.safetensors" and info["routed_by_hint"]
    assert info["cold_loads"] == 0 and emulator.state.cold_loads() == 1
    assert first["images"]
    await client.aclose()


async def until_running(handle: Any, timeout: float = 10) -> None:
    """Wait (on the emulator's own word, not a guess) until the one runner took it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not isinstance(await handle.status(), InProgress):
        assert asyncio.get_running_loop().time() < deadline, "the request never started"
        await asyncio.sleep(0.01)
