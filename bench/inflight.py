"""How many in-flight jobs one worker holds (and its RSS), and Brenia's per-job overhead.

Part A (capacity, scale-out profile): a throw-away PostgreSQL database, N queued jobs,
ONE ``manage.py worker --concurrency C`` against a fal emulator whose requests run for
a long time; every second the bench counts jobs in ``submitted``/``in_progress`` (from
the database) and reads the worker's RSS and CPU from /proc, until N are in flight at
once (target: 1,000 in < 300 MB), then holds a few seconds to read the steady cost.
``--status stream`` (default, as Brenia runs) follows each fal request by its SSE status
stream; ``--status poll`` polls it every ``--poll`` seconds (BRENIA_FAL_STATUS_STREAM=0).

Part B (overhead, in-process, SQLite and PostgreSQL): the same jobs through (i) the
stock fal-client straight (submit, poll ``iter_events`` at the poll interval,
``result``, download the image with httpx) and (ii) Brenia (``job_create`` as the API
view calls it -> the in-process background runner -> ``runner.run_job``, one event loop), from
job creation to completed, alternating rounds. K=1 (one job at a time) is the per-job
overhead the target reads (<= 5 %); K=50 (a burst of 50 jobs at once on one event
loop) shows how Brenia's extra CPU per job (rows, events, image checks) queues under
contention. Prints median/p95 per job, the overhead, and where the time goes (phase
medians: the stock client's own marks; Brenia's job and attempt timestamps).

The emulator always runs in a process of its own (``--emulator thread`` puts it in
the bench process for Part A instead; it then competes with the sampler for a GIL).

    .venv/bin/python bench/inflight.py [--part a|b|both] [--jobs 1000] [--k 1,50]
                                       [--status stream|poll]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _fal_reference import part_ref
from _harness import (
    PATCHES,
    PY,
    ROOT,
    Cpu,
    TempDatabase,
    bench_user,
    brenia_env,
    cpu_seconds,
    django_setup,
    keep_log,
    machine_cpu,
    manage,
    manage_command,
    raise_nofile,
    redis_cleanup,
    rss_mb,
    start_fal_emulator,
    stop_process,
)
from _overhead import MODEL, OPTIONS, part_b
from _report import result as report

THIS = Path(__file__).resolve()
IN_FLIGHT = ("submitted", "in_progress")


# --- Part A -------------------------------------------------------------------------------------

def part_a(args: argparse.Namespace) -> None:
    pid = os.getpid()
    config = {"latency": "fast", "runners": args.jobs + 200, "inference_s": args.inference_s,
              "dispatch_s": 0.1}
    print(f"== Part A: capacity of ONE worker (scale-out profile) ==\n"
          f"N={args.jobs} jobs, worker --concurrency {args.concurrency}, status by "
          f"{args.status}, poll interval {args.poll}s, emulator {config} ({args.emulator})")
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
                                                    "BENCH_PATCHES": args.patch,
                                                    "BRENIA_FAL_STATUS_STREAM":
                                                        "1" if args.status == "stream" else "0"})
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
                      + (f"= {args.jobs / args.poll:.0f} status polls/s expected"
                         if args.status == "poll" else f"{peak[0]} status streams open"))
            held = hold_cpu.read() if reached_at is not None and hold_cpu is not None else None
            report(f"one worker: time until {args.jobs} jobs are in flight",
                   f"{reached_at:.0f} s" if reached_at is not None
                   else f"not reached in {args.timeout:.0f} s (peak {peak[0]})",
                   "<= 30 s", reached_at is not None and reached_at <= 30)
            report(f"one worker holding {peak[0]} jobs: RSS", f"{max_rss:.0f} MB", "< 300 MB",
                   max_rss < 300)
            report(f"one worker holding {peak[0]} jobs: CPU while they wait",
                   f"{held:.0f}% of one core" if held is not None else "not measured",
                   "< 50% of one core", held is not None and held < 50)
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

    from generation.jobs.services import job_create

    for _ in range(20):  # two makers seed the registry and the user at once
        try:
            user, _ = bench_user()
            break
        except IntegrityError:
            time.sleep(0.2)
    began = time.monotonic()
    for index in range(n):
        job_create(user=user, model_slug=MODEL, inputs={"prompt": f"bench job {maker}-{index}"},
                   options=dict(OPTIONS))
    print(json.dumps({"jobs": n, "seconds": time.monotonic() - began}))


# --- main ---------------------------------------------------------------------------------------

def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child-create-jobs":
        child_create_jobs(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("a", "b", "both", "ref"), default="both",
                        help="ref: the stock client's own polling cost (not in 'both')")
    parser.add_argument("--ref-pollers", default="100,300,600,1000",
                        help="ref: numbers of concurrently polled requests")
    parser.add_argument("--jobs", type=int, default=1000, help="Part A: jobs to hold in flight")
    parser.add_argument("--concurrency", type=int, default=1100, help="Part A: worker concurrency")
    parser.add_argument("--poll", type=float, default=1.0, help="Part A: BRENIA_POLL_INTERVAL")
    parser.add_argument("--status", choices=("stream", "poll"), default="stream",
                        help="Part A: follow fal requests by their SSE status stream (as "
                             "Brenia does by default) or poll them (BRENIA_FAL_STATUS_STREAM=0)")
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
        part_b(args)  # bench/_overhead.py
    if args.part == "ref":
        part_ref(args)  # bench/_fal_reference.py
    print(f"\n(total bench time {time.monotonic() - began:.0f}s)")


if __name__ == "__main__":
    main()
