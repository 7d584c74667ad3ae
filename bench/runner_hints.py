"""Does ``X-Fal-Runner-Hint`` pay off? A mixed-LoRA workload with and without hints.

Starts the built-in fal emulator (3 runners per app, 2 cached LoRAs each, a cold load
costing COLD_LOAD_S) and sends the same random sequence of flux-lora requests (6 LoRAs)
through the stock SDK twice: once plain, once with the LoRA path as the runner hint.
Prints the cold loads and the median job time (submit → result, client side) of each
run, for each number of concurrent clients given.

The router honours a hint only when the runner holding it is idle (otherwise the
request goes to any free runner, without waiting), so the gain shrinks as the clients
keep more of the runners busy; the default shows 1 and 2 clients.

``--through-brenia`` drives Brenia's own API instead: the emulator in a process of its
own, Brenia (daphne, embedded profile, DEBUG off) in another, and the same sequence
POSTed to ``/api/images/generate?wait=60`` for the registry's ``flux-lora`` row, once
with its ``runner_hint_field`` emptied and once set to ``loras`` (the seed's value), so
the hint Brenia sends is the only difference.

    .venv/bin/python bench/runner_hints.py [--requests 60] [--concurrency 1,2]
    .venv/bin/python bench/runner_hints.py --through-brenia [--requests 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import result
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


# --- through Brenia's API ----------------------------------------------------------------------

SET_HINT_FIELD = ("from generation.registry.services import registry_seed;"
                  "from generation.models import AIModel;"
                  "registry_seed();"
                  "AIModel.objects.filter(slug='flux-lora').update(runner_hint_field={!r})")
MAKE_KEY = ("from django.contrib.auth import get_user_model;"
            "from brenia.accounts.services import api_key_create;"
            "user, _ = get_user_model().objects.get_or_create(username='bench');"
            "print(api_key_create(user=user)[1])")


def _http_json(url: str, body: Any = None, key: str = "") -> Any:
    headers = {"Content-Type": "application/json"} | (
        {"Authorization": f"Bearer {key}"} if key else {})
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url}: {exc.code} {exc.read()[:2000]!r}") from None


def _through_brenia_pass(base: str, key: str, fal_url: str, order: list[str],
                         concurrency: int) -> dict[str, Any]:
    _http_json(f"{fal_url}/_emulator/reset", {})  # empty runner caches, zero the counters
    durations: list[float] = []
    pending = list(enumerate(order))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                if not pending:
                    return
                index, lora = pending.pop(0)
            body = {"model": "flux-lora", "inputs": {
                "prompt": f"bench {index}", "lora_url": lora, "lora_scale": 0.8,
                "image_size": {"width": 128, "height": 128}}}
            began = time.monotonic()
            job = _http_json(f"{base}/api/images/generate?wait=60", body, key)
            if job.get("status") != "completed":
                raise RuntimeError(f"job did not complete: {job}")
            with lock:
                durations.append(time.monotonic() - began)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = _http_json(f"{fal_url}/_emulator/stats")
    return {"cold_loads": stats["cold_loads"]["total"], "median": statistics.median(durations),
            "p90": statistics.quantiles(durations, n=10)[-1], "wall": time.monotonic() - began,
            "routed_by_hint": stats["requests"]["routed_by_hint"],
            "submits": stats["submits"]["total"]}


def through_brenia(order: list[str], concurrencies: list[int]) -> None:
    from bench._harness import (
        ROOT,
        brenia_env,
        daphne_command,
        free_port,
        manage,
        start_fal_emulator,
        stop_process,
        wait_http,
    )

    config = {"latency": "fast", "runners": 3, "cache_size": 2, "cold_load_s": COLD_LOAD_S,
              "dispatch_s": 0.01, "inference_s": 0.05, "seed": 1}
    fal = daphne = None
    with tempfile.TemporaryDirectory(prefix="brenia-bench-hints-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            fal, fal_url = start_fal_emulator(config, tmp / "fal.log")
            env = brenia_env(tmp=tmp, fal_url=fal_url, poll=0.05)
            manage(["migrate", "--noinput"], env)
            key = manage(["shell", "-c", MAKE_KEY], env).strip().splitlines()[-1]
            port = free_port()
            daphne = subprocess.Popen(
                daphne_command(["-b", "127.0.0.1", "-p", str(port), "brenia.asgi:application"],
                               env),
                cwd=ROOT, env=env, stdout=(tmp / "daphne.log").open("ab"),
                stderr=subprocess.STDOUT)
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/readyz", daphne)
            for concurrency in concurrencies:
                print(f"{concurrency} concurrent client(s), through Brenia's API:")
                results = {}
                for label, field in (("without hints", ""), ("with hints", "loras")):
                    # The registry row is read per request: no restart needed.
                    manage(["shell", "-c", SET_HINT_FIELD.format(field)], env)
                    passed = results[label] = _through_brenia_pass(base, key, fal_url, order,
                                                                   concurrency)
                    _print_result(label, passed)
                _print_cut(results, f"{concurrency} client(s) through Brenia")
        finally:
            stop_process(daphne)
            stop_process(fal)


def _print_result(label: str, result: dict[str, Any]) -> None:
    print(f"  {label:14} cold loads {result['cold_loads']:3d}   median job "
          f"{result['median']:.3f}s   p90 {result['p90']:.3f}s   routed by hint "
          f"{result['routed_by_hint']:3d}   wall {result['wall']:.1f}s")


def _print_cut(results: dict[str, dict[str, Any]], where: str) -> None:
    plain, with_hints = results["without hints"], results["with hints"]
    cut = 1 - with_hints["cold_loads"] / max(1, plain["cold_loads"])
    print(f"  hints cut cold loads by {cut:.0%} and the median job time by "
          f"{1 - with_hints['median'] / plain['median']:.0%}")
    result(f"runner hints, {where}: cold loads",
           f"{plain['cold_loads']} → {with_hints['cold_loads']} ({-cut:+.0%}); median job "
           f"{plain['median']:.3f} → {with_hints['median']:.3f} s",
           "at least 50 % fewer cold loads with hints", cut >= 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--concurrency", default="1,2",
                        help="comma-separated numbers of concurrent clients")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--through-brenia", action="store_true",
                        help="drive Brenia's API (a daphne process) instead of the emulator")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    order = [rng.choice(LORAS) for _ in range(args.requests)]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    print(f"{args.requests} flux-lora requests over {len(LORAS)} LoRAs, 3 runners x 2 cached "
          f"LoRAs, cold load {COLD_LOAD_S}s")
    if args.through_brenia:
        through_brenia(order, concurrencies)
        return
    for concurrency in concurrencies:
        print(f"{concurrency} concurrent client(s):")
        results = {}
        for label, hinted in (("without hints", False), ("with hints", True)):
            measured = results[label] = measure(order, hinted=hinted, concurrency=concurrency)
            _print_result(label, measured)
        _print_cut(results, f"{concurrency} client(s) on the emulator directly")


if __name__ == "__main__":
    main()
