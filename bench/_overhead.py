"""Part B of ``bench/inflight.py``: the per-job overhead Brenia adds over the stock client.

The same jobs go (i) straight through the stock fal-client and (ii) through Brenia,
in one process and one event loop, alternating rounds; see ``inflight.py``'s docstring.
This file is also the measured child process (``_overhead.py child-overhead K POLL ROUNDS``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import (
    TempDatabase,
    bench_user,
    brenia_env,
    cpu_seconds,
    django_setup,
    manage,
    percentile,
    run_child,
    start_fal_emulator,
    stop_process,
)
from _report import result as report

THIS = Path(__file__).resolve()
# The job both parts of inflight.py run.
MODEL = "flux-schnell"
OPTIONS = {"width": 256, "height": 256}


def part_b(args: argparse.Namespace) -> None:
    from generation.emulators.fal.config import PROFILES

    timing = PROFILES[args.b_latency]
    for k in [int(k) for k in args.k.split(",")]:
        # At least 30 jobs per path: one at a time needs many rounds for a stable median.
        rounds = max(args.rounds, -(-30 // k))
        config = {"latency": args.b_latency, "runners": k + 10, "cold_load_s": 0.0}
        print(f"\n== Part B: per-job overhead, K={k} job(s) at once, {rounds} rounds, poll "
              f"interval {args.b_poll}s, emulator {config} (own process: dispatch "
              f"{timing.dispatch_s}s + {timing.log_ticks} log ticks over {timing.inference_s}s "
              "inference) ==")
        print("direct = stock fal-client FalAsyncClient: submit -> iter_events(with_logs=True) "
              "-> result -> httpx GET of the image (warm clients); time submit..bytes.\n"
              "brenia = generation.jobs.services.job_create (validation, row, event, dispatch) -> "
              "in-process background runner -> run_job on the same event loop (events, attempts, "
              "download, Pillow check, storage, completion); time job_create call..task done.")
        dbs = ["sqlite", "postgres"] if args.b_db == "both" else [args.b_db]
        for label in dbs:
            result, emulator_cpu = overhead_run(args, label, k, rounds, config)
            report_b(label, k, result, emulator_cpu)


def overhead_run(args: argparse.Namespace, label: str, k: int, rounds: int,
                 config: dict[str, Any]) -> tuple[dict[str, Any], float]:
    pid = os.getpid()
    with tempfile.TemporaryDirectory(prefix="brenia-bench-") as tmpdir:
        tmp = Path(tmpdir)
        emulator_proc = None
        db: TempDatabase | None = None
        try:
            emulator_proc, url = start_fal_emulator(config, tmp / "emulator.log")
            if label == "postgres":
                db = TempDatabase(f"brenia_bench_{pid}_b")
            env = brenia_env(tmp=tmp, fal_url=url, database_url=db.url if db else "",
                             poll=args.b_poll, extra={"BENCH_PATCHES": args.patch})
            manage(["migrate", "--noinput"], env)
            result = run_child(THIS, ["child-overhead", str(k), str(args.b_poll), str(rounds)],
                               env, timeout=300)
            return result, cpu_seconds(emulator_proc.pid)
        finally:
            stop_process(emulator_proc)
            if db is not None:
                db.drop()


def report_b(label: str, k: int, result: dict[str, Any], emulator_cpu: float) -> None:
    direct, brenia = result["direct"], result["brenia"]
    print(f"-- Part B results, Brenia on {label} (in-process, one event loop), "
          f"{len(direct)} jobs per path over {result['rounds']} alternating round(s) --")
    for name, values in (("direct", direct), ("brenia", brenia)):
        print(f"{name:7} per job: median {statistics.median(values) * 1000:7.1f} ms   "
              f"p95 {percentile(values, 95) * 1000:7.1f} ms   max {max(values) * 1000:7.1f} ms")
    med = (statistics.median(brenia) - statistics.median(direct)) / statistics.median(direct)
    p95 = (percentile(brenia, 95) - percentile(direct, 95)) / percentile(direct, 95)
    print(f"overhead (brenia - direct) / direct: median {med:+.1%}   p95 {p95:+.1%}   "
          f"(+{(statistics.median(brenia) - statistics.median(direct)) * 1000:.0f} ms per job "
          "at the median)")
    print(f"brenia wall for K jobs: {result['brenia_wall']:.2f}s vs direct "
          f"{result['direct_wall']:.2f}s; brenia DB-side created->finished median "
          f"{statistics.median(result['brenia_db']) * 1000:.0f} ms; all completed: "
          f"{result['all_completed']}; bench child CPU {result['cpu_direct']:.1f}s direct vs "
          f"{result['cpu_brenia']:.1f}s brenia; emulator CPU {emulator_cpu:.1f}s")
    ratio = statistics.median(brenia) / statistics.median(direct)
    jobs = len(direct)
    cpu_ratio = result["cpu_brenia"] / result["cpu_direct"]
    if k > 1:
        report(f"{k} jobs at once on {label}: Brenia's median next to the bare client's",
               f"{ratio:.2f}x", "<= 1.3x", ratio <= 1.3)
    else:
        report(f"one job at a time on {label}: Brenia's median next to the bare client's",
               f"{ratio:.2f}x", "none (for reference)", None)
    report(f"CPU per job on {label}, {k} at once: Brenia next to the bare client",
           f"{cpu_ratio:.1f}x ({1000 * result['cpu_brenia'] / jobs:.0f} ms against "
           f"{1000 * result['cpu_direct'] / jobs:.0f} ms)",
           "<= 2x" if label == "postgres" else "none (target is on PostgreSQL)",
           cpu_ratio <= 2 if label == "postgres" else None)
    for name in ("direct", "brenia"):
        phases = result[f"{name}_phases"]
        print(f"{name:7} phase medians (ms after start): " + ", ".join(
            f"{phase} {seconds * 1000:.0f}" for phase, seconds in phases.items()))


def child_overhead(k: int, poll: float, rounds: int) -> None:
    django_setup()
    import fal_client
    import httpx
    from asgiref.sync import ThreadSensitiveContext, sync_to_async
    from django.conf import settings
    from django.db import close_old_connections

    from brenia.background import runner
    from generation.jobs.services import generation_prepare, job_create
    from generation.jobs.tasks import job_key
    from generation.models import Job, JobAttempt, JobStatus
    from generation.providers.fal_transport import FalAsyncClient

    user, _ = bench_user()
    prepared = generation_prepare(model_slug=MODEL, inputs={"prompt": "x"},
                                  options=dict(OPTIONS))
    endpoint = prepared.model.endpoint_id
    base_arguments = prepared.provider_arguments  # what Brenia sends, prompt aside
    # Phase marks per job, seconds after the job's start: where the time goes.
    direct_marks: list[dict[str, float]] = []
    brenia_starts: list[tuple[Any, float]] = []  # (job id, wall-clock start)

    async def direct_round(tag: str, count: int, client: FalAsyncClient,
                           http: httpx.AsyncClient) -> list[float]:
        async def one(index: int) -> float:
            began = time.monotonic()
            arguments = {**base_arguments, "prompt": f"{tag} {index}"}
            handle = await client.submit(endpoint, arguments)
            marks = {"submitted": time.monotonic() - began}
            async for status in handle.iter_events(with_logs=True, interval=poll):
                if isinstance(status, fal_client.InProgress) and "running" not in marks:
                    marks["running"] = time.monotonic() - began
            marks["completion seen"] = time.monotonic() - began
            output = await client.result(endpoint, handle.request_id)
            for image in output["images"]:
                response = await http.get(image["url"])
                response.raise_for_status()
                assert response.content
            marks["done"] = time.monotonic() - began
            direct_marks.append(marks)
            return marks["done"]

        return list(await asyncio.gather(*(one(i) for i in range(count))))

    async def brenia_round(tag: str, count: int) -> tuple[list[float], list[Any]]:
        async def one(index: int) -> tuple[float, Any]:
            began, wall = time.monotonic(), time.time()
            # As the API view calls it: Django's ASGI handler gives every request a
            # thread of its own for sync code, and closes its connections at the end.
            async with ThreadSensitiveContext():
                job, _ = await sync_to_async(job_create)(
                    user=user, model_slug=MODEL, inputs={"prompt": f"{tag} {index}"},
                    options=dict(OPTIONS))
                await sync_to_async(close_old_connections)()
            key = job_key(job.pk)
            while key not in runner.keyed:  # dispatched after commit, on this loop
                if await Job.objects.filter(pk=job.pk, status__in=("completed", "failed",
                                                                   "errored")).aexists():
                    break
                await asyncio.sleep(0.001)
            task = runner.keyed.get(key)
            if task is not None:
                await task
            brenia_starts.append((job.pk, wall))
            return time.monotonic() - began, job.pk

        pairs = await asyncio.gather(*(one(i) for i in range(count)))
        return [p[0] for p in pairs], [p[1] for p in pairs]

    async def brenia_phases() -> dict[str, float]:
        """Medians of the job's own timestamps, relative to the job_create call."""
        marks: dict[str, list[float]] = {}
        for pk, wall in brenia_starts:
            job = await Job.objects.aget(pk=pk)
            attempt = await JobAttempt.objects.filter(job_id=pk).order_by("number").afirst()
            for name, at in (("row created", job.created_at),
                             ("attempt began", attempt.started_at if attempt else None),
                             ("submitted", job.submitted_at), ("running", job.started_at),
                             ("done", job.finished_at)):
                if at is not None:
                    marks.setdefault(name, []).append(at.timestamp() - wall)
        return {name: statistics.median(values) for name, values in marks.items()}

    async def main() -> dict[str, Any]:
        runner.adopt_running_loop()  # exactly what daphne's first request does
        # One warm client each, as Brenia keeps one per event loop.
        client = FalAsyncClient(key=settings.FAL_KEY, queue_url=settings.FAL_QUEUE_URL)
        http = httpx.AsyncClient(timeout=60.0)
        await direct_round("warm", 2, client, http)
        await brenia_round("warm", 2)
        direct_marks.clear()
        brenia_starts.clear()
        direct: list[float] = []
        brenia: list[float] = []
        ids: list[Any] = []
        cpu = {"direct": 0.0, "brenia": 0.0}
        walls = {"direct": 0.0, "brenia": 0.0}
        for number in range(rounds):
            c0, w0 = cpu_seconds(os.getpid()), time.monotonic()
            direct += await direct_round(f"direct {number}", k, client, http)
            c1, w1 = cpu_seconds(os.getpid()), time.monotonic()
            times, round_ids = await brenia_round(f"brenia {number}", k)
            c2, w2 = cpu_seconds(os.getpid()), time.monotonic()
            brenia += times
            ids += round_ids
            cpu["direct"] += c1 - c0
            cpu["brenia"] += c2 - c1
            walls["direct"] += w1 - w0
            walls["brenia"] += w2 - w1
        await client.aclose()
        await http.aclose()
        rows = [row async for row in Job.objects.filter(pk__in=ids).values_list(
            "status", "created_at", "finished_at")]
        return {"direct": direct, "brenia": brenia, "rounds": rounds,
                "brenia_db": [(f - c).total_seconds() for _, c, f in rows if f],
                "all_completed": all(s == JobStatus.COMPLETED for s, _, _ in rows),
                "cpu_direct": cpu["direct"], "cpu_brenia": cpu["brenia"],
                "direct_wall": walls["direct"] / rounds, "brenia_wall": walls["brenia"] / rounds,
                # A job can go from queued to completed between two polls and never
                # be seen running: each phase's median is over the jobs that showed it.
                "direct_phases": {name: statistics.median(m[name] for m in direct_marks
                                                          if name in m)
                                  for name in dict.fromkeys(k for m in direct_marks
                                                            for k in m)},
                "brenia_phases": await brenia_phases()}

    print(json.dumps(asyncio.run(main())))


if __name__ == "__main__" and sys.argv[1:2] == ["child-overhead"]:
    child_overhead(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
