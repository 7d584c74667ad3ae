"""Capacity model (spec §5): runners, LRU model/LoRA caches, cold loads, runner hints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.emulators.fal_support import (  # noqa: F401  (fixtures)
    RunningFal,
    fal_factory_fixture,
)

LORA = "fal-ai/flux-lora"


def lora_input(*paths: str) -> dict[str, Any]:
    return {"prompt": "styled", "image_size": {"width": 64, "height": 64},
            "loras": [{"path": p} for p in paths]}


async def run_sequence(emulator: RunningFal, paths: list[str], *, hinted: bool) -> None:
    client = emulator.async_client()
    for path in paths:
        handle = await client.submit(LORA, lora_input(path), hint=path if hinted else None)
        await handle.get()
    await client.aclose()


async def test_each_runner_keeps_an_lru_cache_of_loras(
        fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(runners=1, cache_size=2)
    await run_sequence(emulator, ["a", "b", "a", "c", "b"], hinted=False)
    # a, b cold; a warm; c cold (evicts b); b cold (evicts a)
    assert emulator.state.cold_loads() == 4
    [runner] = emulator.state.runner_stats()[LORA]
    assert runner["hints"] == ["c", "b"] and runner["served"] == 5


async def test_hints_send_requests_to_the_runner_that_holds_the_lora(
        fal_factory: Callable[..., RunningFal]) -> None:
    plain = fal_factory(runners=2, cache_size=1)
    hinted = fal_factory(runners=2, cache_size=1)
    await run_sequence(plain, ["a", "a", "b", "b"], hinted=False)
    await run_sequence(hinted, ["a", "a", "b", "b"], hinted=True)
    assert plain.state.cold_loads() == 4  # idle-longest routing alternates runners
    assert hinted.state.cold_loads() == 2
    assert hinted.state.stats()["requests"]["routed_by_hint"] == 2
    by_runner = hinted.state.stats()["cold_loads"]["by_runner"]
    assert sorted(by_runner.values()) == [1, 1]


async def test_a_hint_nobody_holds_falls_back_to_any_free_runner(
        fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(runners=2, cache_size=1)
    client = emulator.async_client()
    handle = await client.submit(LORA, lora_input("a"), hint="unknown-hint")
    assert (await handle.get())["images"]
    info = emulator.state.request_info(handle.request_id)
    assert info is not None and not info["routed_by_hint"] and info["cold_loads"] == 1
    await client.aclose()


async def test_every_lora_of_a_request_must_be_loaded(
        fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(runners=1, cache_size=3)
    client = emulator.async_client()
    handle = await client.submit(LORA, lora_input("x", "y"))
    await handle.get()
    info = emulator.state.request_info(handle.request_id)
    assert info is not None and info["cache_keys"] == ["x", "y"] and info["cold_loads"] == 2
    await client.aclose()


async def test_cold_load_time_is_spent_only_on_a_miss(
        fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(runners=1, cache_size=1, cold_load_s=0.3)
    client = emulator.async_client()
    first = await client.submit("fal-ai/flux/schnell", {"prompt": "a", "image_size": "square"})
    await first.get()
    second = await client.submit("fal-ai/flux/schnell", {"prompt": "b", "image_size": "square"})
    await second.get()
    cold, warm = (emulator.state.request_info(h.request_id) for h in (first, second))
    assert cold is not None and warm is not None
    assert cold["run_s"] >= 0.3 > warm["run_s"]
    await client.aclose()


def test_result_exposes_the_runner_hints_header(fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(runners=1)
    with emulator.http() as http:  # the SDK does not surface response headers
        handle = http.post(f"/{LORA}", json=lora_input("styles/ink")).json()
        client = emulator.sync_client()
        client.result(LORA, handle["request_id"])
        result = http.get(handle["response_url"])
        assert result.headers["x-fal-runner-hints"] == "styles/ink"
        client._client.close()


async def test_apps_have_separate_runner_pools(fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(runners=3)
    client = emulator.async_client()
    await client.subscribe("fal-ai/flux/dev", {"prompt": "x", "image_size": "square"})
    await client.subscribe(LORA, lora_input("a"))
    runners = emulator.state.runner_stats()
    assert set(runners) == {"fal-ai/flux", LORA}
    assert all(len(pool) == 3 for pool in runners.values())
    await client.aclose()
