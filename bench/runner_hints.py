"""Does ``X-Fal-Runner-Hint`` pay off? A mixed-LoRA workload with and without hints.

Starts the built-in fal emulator (3 runners per app, 2 cached LoRAs each, a cold load
costing COLD_LOAD_S) and sends the same random sequence of flux-lora requests (6 LoRAs)
through the stock SDK twice: once plain, once with the LoRA path as the runner hint.
Prints the cold loads and the median job time (submit → result, client side) of each
run, for each number of concurrent clients given.

The router honours a hint only when the runner holding it is idle (spec §5: otherwise
the request goes to any free runner, without waiting), so the gain shrinks as the
clients keep more of the runners busy; the default shows 1 and 2 clients.

    .venv/bin/python bench/runner_hints.py [--requests 60] [--concurrency 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generation.emulators.fal import FAL_STATE, FalEmulatorConfig, create_app
from generation.emulators.server import EmulatorThread
from generation.providers.fal_transport import FalAsyncClient

LORAS = [f"https://example.com/loras/style-{n}.safetensors" for n in range(6)]
COLD_LOAD_S = 0.3


async def run_workload(url: str, order: list[str], *, hinted: bool,
                       concurrency: int) -> list[float]:
    client = FalAsyncClient(key="bench:secret", queue_url=url)
    pending = list(enumerate(order))
    durations: list[float] = []

    async def worker() -> None:
        while pending:
            index, lora = pending.pop(0)
            body = {"prompt": f"bench {index}", "seed": index,
                    "image_size": {"width": 128, "height": 128},
                    "loras": [{"path": lora, "scale": 0.8}]}
            began = time.monotonic()
            handle = await client.submit("fal-ai/flux-lora", body,
                                         hint=lora if hinted else None)
            await handle.get(interval=0.03)
            durations.append(time.monotonic() - began)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await client.aclose()
    return durations


def measure(order: list[str], *, hinted: bool, concurrency: int) -> dict[str, Any]:
    config = FalEmulatorConfig(latency="fast", runners=3, cache_size=2, cold_load_s=COLD_LOAD_S,
                               dispatch_s=0.01, inference_s=0.05, seed=1)
    emulator = EmulatorThread(lambda: create_app(config))
    url = emulator.start()
    began = time.monotonic()
    try:
        durations = asyncio.run(run_workload(url, order, hinted=hinted,
                                             concurrency=concurrency))
        assert emulator.app is not None
        stats = emulator.app[FAL_STATE].stats()
    finally:
        emulator.stop()
    return {"cold_loads": stats["cold_loads"]["total"], "median": statistics.median(durations),
            "p90": statistics.quantiles(durations, n=10)[-1], "wall": time.monotonic() - began,
            "routed_by_hint": stats["requests"]["routed_by_hint"],
            "submits": stats["submits"]["total"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--concurrency", default="1,2",
                        help="comma-separated numbers of concurrent clients")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    order = [rng.choice(LORAS) for _ in range(args.requests)]
    print(f"{args.requests} flux-lora requests over {len(LORAS)} LoRAs, 3 runners x 2 cached "
          f"LoRAs, cold load {COLD_LOAD_S}s")
    for concurrency in (int(c) for c in args.concurrency.split(",")):
        print(f"{concurrency} concurrent client(s):")
        results = {}
        for label, hinted in (("without hints", False), ("with hints", True)):
            result = results[label] = measure(order, hinted=hinted, concurrency=concurrency)
            print(f"  {label:14} cold loads {result['cold_loads']:3d}   median job "
                  f"{result['median']:.3f}s   p90 {result['p90']:.3f}s   routed by hint "
                  f"{result['routed_by_hint']:3d}   wall {result['wall']:.1f}s")
        plain, with_hints = results["without hints"], results["with hints"]
        cut = 1 - with_hints["cold_loads"] / max(1, plain["cold_loads"])
        print(f"  hints cut cold loads by {cut:.0%} and the median job time by "
              f"{1 - with_hints['median'] / plain['median']:.0%}")

if __name__ == "__main__":
    main()
