"""Fault drills: kill, lose Redis, lose the database, inject provider faults; bounded.

Each drill sets up the scale-out profile of its own (a throw-away PostgreSQL database,
a Redis key prefix of its own, the fal emulator in a process of its own, daphne and
``manage.py worker`` as child processes), creates jobs through the HTTP API
(``POST /api/images/generate`` with a bearer API key and an ``Idempotency-Key`` per
job, so a POST cut off by a fault is retried without making a second job), inflicts
its fault, waits for every job to end, prints its figures and one ``PASS``/``FAIL``
line. Every wait has a deadline: past it the drill reports FAIL with what is stuck
(jobs not terminal, their state, attempts and queue rows) instead of hanging.
Everything it started is stopped and the database dropped, also on failure.
The drills share ``_drill_stack.py`` (the stack, a private redis-server, the
submitter) and ``_drill_checks.py`` (what a finished run is checked for, and the
report); the redis drill and its WebSocket follower are in ``_drill_redis.py``.

  kill      200 jobs, one daphne + one worker, fal requests take a few seconds.
            ``kill -9`` daphne while jobs are being POSTed, start a new one; later
            ``kill -9`` the worker while jobs are in flight, start a new one. Checks:
            every job terminal, no job lost, one job per idempotency key, no double
            submit (the emulator records every accepted submit; a job whose run
            re-attached to its request submits once), at most one settle per job and
            no hold left open for a terminal job (ledger), one image per completed job.
            A submit the worker's kill cuts between fal's accept and the commit of its
            request id is reported apart ("cut"): fal has no idempotency key, so no
            process can learn of that request after the kill.
  redis     a private ``redis-server`` on a free port (never the machine's shared
            one) serves the channel layer and cache. A WebSocket client follows the
            user's jobs on ``/ws/jobs/``; the drill SIGKILLs that redis-server mid-run
            and starts a fresh, empty one on the same port. Checks: live updates
            resume after the restart, the client catches up (on reconnecting, and on a
            gap in a job's gap-free sequence numbers, it re-subscribes the job with
            ``after=<last seen seq>`` and gets the missed events, then a snapshot) so
            the last state it saw of each job equals the job's final state from the
            API, and every job ends terminal (completed: the outage is no reason to
            fail a job). ``--channel-layer core|pubsub`` picks BRENIA_CHANNEL_LAYER.
  postgres  restarting the machine's shared PostgreSQL would break everyone else's
            work, so the drill simulates losing the database instead: mid-run it
            terminates every backend connection to its own throw-away database
            (``pg_terminate_backend`` over ``pg_stat_activity`` for that datname),
            several times over a few seconds, while jobs are being POSTed and run.
            Checks: jobs resume, all end terminal, none lost, none made twice. A
            process that exits is restarted (as a supervisor would) and reported.
  faults    100 jobs against a fal emulator injecting faults into 30 % of submit
            attempts (seeded: 429, 500, runner_error, hang, content_policy,
            malformed), with ``BRENIA_JOB_TIMEOUT`` shortened so a hang ends. Checks:
            every job ends (completed/failed/errored) within the bound, each failed or
            errored one with a non-empty error code; prints the count per final status
            and per error code. ``--breaker-failures 1000`` keeps the circuit breaker
            from opening, to see each fault's own handling.
  all       the four, one after the other.

    .venv/bin/python bench/drills.py kill|redis|postgres|faults|all [--jobs N]
                                     [--deadline SECONDS]

Exit code 1 if any drill FAILed. ``BENCH_KEEP_LOGS=<dir>`` keeps the children's logs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _drill_checks import (
    TARGETS,
    check_ledger,
    check_submits,
    emulator_requests,
    event_counts,
    print_tracebacks,
    report_stuck,
    run_failures,
    submit_lag,
    task_rows,
    verdict,
    wait_terminal,
)
from _drill_redis import drill_redis
from _drill_stack import (
    TERMINAL,
    DrillFailed,
    Submitter,
    log,
    stack_of,
    supervised,
)
from _harness import (
    PG_ADMIN,
    bench_user,
    django_setup,
    raise_nofile,
)
from _report import result as report

# --- drill: kill -----------------------------------------------------------------------------

def drill_kill(args: argparse.Namespace) -> bool:
    began = time.monotonic()
    jobs = args.jobs or 200
    print(f"\n== drill kill: {jobs} jobs, kill -9 daphne while POSTing, kill -9 the worker "
          f"while jobs are in flight ==")
    failures: list[str] = []
    emulator = {"latency": "fast", "runners": 60, "inference_s": 4.0, "dispatch_s": 0.3}
    with stack_of("kill", emulator=emulator, extra={"BRENIA_JOB_TIMEOUT": "120"}) as stack:
        stack.start_daphne()
        stack.start_worker()
        deadline = time.monotonic() + args.deadline
        sub = Submitter(stack, uuid.uuid4().hex[:8])
        kill_times: list[float] = []
        rate = 20.0

        async def submit_and_kill_web() -> None:
            task = asyncio.create_task(sub.submit_all(jobs, rate, deadline))
            while len(sub.ids) < jobs * 0.3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            pid = stack.kill9("daphne")
            kill_times.append(time.monotonic() - stack.t0)
            log(stack.t0, f"kill -9 daphne (pid {pid}) with {len(sub.ids)} jobs accepted")
            await asyncio.sleep(1.0)
            await asyncio.to_thread(stack.start_daphne)
            log(stack.t0, "new daphne serving")
            await task

        asyncio.run(supervised(stack, submit_and_kill_web()))
        log(stack.t0, f"POSTed: {len(sub.ids)}/{jobs} accepted; replies {dict(sub.replies)}; "
                      f"{sub.retried} retried POSTs; gave up on {len(sub.gave_up)}")
        ids = list(sub.ids.values())
        # The worker dies while most jobs are in flight at fal.
        worker_killed = False

        def tick(now: float, counts: Counter[str]) -> None:
            nonlocal worker_killed
            in_flight = counts["submitted"] + counts["in_progress"]
            if not worker_killed and (in_flight >= len(ids) // 3
                                      or sum(counts[s] for s in TERMINAL) >= len(ids) // 3):
                pid = stack.kill9("worker")
                kill_times.append(now - stack.t0)
                worker_killed = True
                log(stack.t0, f"kill -9 worker (pid {pid}) with {in_flight} jobs in flight, "
                              f"{dict(counts)}")
                time.sleep(1.0)
                stack.start_worker()
                log(stack.t0, "new worker started")

        all_done = wait_terminal(stack, ids, deadline, tick=tick)
        finished_at = time.monotonic()
        counts = Counter(dict(stack.query(
            "SELECT status, count(*) FROM generation_job WHERE id = ANY(%s::uuid[]) "
            "GROUP BY status", ids)))
        terminal = sum(counts[s] for s in TERMINAL)
        made = stack.query("SELECT count(*) FROM generation_job")[0][0]
        doubles, cut, double_notes = check_submits(stack, sub, kill_times[1:])
        ledger, ledger_problems = check_ledger(stack, ids)
        print("-- kill: figures --")
        print(f"jobs terminal / total      : {terminal}/{jobs} {dict(sorted(counts.items()))}")
        print(f"lost (not terminal by the deadline, or never accepted): "
              f"{jobs - terminal}")
        print(f"jobs in the database       : {made} (one per Idempotency-Key expected: {jobs})")
        print(f"POST replies               : {dict(sub.replies)} ({sub.retried} retries)")
        print(f"double submits (jobs)      : {doubles}")
        print(f"submits cut by the kill    : {cut} (fal accepted them, the worker died "
              f"before committing the id: submitted again)")
        for note in double_notes[:10]:
            print(f"    {note}")
        print(f"ledger                     : {ledger}")
        for problem in ledger_problems[:10]:
            print(f"    {problem}")
        print(f"submit -> id committed lag : {submit_lag(stack, sub)}")
        print(f"events by type             : {event_counts(stack, ids)}")
        print(f"run_job task rows per job  : {task_rows(stack)}")
        print(f"kills at                   : {', '.join(f'{k:.1f}s' for k in kill_times)}; "
              f"all jobs ended at {finished_at - stack.t0:.1f}s; processes started "
              f"{dict(stack.started)}")
        if stack.exits:
            print(f"unexpected exits           : {stack.exits}")
        failures += run_failures(stack, ids, jobs, all_done=all_done, terminal=terminal,
                                 made=made, completed=counts["completed"], doubles=doubles)
        if ledger_problems:
            failures.append(f"{len(ledger_problems)} ledger/result problem(s)")
        if len(kill_times) < 2:
            failures.append("the worker was never killed (drill did not run as planned)")
        if stack.exits:
            failures.append(f"{len(stack.exits)} unexpected process exit(s)")
    return verdict("kill", failures, began,
                   f"{cut} submit(s) cut by the kill: fal has no idempotency key" if cut else "")


# --- drill: postgres -------------------------------------------------------------------------

def terminate_backends(dbname: str) -> int:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()",
                            (dbname,)).fetchall()
    return sum(1 for (done,) in rows if done)


def drill_postgres(args: argparse.Namespace) -> bool:
    began = time.monotonic()
    jobs = args.jobs or 100
    print(f"\n== drill postgres: {jobs} jobs; every connection to the drill's own database is "
          "terminated (pg_terminate_backend) 4 times over ~5 s mid-run ==")
    failures: list[str] = []
    emulator = {"latency": "fast", "runners": jobs + 10, "inference_s": 6.0, "dispatch_s": 0.3}
    with stack_of("postgres", emulator=emulator, extra={"BRENIA_JOB_TIMEOUT": "120"}) as stack:
        assert stack.db is not None
        stack.start_daphne()
        stack.start_worker()
        deadline = time.monotonic() + args.deadline
        sub = Submitter(stack, uuid.uuid4().hex[:8])
        cuts: list[str] = []
        rate = jobs / 8.0

        async def submit_and_cut() -> None:
            task = asyncio.create_task(sub.submit_all(jobs, rate, deadline))
            await asyncio.sleep(4.0)
            for _ in range(4):
                killed = await asyncio.to_thread(terminate_backends, stack.db.name)  # type: ignore[union-attr]
                cuts.append(f"{killed} at {time.monotonic() - stack.t0:.1f}s")
                log(stack.t0, f"terminated {killed} backend(s) of {stack.db.name}")  # type: ignore[union-attr]
                await asyncio.sleep(1.5)
            await task

        asyncio.run(supervised(stack, submit_and_cut()))
        log(stack.t0, f"POSTed: {len(sub.ids)}/{jobs} accepted; replies {dict(sub.replies)}")
        ids = list(sub.ids.values())
        all_done = wait_terminal(stack, ids, deadline)
        counts = Counter(dict(stack.query(
            "SELECT status, count(*) FROM generation_job WHERE id = ANY(%s::uuid[]) "
            "GROUP BY status", ids)))
        codes = Counter(dict(stack.query(
            "SELECT error_code, count(*) FROM generation_job WHERE id = ANY(%s::uuid[]) "
            "AND error_code <> '' GROUP BY error_code", ids)))
        terminal = sum(counts[s] for s in TERMINAL)
        made = stack.query("SELECT count(*) FROM generation_job")[0][0]
        doubles, _, double_notes = check_submits(stack, sub, [])
        ledger, ledger_problems = check_ledger(stack, ids)
        print("-- postgres: figures --")
        print(f"backends terminated        : {', '.join(cuts)}")
        print(f"jobs terminal / total      : {terminal}/{jobs} {dict(sorted(counts.items()))}; "
              f"error codes {dict(codes)}")
        print(f"lost                       : {jobs - terminal}")
        print(f"jobs in the database       : {made} (expected {jobs})")
        print(f"POST replies               : {dict(sub.replies)} ({sub.retried} retries)")
        print(f"double submits (jobs)      : {doubles}")
        for note in double_notes[:10]:
            print(f"    {note}")
        print(f"ledger                     : {ledger}")
        for problem in ledger_problems[:10]:
            print(f"    {problem}")
        print(f"submit -> id committed lag : {submit_lag(stack, sub)}")
        print(f"run_job task rows per job  : {task_rows(stack)}")
        print(f"process exits (restarted)  : {stack.exits or 'none'}; processes started "
              f"{dict(stack.started)}")
        failures += run_failures(stack, ids, jobs, all_done=all_done, terminal=terminal,
                                 made=made, completed=counts["completed"], doubles=doubles,
                                 codes=f" (codes {dict(codes)})")
        if ledger_problems:
            failures.append(f"{len(ledger_problems)} ledger/result problem(s)")
        if stack.exits:
            failures.append(f"{len(stack.exits)} process(es) exited and had to be restarted")
    return verdict("postgres", failures, began)


# --- drill: faults ---------------------------------------------------------------------------

FAULT_RATES = {"429": 0.05, "500": 0.05, "runner_error": 0.05, "hang": 0.05,
               "content_policy": 0.05, "malformed": 0.05}
JOB_TIMEOUT_S = 15


def drill_faults(args: argparse.Namespace) -> bool:
    began = time.monotonic()
    jobs = args.jobs or 100
    print(f"\n== drill faults: {jobs} jobs, {sum(FAULT_RATES.values()):.0%} of fal submit "
          f"attempts faulted {FAULT_RATES}, BRENIA_JOB_TIMEOUT={JOB_TIMEOUT_S} ==")
    failures: list[str] = []
    emulator = {"latency": "fast", "runners": jobs + 10, "inference_s": 2.0, "dispatch_s": 0.2,
                "seed": 7, "faults": {"*": {"rate": FAULT_RATES, "hang_s": 300}}}
    extra = {"BRENIA_JOB_TIMEOUT": str(JOB_TIMEOUT_S)}
    if args.breaker_failures:
        extra["BRENIA_BREAKER_FAILURES"] = str(args.breaker_failures)
        print(f"(BRENIA_BREAKER_FAILURES={args.breaker_failures}: the circuit breaker is "
              "taken out of the picture, to see each fault's own handling)")
    with stack_of("faults", emulator=emulator, extra=extra) as stack:
        stack.start_daphne()
        stack.start_worker()
        deadline = time.monotonic() + args.deadline
        sub = Submitter(stack, uuid.uuid4().hex[:8])
        asyncio.run(supervised(stack, sub.submit_all(jobs, 25.0, deadline)))
        ids = list(sub.ids.values())
        posted_at = time.monotonic()
        log(stack.t0, f"POSTed: {len(ids)}/{jobs} accepted; replies {dict(sub.replies)}")
        all_done = wait_terminal(stack, ids, deadline)
        rows = stack.query(
            "SELECT j.id, j.status, j.error_code, j.inputs->>'prompt', "
            "extract(epoch FROM j.finished_at - j.created_at), "
            "(SELECT count(*) FROM generation_jobattempt a WHERE a.job_id = j.id) "
            "FROM generation_job j WHERE j.id = ANY(%s::uuid[])", ids)
        statuses = Counter(r[1] for r in rows)
        codes = Counter((r[1], r[2] or "-") for r in rows)
        no_code = [r[0] for r in rows if r[1] in ("failed", "errored") and not r[2]]
        spans = sorted(float(r[4]) for r in rows if r[4] is not None)
        attempts = Counter(int(r[5]) for r in rows)
        requests = emulator_requests(stack)
        stats = __import__("httpx").get(f"{stack.fal_url}/_emulator/stats", timeout=30).json()
        drawn = Counter(r["fault"] for r in requests)
        last_fault: dict[str, str] = {}
        for item in sorted(requests, key=lambda r: r["created"]):
            last_fault[item.get("prompt") or ""] = item["fault"]
        crossing = Counter((last_fault.get(r[3], "no request"), r[1], r[2] or "-") for r in rows)
        ledger, ledger_problems = check_ledger(stack, ids)
        bound = JOB_TIMEOUT_S * 3 + 60  # three attempts and their backoff, plus slack
        late = [s for s in spans if s > bound]
        print("-- faults: figures --")
        print(f"jobs terminal / total      : {sum(statuses[s] for s in TERMINAL)}/{jobs}; "
              f"all ended {time.monotonic() - posted_at:.0f}s after the last POST")
        print(f"per final status           : {dict(sorted(statuses.items()))}")
        print("per final status, code     :")
        for (status, code), count in sorted(codes.items()):
            print(f"    {count:4d}  {status:10} {code}")
        print(f"failed/errored without code: {len(no_code)}")
        print(f"job duration s (created -> finished): p50 {spans[len(spans) // 2]:.1f}, "
              f"max {spans[-1]:.1f} (bound {bound}s, {len(late)} over)" if spans else
              "job durations: none finished")
        print(f"attempts per job           : {dict(sorted(attempts.items()))}")
        print(f"emulator                   : submit attempts {stats['submit_attempts']['total']}, "
              f"accepted {stats['submits']['total']}; faults drawn on accepted requests "
              f"{dict(drawn)}")
        print("last request's fault -> final status, code:")
        for (fault, status, code), count in sorted(crossing.items()):
            print(f"    {count:4d}  {fault:15} -> {status:10} {code}")
        print(f"ledger                     : {ledger}")
        for problem in ledger_problems[:10]:
            print(f"    {problem}")
        print_tracebacks(stack)
        if not all_done:
            report_stuck(stack, ids)
            failures.append("jobs not terminal by the deadline")
        if len(ids) < jobs:
            failures.append(f"{jobs - len(ids)} POST(s) never accepted")
        if no_code:
            failures.append(f"{len(no_code)} failed/errored job(s) without an error code")
        if late:
            failures.append(f"{len(late)} job(s) took longer than {bound}s")
        if statuses["cancelled"]:
            failures.append(f"{statuses['cancelled']} job(s) cancelled (nobody cancelled)")
        if ledger_problems:
            failures.append(f"{len(ledger_problems)} ledger/result problem(s)")
        if stack.exits:
            failures.append(f"{len(stack.exits)} unexpected process exit(s)")
    return verdict("faults", failures, began)


# --- children and main -----------------------------------------------------------------------

def child_setup() -> None:
    django_setup()
    from django.conf import settings

    _, key = bench_user("drill")
    layer = str(settings.CHANNEL_LAYERS["default"]["BACKEND"]).rsplit(".", 1)[-1]
    print(json.dumps({"key": key, "layer": layer}))


DRILLS: dict[str, Callable[[argparse.Namespace], bool]] = {
    "kill": drill_kill, "redis": drill_redis, "postgres": drill_postgres, "faults": drill_faults}


class Watchdog(Exception):
    """The whole drill ran past its hard limit (a step hung): cleanup runs, FAIL."""


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child-setup":
        child_setup()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("drill", choices=[*DRILLS, "all"])
    parser.add_argument("--jobs", type=int, default=0,
                        help="jobs per drill (default: kill 200, redis 40, postgres 100, "
                             "faults 100)")
    parser.add_argument("--channel-layer", choices=("pubsub", "core"), default="",
                        help="redis: BRENIA_CHANNEL_LAYER for daphne and the worker "
                             "(default: Brenia's own default)")
    parser.add_argument("--breaker-failures", type=int, default=0,
                        help="faults: BRENIA_BREAKER_FAILURES (default: Brenia's own, 5)")
    parser.add_argument("--deadline", type=float, default=180.0,
                        help="seconds after setup by which every job must be terminal")
    args = parser.parse_args()
    raise_nofile()

    def watchdog(signum: int, frame: Any) -> None:
        raise Watchdog(f"drill still running {args.deadline + 240:.0f}s after it started")

    signal.signal(signal.SIGALRM, watchdog)
    results: dict[str, str] = {}
    began = time.monotonic()
    for name in DRILLS if args.drill == "all" else [args.drill]:
        started = time.monotonic()
        signal.alarm(int(args.deadline + 240))
        try:
            ok = DRILLS[name](args)
        except (DrillFailed, Watchdog, RuntimeError, subprocess.SubprocessError) as exc:
            print(f"FAIL {name} ({time.monotonic() - started:.0f}s): the drill could not run: "
                  f"{exc.__class__.__name__}: {exc}")
            report(f"fault drill: {name}", f"could not run: {exc.__class__.__name__}",
                   TARGETS[name], False)
            ok = False
        finally:
            signal.alarm(0)
        results[name] = f"{'PASS' if ok else 'FAIL'} in {time.monotonic() - started:.0f}s"
    print(f"\n== summary ({time.monotonic() - began:.0f}s): "
          + ", ".join(f"{k} {v}" for k, v in results.items()))
    sys.exit(0 if all(v.startswith("PASS") for v in results.values()) else 1)


if __name__ == "__main__":
    main()
