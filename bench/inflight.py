"""How many in-flight jobs one worker holds (and its RSS), and Brenia's per-job overhead.

Part A (capacity, scale-out profile): a throw-away PostgreSQL database, N queued jobs,
ONE ``manage.py worker --concurrency C`` against a fal emulator whose requests run for
a long time; every second the bench counts jobs in ``submitted``/``in_progress`` (from
the database) and reads the worker's RSS and CPU from /proc, until N are in flight at
once (target: 1,000 in < 300 MB), then holds a few seconds to read the steady cost.

Part B (overhead, in-process, SQLite and PostgreSQL): the same jobs through (i) the
stock fal-client straight (submit, poll ``iter_events`` at the poll interval,
``result``, download the image with httpx) and (ii) Brenia (``job_create`` as the API
view calls it -> the in-process executor -> ``runner.run_job``, one event loop), from
job creation to completed, alternating rounds. K=1 (one job at a time) is the per-job
overhead the target reads (<= 5 %); K=50 (a burst of 50 jobs at once on one event
loop) shows how Brenia's extra CPU per job (rows, events, image checks) queues under
contention. Prints median/p95 per job, the overhead, and where the time goes (phase
medians: the stock client's own marks; Brenia's job and attempt timestamps).

The emulator always runs in a process of its own (``--emulator thread`` puts it in
the bench process for Part A instead; it then competes with the sampler for a GIL).

    .venv/bin/python bench/inflight.py [--part a|b|both] [--jobs 1000] [--k 1,50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _fal_reference import part_ref
from _harness import (
    PATCHES,
    PY,
    ROOT,
    Cpu,
    TempDatabase,
    brenia_env,
    cpu_seconds,
    django_setup,
    keep_log,
    machine_cpu,
    manage,
    manage_command,
    percentile,
    raise_nofile,
    redis_cleanup,
    rss_mb,
    run_child,
    start_fal_emulator,
    stop_process,
)

THIS = Path(__file__).resolve()
MODEL = "flux-schnell"
OPTIONS = {"width": 256, "height": 256}
IN_FLIGHT = ("submitted", "in_progress")


# --- Part A -------------------------------------------------------------------------------------

def part_a(args: argparse.Namespace) -> None:
    pid = os.getpid()
    config = {"latency": "fast", "runners": args.jobs + 200, "inference_s": args.inference_s,
              "dispatch_s": 0.1}
    print(f"== Part A: capacity of ONE worker (scale-out profile) ==\n"
          f"N={args.jobs} jobs, worker --concurrency {args.concurrency}, poll interval "
          f"{args.poll}s, emulator {config} ({args.emulator})")
    emulator_proc = emulator_thread = worker = None
    db: TempDatabase | None = None
    with tempfile.TemporaryDirectory(prefix="brenia-bench-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            if args.emulator == "thread":
                from generation.emulators.fal import FalEmulatorConfig, create_app
                from generation.emulators.server import EmulatorThread

                emulator_thread = EmulatorThread(lambda: create_app(FalEmulatorConfig(**config)))
                url = emulator_thread.start()
            else:
                emulator_proc, url = start_fal_emulator(config, tmp / "emulator.log")
            db = TempDatabase(f"brenia_bench_{pid}")
            env = brenia_env(tmp=tmp, fal_url=url, database_url=db.url,
                             redis_prefix=f"brenia-bench-{pid}", jobs="procrastinate",
                             poll=args.poll, extra={"BRENIA_SHUTDOWN_GRACE": "0",
                                                    "BENCH_PATCHES": args.patch})
            began = time.monotonic()
            manage(["migrate", "--noinput"], env)
            print(f"migrated {db.name} in {time.monotonic() - began:.1f}s")
            began = time.monotonic()
            makers = [subprocess.Popen([PY, str(THIS), "child-create-jobs", str(share), str(n)],
                                       cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                       stderr=(tmp / f"create-{n}.log").open("ab"))
                      for n, share in enumerate(split(args.jobs, 2))]
            for maker in makers:
                if maker.wait(timeout=150) != 0:
                    raise RuntimeError((tmp / "create-0.log").read_text()[-3000:])
            print(f"created and deferred {args.jobs} queued jobs (job_create, 2 processes) in "
                  f"{time.monotonic() - began:.1f}s")
            sessions_before = db.sessions()

            log = tmp / "worker.log"
            worker = subprocess.Popen(
                manage_command(["worker", "--concurrency", str(args.concurrency)], env),
                cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
            started = time.monotonic()
            worker_cpu = Cpu(worker.pid)
            emu_pid = emulator_proc.pid if emulator_proc else os.getpid()
            emulator_cpu = Cpu(emu_pid)
            busy0, total0 = machine_cpu()
            print(f"{'t(s)':>5} {'queued':>6} {'subm':>5} {'in_prog':>7} {'in-flight':>9} "
                  f"{'done/err':>8} {'RSS MB':>7} {'wkr CPU%':>8} {'emu CPU%':>8}")
            peak = (0, 0.0, 0.0)  # in-flight, rss, t
            reached_at: float | None = None
            last_cpu = Cpu(worker.pid)
            last_emu = Cpu(emu_pid)
            max_rss = 0.0
            hold_cpu: Cpu | None = None
            while True:
                time.sleep(1.0)
                now = time.monotonic() - started
                if worker.poll() is not None:
                    print(f"worker exited with {worker.returncode}; log tail:\n"
                          f"{log.read_text(errors='replace')[-3000:]}")
                    break
                counts = dict(db.query("SELECT status, count(*) FROM generation_job "
                                       "GROUP BY status"))
                in_flight = sum(counts.get(s, 0) for s in IN_FLIGHT)
                rss = rss_mb(worker.pid)
                max_rss = max(max_rss, rss)
                ended = sum(counts.get(s, 0) for s in ("completed", "failed", "errored",
                                                        "cancelled"))
                print(f"{now:5.0f} {counts.get('queued', 0):6d} {counts.get('submitted', 0):5d} "
                      f"{counts.get('in_progress', 0):7d} {in_flight:9d} {ended:8d} {rss:7.1f} "
                      f"{last_cpu.read():8.0f} {last_emu.read():8.0f}")
                last_cpu.mark()
                last_emu.mark()
                if in_flight > peak[0]:
                    peak = (in_flight, rss, now)
                if reached_at is None and in_flight >= args.jobs:
                    reached_at = now
                    ramp_cpu = worker_cpu.read()
                    ramp_emu = emulator_cpu.read()
                    busy1, total1 = machine_cpu()
                    ramp_machine = 100 * (busy1 - busy0) / max(1.0, total1 - total0)
                    hold_cpu = Cpu(worker.pid)
                    hold_emu = Cpu(emu_pid)
                    busy0, total0 = busy1, total1
                if reached_at is not None and now - reached_at >= args.hold:
                    break
                if now >= args.timeout:
                    print(f"timeout: {args.jobs} in flight not reached in {args.timeout:.0f}s")
                    break
            sessions = db.sessions() - sessions_before
            print("-- Part A results --")
            print(f"peak in-flight jobs        : {peak[0]} (first reached at t={peak[2]:.0f}s)")
            print(f"worker RSS at peak         : {peak[1]:.1f} MB (max seen {max_rss:.1f} MB)")
            if reached_at is not None and hold_cpu is not None:
                busy1, total1 = machine_cpu()
                print(f"time to {args.jobs} in flight     : {reached_at:.0f}s after worker start "
                      f"(1 s sampling)")
                print(f"worker CPU during ramp-up  : {ramp_cpu:.0f}% of one core "
                      f"(emulator {ramp_emu:.0f}%, whole machine {ramp_machine:.0f}% of 2 cores)")
                print(f"worker CPU holding {peak[0]:>4}  : {hold_cpu.read():.0f}% of one core over "
                      f"{args.hold:.0f}s (emulator {hold_emu.read():.0f}%, machine "
                      f"{100 * (busy1 - busy0) / max(1.0, total1 - total0):.0f}%), "
                      f"= {args.jobs / args.poll:.0f} status polls/s expected")
            print(f"worker CPU time total      : {cpu_seconds(worker.pid):.1f}s")
            print(f"PostgreSQL sessions opened : {sessions} during the run "
                  f"(pg_stat_database.sessions)")
            text = log.read_text(errors="replace")
            finals = sorted({line for line in text.splitlines()
                             if line and line[0].isalpha() and ("Error" in line.split(":")[0]
                                                               or "Exception" in line)})
            print(f"tracebacks in worker log   : {text.count('Traceback')}"
                  + "".join(f"\n    {line[:160]}" for line in finals[:3]))
            keep_log(log)
        finally:
            if worker is not None and worker.poll() is None:
                worker.kill()  # in-flight jobs would otherwise be cancelled one by one
                worker.wait(timeout=10)
            stop_process(emulator_proc)
            if emulator_thread is not None:
                emulator_thread.stop()
            if db is not None:
                db.drop()
            redis_cleanup(f"brenia-bench-{pid}")


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def child_create_jobs(n: int, maker: int) -> None:
    django_setup()
    from django.db import IntegrityError

    from generation.services import job_create

    for _ in range(20):  # two makers seed the registry and the user at once
        try:
            user, _ = bench_user_quiet()
            break
        except IntegrityError:
            time.sleep(0.2)
    began = time.monotonic()
    for index in range(n):
        job_create(user=user, model_slug=MODEL, inputs={"prompt": f"bench job {maker}-{index}"},
                   options=dict(OPTIONS))
    print(json.dumps({"jobs": n, "seconds": time.monotonic() - began}))


def bench_user_quiet() -> tuple[Any, str]:
    from _harness import bench_user

    return bench_user()


# --- Part B -------------------------------------------------------------------------------------

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
              "brenia = generation.services.job_create (validation, row, event, dispatch) -> "
              "in-process executor -> runner.run_job on the same event loop (events, attempts, "
              "download, Pillow check, storage, completion); time job_create call..task done.")
        dbs = ["sqlite", "postgres"] if args.b_db == "both" else [args.b_db]
        for label in dbs:
            result, emulator_cpu = overhead_run(args, label, k, rounds, config)
            report_b(label, result, emulator_cpu)


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


def report_b(label: str, result: dict[str, Any], emulator_cpu: float) -> None:
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

    from generation.execution import executor
    from generation.models import Job, JobAttempt, JobStatus
    from generation.providers.fal_transport import FalAsyncClient
    from generation.services import generation_prepare, job_create

    user, _ = bench_user_quiet()
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
            key = str(job.pk)
            while key not in executor.tasks:  # dispatched after commit, on this loop
                if await Job.objects.filter(pk=job.pk, status__in=("completed", "failed",
                                                                   "errored")).aexists():
                    break
                await asyncio.sleep(0.001)
            task = executor.tasks.get(key)
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
        executor.adopt_running_loop()  # exactly what daphne's first request does
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
                "direct_phases": {name: statistics.median(m[name] for m in direct_marks)
                                  for name in direct_marks[0]},
                "brenia_phases": await brenia_phases()}

    print(json.dumps(asyncio.run(main())))


# --- main ---------------------------------------------------------------------------------------

def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child-create-jobs":
        child_create_jobs(int(sys.argv[2]), int(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "child-overhead":
        child_overhead(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("a", "b", "both", "ref"), default="both",
                        help="ref: the stock client's own polling cost (not in 'both')")
    parser.add_argument("--ref-pollers", default="100,300,600,1000",
                        help="ref: numbers of concurrently polled requests")
    parser.add_argument("--jobs", type=int, default=1000, help="Part A: jobs to hold in flight")
    parser.add_argument("--concurrency", type=int, default=1100, help="Part A: worker concurrency")
    parser.add_argument("--poll", type=float, default=1.0, help="Part A: BRENIA_POLL_INTERVAL")
    parser.add_argument("--inference-s", type=float, default=120.0,
                        help="Part A: emulated inference time (long: jobs stay in flight)")
    parser.add_argument("--hold", type=float, default=8.0,
                        help="Part A: seconds to keep sampling once all jobs are in flight")
    parser.add_argument("--timeout", type=float, default=75.0,
                        help="Part A: give up after this many seconds")
    parser.add_argument("--emulator", choices=("process", "thread"), default="process",
                        help="Part A: the emulator in its own process or a bench thread")
    parser.add_argument("--k", default="1,50",
                        help="Part B: jobs at once, one run per comma-separated value")
    parser.add_argument("--b-poll", type=float, default=0.25,
                        help="Part B: poll interval (both paths)")
    parser.add_argument("--b-latency", choices=("fast", "realistic"), default="fast",
                        help="Part B: emulator timing profile (fast: 0.5 s jobs, realistic: 3.3 s)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="Part B: alternating rounds (at least 30 jobs per path)")
    parser.add_argument("--b-db", choices=("sqlite", "postgres", "both"), default="both",
                        help="Part B: Brenia's database")
    parser.add_argument("--patch", default="",
                        help="what-if fixes applied in Brenia's processes only (comma-separated: "
                             f"{', '.join(PATCHES)}); default none = Brenia as it is")
    args = parser.parse_args()
    if args.patch:
        print(f"WHAT-IF RUN: bench-only patches {args.patch} applied in Brenia's processes")
    raise_nofile()
    began = time.monotonic()
    if args.part in ("a", "both"):
        part_a(args)
    if args.part in ("b", "both"):
        part_b(args)
    if args.part == "ref":
        part_ref(args)  # bench/_fal_reference.py
    print(f"\n(total bench time {time.monotonic() - began:.0f}s)")


if __name__ == "__main__":
    main()
