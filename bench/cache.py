"""What a result-cache hit saves: the latency of a seeded request answered from an
identical earlier one, next to the same request made for the first time.

Starts the fal emulator (in its own process, with its realistic latency profile) and
Brenia (daphne, embedded profile, SQLite in a temporary directory, ``DEBUG`` off),
then, for each of N distinct prompts, POSTs ``/api/images/generate?wait=60`` with a
fixed seed twice: the first call runs on the provider (a miss), the second is served
from the first's result (a hit). Prints the client-side latency of each (median, p95),
the provider requests each made and what each cost, and the same request with
``"cache": false`` for comparison.

    .venv/bin/python bench/cache.py [--requests 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import (
    ROOT,
    brenia_env,
    daphne_command,
    free_port,
    manage,
    percentile,
    start_fal_emulator,
    stop_process,
    wait_http,
)
from bench._report import result

MAKE_KEY = (
    "from django.contrib.auth import get_user_model;"
    "from brenia.accounts.services import api_key_create;"
    "from generation.registry.services import registry_seed;"
    "registry_seed();"
    "user, _ = get_user_model().objects.get_or_create(username='bench');"
    "print(api_key_create(user=user)[1])"
)


def generate(base: str, key: str, prompt: str, *,
             cache: bool = True) -> tuple[float, dict[str, Any]]:
    body: dict[str, Any] = {"model": "flux-schnell", "inputs": {"prompt": prompt},
                            "options": {"seed": 1234, "width": 1024, "height": 768}}
    if not cache:
        body["cache"] = False
    request = urllib.request.Request(
        f"{base}/api/images/generate?wait=60", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    began = time.monotonic()
    with urllib.request.urlopen(request, timeout=90) as response:
        job = json.loads(response.read())
    took = time.monotonic() - began
    if job.get("status") != "completed":
        raise RuntimeError(f"job did not complete: {job}")
    return took, job


def fal_requests(fal_url: str) -> int:
    with urllib.request.urlopen(f"{fal_url}/_emulator/requests", timeout=10) as response:
        return len(json.loads(response.read())["requests"])


def summary(label: str, seconds: list[float], jobs: list[dict[str, Any]], calls: int) -> None:
    cost = sum((Decimal(job["cost"]) for job in jobs), Decimal(0))
    hits = sum(1 for job in jobs if job.get("cache_hit"))
    print(f"{label:<10} median {statistics.median(seconds) * 1000:8.1f} ms   "
          f"p95 {percentile(seconds, 95) * 1000:8.1f} ms   provider requests {calls:3d}   "
          f"cost {cost:.6f} USD   marked hits {hits}/{len(jobs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    fal = daphne = None
    with tempfile.TemporaryDirectory(prefix="brenia-bench-cache-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            fal, fal_url = start_fal_emulator({}, tmp / "fal.log")
            env = brenia_env(tmp=tmp, fal_url=fal_url)
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
            prompts = [f"lemonade stand {uuid.uuid4()}" for _ in range(args.requests)]
            results: dict[str, tuple[list[float], list[dict[str, Any]], int]] = {}
            for label, cache in (("miss", True), ("hit", True), ("no-cache", False)):
                before = fal_requests(fal_url)
                timed = [generate(base, key, prompt, cache=cache) for prompt in prompts]
                results[label] = ([t for t, _ in timed], [job for _, job in timed],
                                  fal_requests(fal_url) - before)
            print(f"== result cache: {args.requests} seeded flux-schnell requests of 1024x768, "
                  "each made three times (client side, through Brenia's API) ==")
            for label, (seconds, jobs, calls) in results.items():
                summary(label, seconds, jobs, calls)
            miss = statistics.median(results["miss"][0])
            hit = statistics.median(results["hit"][0])
            print(f"hit / miss median latency: {hit / miss:.3f} ({miss / hit:.0f}x faster)")
            hits = results["hit"]
            free = hits[2] == 0 and all(job.get("cache_hit") and Decimal(job["cost"]) == 0
                                        for job in hits[1])
            result("result cache: a hit next to a miss (median, client side)",
                   f"hit {hit * 1000:.0f} ms, miss {miss * 1000:.0f} ms; hits made "
                   f"{hits[2]} provider requests", "a hit is marked and costs nothing", free)
        finally:
            stop_process(daphne)
            stop_process(fal)


if __name__ == "__main__":
    main()
