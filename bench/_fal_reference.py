"""The stock fal-client alone: what polling N requests costs with no Brenia at all.

Used by ``bench/inflight.py --part ref`` as the baseline for the worker's capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

from _harness import Cpu, start_fal_emulator, stop_process


def part_ref(args: argparse.Namespace) -> None:
    """What polling alone costs: N stock-client handles polled at --poll, no Brenia at all."""
    counts = [int(n) for n in args.ref_pollers.split(",")]
    config = {"latency": "fast", "runners": max(counts) + 50, "inference_s": 300.0,
              "dispatch_s": 0.1}
    print(f"\n== reference: the stock fal-client (FalAsyncClient) alone, N long requests each "
          f"polled with iter_events(interval={args.poll}) in ONE process, no Brenia ==")
    with tempfile.TemporaryDirectory(prefix="brenia-bench-") as tmpdir:
        emulator, url = start_fal_emulator(config, Path(tmpdir) / "emulator.log")
        try:
            for n in counts:
                asyncio.run(_ref_poll(url, n, args.poll, emulator.pid))
        finally:
            stop_process(emulator)


async def _ref_poll(url: str, n: int, interval: float, emulator_pid: int,
                    measure: float = 8.0) -> None:
    from generation.providers.fal_transport import FalAsyncClient

    client = FalAsyncClient(key="bench:bench", queue_url=url)
    body = {"prompt": "reference", "image_size": {"width": 256, "height": 256}}
    handles = []
    for start in range(0, n, 100):
        handles += await asyncio.gather(*(client.submit("fal-ai/flux/schnell", body)
                                          for _ in range(min(100, n - start))))
    polls = [0]

    async def poll(index: int, handle: Any) -> None:
        await asyncio.sleep(interval * index / n)  # spread the phases
        async for _status in handle.iter_events(with_logs=True, interval=interval):
            polls[0] += 1

    tasks = [asyncio.create_task(poll(i, h)) for i, h in enumerate(handles)]
    await asyncio.sleep(interval + 1.0)
    first, mine, emu = polls[0], Cpu(os.getpid()), Cpu(emulator_pid)
    await asyncio.sleep(measure)
    done = polls[0] - first
    cpu = mine.read()
    print(f"{n:5d} requests polled every {interval}s: {done / measure:6.0f} polls/s achieved "
          f"(wanted {n / interval:.0f}), client CPU {cpu:3.0f}% of one core = "
          f"{cpu / 100 * measure * 1000 / max(done, 1):.2f} ms CPU per poll; emulator "
          f"{emu.read():.0f}%")
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()
