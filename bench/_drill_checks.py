"""What the fault drills check of a finished run (every job terminal, no double submit,
the ledger balanced), how they report it, and their targets.

Used by ``bench/drills.py``, whose docstring says what each drill does.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _drill_stack import TERMINAL, Stack, Submitter, log
from _report import result as report


def wait_terminal(stack: Stack, ids: list[str], deadline: float, *,
                  tick: Callable[[float, Counter[str]], None] | None = None,
                  every: float = 5.0) -> bool:
    """Wait until every job in ``ids`` is terminal, or the deadline; True if all are."""
    last_print = 0.0
    while True:
        stack.supervise()
        rows = stack.query("SELECT status, count(*) FROM generation_job WHERE id = ANY(%s::uuid[]) "
                           "GROUP BY status", ids)
        counts = Counter(dict(rows))
        now = time.monotonic()
        ended = sum(counts[s] for s in TERMINAL)
        if tick is not None:
            tick(now, counts)
        if now - last_print >= every or ended == len(ids):
            log(stack.t0, f"jobs: {dict(sorted(counts.items()))} ({ended}/{len(ids)} terminal)")
            last_print = now
        if ended == len(ids):
            return True
        if now > deadline:
            return False
        time.sleep(1.0)


def report_stuck(stack: Stack, ids: list[str], limit: int = 15) -> None:
    rows = stack.query(
        "SELECT j.id, j.status, j.provider_request_id, "
        "extract(epoch FROM now() - j.updated_at)::int, "
        "(SELECT count(*) FROM generation_jobattempt a WHERE a.job_id = j.id), "
        "(SELECT string_agg('#' || p.id || ' ' || p.status::text || '@' "
        "  || coalesce(p.worker_id::text, '-') || ' tries ' || p.attempts, ', ' ORDER BY p.id) "
        " FROM procrastinate_jobs p WHERE p.args->>'job_id' = j.id::text) "
        "FROM generation_job j WHERE j.id = ANY(%s::uuid[]) AND j.status <> ALL(%s) "
        "ORDER BY j.updated_at", ids, list(TERMINAL))
    print(f"STUCK: {len(rows)} job(s) not terminal by the deadline:")
    for job_id, status, request_id, idle, attempts, queue in rows[:limit]:
        print(f"    {job_id} {status:11} request {request_id or '-':36} idle {idle}s, "
              f"{attempts} attempt(s), task rows [{queue or 'none'}]")
    workers = stack.query("SELECT id, extract(epoch FROM now() - last_heartbeat)::int "
                          "FROM procrastinate_workers ORDER BY id")
    print(f"    procrastinate workers (id, seconds since heartbeat): {workers}")


def emulator_requests(stack: Stack) -> list[dict[str, Any]]:
    import httpx

    reply = httpx.get(f"{stack.fal_url}/_emulator/requests", timeout=30)
    reply.raise_for_status()
    items: list[dict[str, Any]] = reply.json()["requests"]
    return items


# How long after fal accepts a submit its request id is surely committed (the lag
# submit_lag measures is p50 0.02 s, max 0.34 s, on this machine under the drill).
CUT_WINDOW = 1.0


def check_submits(stack: Stack, sub: Submitter, worker_kills: list[float]
                  ) -> tuple[int, int, list[str]]:
    """(double-submitted jobs, submits cut by a kill, notes). Per job, the emulator's
    accepted submits of its prompt; a re-attach is no submit, so more than one is a
    double submit.

    One kind is apart: fal has no idempotency key, so a worker killed after fal
    accepted a submit and before the request id was committed leaves no trace of that
    request, and the next run must submit again (or lose the job). Such a job (two
    submits; the first never recorded; a worker kill -9 within CUT_WINDOW after it;
    the second after the kill) is counted as cut, not as a double submit."""
    requests = emulator_requests(stack)
    by_prompt: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in requests:
        by_prompt[item.get("prompt") or ""].append(item)
    known = {row[0] for row in stack.query(
        "SELECT provider_request_id FROM generation_jobattempt WHERE provider_request_id <> '' "
        "UNION SELECT provider_request_id FROM generation_job WHERE provider_request_id <> ''")}
    doubles = cut = 0
    notes: list[str] = []
    for index, prompt in sorted(sub.prompts.items()):
        items = sorted(by_prompt.get(prompt, []), key=lambda r: r["created"])
        if len(items) <= 1:
            continue
        parts = []
        for item in items:
            recorded = "recorded" if item["request_id"] in known else "NEVER RECORDED in the DB"
            parts.append(f"{item['request_id'][:8]} at {item['created'] - stack.wall0:.1f}s "
                         f"({item['status']}, {recorded})")
        first, last = (item["created"] - stack.wall0 for item in (items[0], items[-1]))
        kill = next((k for k in worker_kills if first <= k <= first + CUT_WINDOW), None)
        if (len(items) == 2 and items[0]["request_id"] not in known and kill is not None
                and last > kill):
            cut += 1
            why = (f" -- cut: fal accepted the first {kill - first:.2f}s before the "
                   f"worker's kill -9 at {kill:.1f}s, before its id was committed")
        else:
            doubles += 1
            why = ""
        notes.append(f"job #{index}: {len(items)} submits: " + "; ".join(parts) + why)
    return doubles, cut, notes


def submit_lag(stack: Stack, sub: Submitter) -> str:
    """How long after fal accepted a job's (only) submit its request id was committed
    (job.submitted_at): the window in which a kill -9 makes the next run submit again."""
    created = {item.get("prompt") or "": item["created"] for item in emulator_requests(stack)
               if item.get("prompt")}
    counts = Counter(item.get("prompt") for item in emulator_requests(stack))
    rows = stack.query("SELECT inputs->>'prompt', extract(epoch FROM submitted_at) "
                       "FROM generation_job WHERE submitted_at IS NOT NULL")
    lags = sorted(float(at) - created[prompt] for prompt, at in rows
                  if prompt in created and counts[prompt] == 1)
    if not lags:
        return "no single-submit job to measure"
    return (f"p50 {lags[len(lags) // 2]:.2f}s, p95 {lags[int(len(lags) * 0.95)]:.2f}s, "
            f"max {lags[-1]:.2f}s over {len(lags)} jobs")


def task_rows(stack: Stack) -> dict[int, int]:
    """How many procrastinate run_job rows each job has (rows -> jobs): more than one
    means a recovery pass deferred a second run while the first was still there."""
    rows = stack.query("SELECT n, count(*) FROM (SELECT count(*) AS n FROM procrastinate_jobs "
                       "WHERE task_name = 'generation.run_job' GROUP BY args->>'job_id') per "
                       "GROUP BY n ORDER BY n")
    return {int(n): int(jobs) for n, jobs in rows}


def event_counts(stack: Stack, ids: list[str]) -> dict[str, int]:
    return dict(stack.query("SELECT type, count(*) FROM generation_jobevent "
                            "WHERE job_id = ANY(%s::uuid[]) GROUP BY type ORDER BY 2 DESC", ids))


def check_ledger(stack: Stack, ids: list[str]) -> tuple[dict[str, int], list[str]]:
    rows = stack.query(
        "SELECT j.id, j.status, j.cost, "
        "count(*) FILTER (WHERE l.kind = 'hold'), count(*) FILTER (WHERE l.kind = 'settle'), "
        "count(*) FILTER (WHERE l.kind = 'release'), "
        "max(l.amount) FILTER (WHERE l.kind = 'settle'), "
        "(SELECT count(*) FROM generation_image i WHERE i.job_id = j.id), "
        "(SELECT count(*) FROM generation_jobevent e WHERE e.job_id = j.id "
        " AND e.type IN ('completed', 'failed', 'cancelled')) "
        "FROM generation_job j LEFT JOIN billing_ledgerentry l ON l.job_id = j.id "
        "WHERE j.id = ANY(%s::uuid[]) GROUP BY j.id, j.status, j.cost", ids)
    figures = Counter[str]()
    problems = []
    for job_id, status, cost, holds, settles, releases, settled, images, ends in rows:
        figures["holds"] += holds
        figures["settles"] += settles
        figures["releases"] += releases
        if settles > 1 or releases > 1 or (settles and releases):
            figures["double_charges"] += 1
            problems.append(f"{job_id}: {settles} settle(s), {releases} release(s)")
        if status in TERMINAL and holds and not (settles or releases):
            figures["open_holds_terminal"] += 1
            problems.append(f"{job_id} {status}: hold never closed")
        if status == "completed" and (settles != 1 or settled != cost):
            figures["bad_settles"] += 1
            problems.append(f"{job_id}: completed, cost {cost}, {settles} settle(s) of {settled}")
        if status in ("failed", "errored", "cancelled") and settles:
            figures["charged_failures"] += 1
            problems.append(f"{job_id} {status}: settled (charged) although it failed")
        if status == "completed" and images != 1:
            figures["bad_images"] += 1
            problems.append(f"{job_id}: completed with {images} image rows")
        if status in TERMINAL and ends != 1:
            figures["bad_terminal_events"] += 1
            problems.append(f"{job_id}: {ends} terminal events")
    return dict(figures), problems


# What each drill must show, as docs/benchmarks.md states the target.
TARGETS = {
    "kill": "kill -9 daphne and the worker: every job terminal, 0 lost, 0 double submits, "
            "0 double charges",
    "redis": "restart Redis: live updates resume, every client catches up",
    "postgres": "drop every database connection: jobs resume, none lost",
    "faults": "30% provider faults: every job ends with a clear reason, none stuck",
}


def verdict(name: str, failures: list[str], began: float, note: str = "") -> bool:
    """Print and report the drill's outcome; ``note`` is said beside a pass."""
    took = time.monotonic() - began
    if failures:
        print(f"FAIL {name} ({took:.0f}s): " + "; ".join(failures))
    else:
        print(f"PASS {name} ({took:.0f}s)" + (f": {note}" if note else ""))
    report(f"fault drill: {name}", "; ".join(failures) if failures else
           "passed" + (f" ({note})" if note else ""), TARGETS[name], not failures)
    return not failures


def run_failures(stack: Stack, ids: list[str], jobs: int, *, all_done: bool, terminal: int,
                 made: int, completed: int, doubles: int, codes: str = "") -> list[str]:
    """What the kill and postgres drills both refuse: stuck or never-accepted jobs,
    jobs made twice for one key, jobs that did not complete, double submits."""
    failures: list[str] = []
    print_tracebacks(stack)
    if not all_done:
        report_stuck(stack, ids)
        failures.append(f"{len(ids) - terminal} job(s) not terminal by the deadline")
    if len(ids) < jobs:
        failures.append(f"{jobs - len(ids)} POST(s) never accepted")
    if made != jobs:
        failures.append(f"{made} jobs made for {jobs} idempotency keys")
    if completed != jobs:
        failures.append(f"{jobs - completed} job(s) did not complete{codes}")
    if doubles:
        failures.append(f"{doubles} job(s) submitted to fal more than once")
    return failures


def print_tracebacks(stack: Stack) -> None:
    finals = stack.log_tracebacks()
    print(f"tracebacks in child logs: {sum(finals.values())}")
    for final, count in sorted(finals.items(), key=lambda kv: -kv[1])[:8]:
        print(f"    {count:4d} x {final}")
