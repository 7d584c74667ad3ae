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
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import (
    PG_ADMIN,
    ROOT,
    TempDatabase,
    bench_user,
    brenia_env,
    daphne_command,
    django_setup,
    free_port,
    keep_log,
    manage,
    manage_command,
    raise_nofile,
    redis_cleanup,
    run_child,
    start_fal_emulator,
    stop_process,
    wait_http,
)
from _report import result as report

THIS = Path(__file__).resolve()
MODEL = "flux-schnell"
TERMINAL = ("completed", "failed", "errored", "cancelled")
ACTIVE = ("queued", "submitted", "in_progress")


class DrillFailed(Exception):
    """A step of the drill itself could not be done (not a finding about Brenia)."""


def log(t0: float, message: str) -> None:
    print(f"[{time.monotonic() - t0:6.1f}s] {message}", flush=True)


# --- the stack: database, emulator, daphne(s), worker(s) ------------------------------------

class Stack:
    """One drill's scale-out deployment; ``close()`` stops and removes all of it."""

    def __init__(self, name: str, *, emulator: dict[str, Any], extra: dict[str, str],
                 redis_url: str = "") -> None:
        self.name = name
        self.t0 = time.monotonic()
        self.tag = f"{os.getpid()}_{name}"
        self.prefix = f"brenia-drill-{os.getpid()}-{name}"
        self.tmpdir = tempfile.TemporaryDirectory(prefix=f"brenia-drill-{name}-")
        self.tmp = Path(self.tmpdir.name)
        self.db: TempDatabase | None = None
        self.emulator: subprocess.Popen[bytes] | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.started: Counter[str] = Counter()
        self.exits: list[str] = []  # processes found dead that the drill did not kill
        self.killed: set[int] = set()
        self.supervising = threading.Lock()
        self.redis_url = redis_url
        self.port = free_port()
        self.key = ""
        self.layer = ""
        self.fal_url = ""
        self.env: dict[str, str] = {}
        self.wall0 = time.time()  # the emulator stamps requests in wall-clock time
        self._emulator_config = emulator
        self._extra = extra

    def open(self) -> None:
        self.emulator, self.fal_url = start_fal_emulator(self._emulator_config,
                                                         self.tmp / "emulator.log")
        self.db = TempDatabase(f"brenia_drill_{self.tag}")
        extra = {
            "BRENIA_SHUTDOWN_GRACE": "0",
            # Short, so a killed worker's tasks come back soon, but not so short that a
            # live worker busy with 200 jobs on a loaded machine misses it by a late
            # heartbeat (3 s did: its own running tasks were retried under it).
            "BRENIA_STALLED_WORKER_TIMEOUT": "10",
            "BRENIA_RECOVERY_INTERVAL": "1",
            "BRENIA_RESULT_CACHE_SECONDS": "0",
            "BRENIA_BUDGET_EMAILS": "0",
            "BRENIA_WORKER_CONCURRENCY": "300",
            "BRENIA_METRICS_DIR": str(self.tmp / "metrics"),
            **self._extra,
        }
        if self.redis_url:
            extra["REDIS_URL"] = self.redis_url
        self.env = brenia_env(tmp=self.tmp, fal_url=self.fal_url, database_url=self.db.url,
                              redis_prefix=self.prefix, jobs="procrastinate", poll=0.5,
                              extra=extra)
        began = time.monotonic()
        manage(["migrate", "--noinput"], self.env, timeout=180)
        setup = run_child(THIS, ["child-setup"], self.env, timeout=60)
        self.key = setup["key"]
        self.layer = setup["layer"]
        log(self.t0, f"stack ready: database {self.db.name}, channel layer {self.layer}, "
                     f"Redis prefix {self.prefix}"
                     f"{' at ' + self.redis_url if self.redis_url else ''}, fal emulator "
                     f"{self.fal_url} {self._emulator_config} "
                     f"(setup {time.monotonic() - began:.1f}s)")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, role: str, argv: list[str]) -> subprocess.Popen[bytes]:
        self.started[role] += 1
        name = f"{role}-{self.started[role]}"
        path = self.tmp / f"{name}.log"
        self.logs[name] = path
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=path.open("ab"),
                                stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start_daphne(self, timeout: float = 40) -> subprocess.Popen[bytes]:
        proc = self._spawn("daphne", daphne_command(
            ["-b", "127.0.0.1", "-p", str(self.port), "brenia.asgi:application"], self.env))
        deadline = time.monotonic() + timeout
        while True:  # the port of a killed daphne may take a moment to be free again
            try:
                wait_http(f"{self.base}/healthz", proc,
                          timeout=max(1.0, deadline - time.monotonic()))
                return proc
            except RuntimeError:
                if time.monotonic() > deadline or proc.poll() is None:
                    raise
                proc = self._spawn("daphne", daphne_command(
                    ["-b", "127.0.0.1", "-p", str(self.port), "brenia.asgi:application"],
                    self.env))

    def start_worker(self) -> subprocess.Popen[bytes]:
        return self._spawn("worker", manage_command(["worker"], self.env))

    def current(self, role: str) -> subprocess.Popen[bytes] | None:
        name = f"{role}-{self.started[role]}"
        return self.procs.get(name)

    def kill9(self, role: str) -> int:
        proc = self.current(role)
        if proc is None or proc.poll() is not None:
            raise DrillFailed(f"no live {role} to kill")
        self.killed.add(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        return proc.pid

    def supervise(self) -> None:
        """Restart a daphne or worker that exited on its own, as systemd would; note it."""
        with self.supervising:
            self._supervise()

    def _supervise(self) -> None:
        for role in ("daphne", "worker"):
            proc = self.current(role)
            if proc is None or proc.poll() is None or proc.pid in self.killed:
                continue
            self.killed.add(proc.pid)
            self.exits.append(f"{role}-{self.started[role]} (pid {proc.pid}) exited with "
                              f"{proc.returncode} at t={time.monotonic() - self.t0:.1f}s")
            log(self.t0, f"!! {self.exits[-1]}; restarting it")
            if role == "daphne":
                with contextlib.suppress(RuntimeError):
                    self.start_daphne()
            else:
                self.start_worker()

    def query(self, sql: str, *params: Any, tries: int = 5) -> list[tuple[Any, ...]]:
        """The drill's own reads; retried, since the postgres drill cuts connections."""
        assert self.db is not None
        for attempt in range(tries):
            try:
                return self.db.query(sql, *params)
            except Exception:
                if attempt == tries - 1:
                    raise
                time.sleep(0.3)
        raise AssertionError("unreachable")

    def status_counts(self) -> Counter[str]:
        return Counter(dict(self.query("SELECT status, count(*) FROM generation_job "
                                       "WHERE model_id IS NOT NULL GROUP BY status")))

    def log_tracebacks(self) -> dict[str, int]:
        """Distinct final lines of the tracebacks in every child log, with counts."""
        finals: Counter[str] = Counter()
        for path in self.logs.values():
            if not path.exists():
                continue
            lines = path.read_text(errors="replace").splitlines()
            for index, line in enumerate(lines):
                if line.startswith("Traceback"):
                    for follow in lines[index + 1:]:
                        if follow and not follow.startswith((" ", "Traceback", "During",
                                                             "The above")):
                            finals[f"{path.stem}: {follow[:150]}"] += 1
                            break
        return dict(finals)

    def close(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is None:
                if name.startswith("worker"):
                    proc.kill()  # in-flight jobs would otherwise be cancelled one by one
                    proc.wait(timeout=10)
                else:
                    stop_process(proc, timeout=10)
        for path in [*self.logs.values(), self.tmp / "emulator.log"]:
            keep_log(path)
        stop_process(self.emulator)
        notes = []
        if self.db is not None:
            with contextlib.suppress(Exception):
                self.db.drop()
                notes.append(f"dropped {self.db.name}")
        if not self.redis_url:
            with contextlib.suppress(Exception):
                notes.append(f"deleted {redis_cleanup(self.prefix)} Redis keys under "
                             f"{self.prefix}")
        self.tmpdir.cleanup()
        log(self.t0, "cleanup: stopped every child process; " + "; ".join(notes))


class PrivateRedis:
    """A redis-server of the drill's own, on a free port, without persistence."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DrillFailed(f"redis-server exited: {self.log_path.read_text()[-500:]}")
            done = subprocess.run(["redis-cli", "-p", str(self.port), "ping"],
                                  capture_output=True, text=True, timeout=5)
            if done.stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        raise DrillFailed(f"redis-server on port {self.port} did not answer in {timeout}s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=5)


async def supervised(stack: Stack, work: Any) -> Any:
    """Await ``work`` while restarting (and noting) any daphne/worker that exits."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.to_thread(stack.supervise)
        await asyncio.wait([task], timeout=0.5)
    return task.result()


# --- the API client ------------------------------------------------------------------------

class Submitter:
    """POSTs jobs with an Idempotency-Key each, retrying a POST a fault cut off."""

    def __init__(self, stack: Stack, tag: str) -> None:
        self.stack = stack
        self.tag = tag
        self.ids: dict[int, str] = {}  # job index -> job id
        self.prompts: dict[int, str] = {}
        self.replies: Counter[str] = Counter()  # "202", "200", "500", "ConnectError" …
        self.retried = 0
        self.gave_up: list[int] = []

    def prompt(self, index: int) -> str:
        return f"drill {self.tag} job #{index:04d}#"

    async def submit_all(self, count: int, rate: float, deadline: float,
                         parallel: int = 10) -> None:
        import httpx

        gate = asyncio.Semaphore(parallel)
        began = time.monotonic()
        async with httpx.AsyncClient(base_url=self.stack.base, timeout=15.0, headers={
                "Authorization": f"Bearer {self.stack.key}"}) as http:
            async def one(index: int) -> None:
                delay = began + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                async with gate:
                    await self._post(http, index, deadline)

            await asyncio.gather(*(one(i) for i in range(count)))

    async def _post(self, http: Any, index: int, deadline: float) -> None:
        prompt = self.prompt(index)
        self.prompts[index] = prompt
        body = {"model": MODEL, "inputs": {"prompt": prompt},
                "options": {"width": 256, "height": 256}}
        headers = {"Idempotency-Key": f"drill-{self.tag}-{index}"}
        first = True
        while time.monotonic() < deadline:
            if not first:
                self.retried += 1
                await asyncio.sleep(0.3)
            first = False
            try:
                response = await http.post("/api/images/generate", json=body, headers=headers)
            except Exception as exc:  # the process behind it died: retry, same key
                self.replies[exc.__class__.__name__] += 1
                continue
            self.replies[str(response.status_code)] += 1
            if response.status_code in (200, 202):
                self.ids[index] = response.json()["id"]
                return
            if response.status_code < 500 and response.status_code not in (408, 429):
                raise DrillFailed(f"POST answered {response.status_code}: "
                                  f"{response.text[:300]}")
        self.gave_up.append(index)


# --- waiting and checking -------------------------------------------------------------------

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


@contextlib.contextmanager
def stack_of(name: str, **kwargs: Any) -> Iterator[Stack]:
    stack = Stack(name, **kwargs)
    try:
        stack.open()
        yield stack
    finally:
        stack.close()


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


# --- drill: redis --------------------------------------------------------------------------

class Follower:
    """A WebSocket client on the user's stream that reconnects and catches up."""

    def __init__(self, base: str, key: str, t0: float) -> None:
        self.base = base
        self.key = key
        self.t0 = t0
        self.seen: dict[str, int] = {}  # job id -> last seq seen
        self.state: dict[str, str] = {}  # job id -> last status seen
        self.live: list[tuple[float, dict[str, Any]]] = []
        self.caught_up: list[tuple[float, dict[str, Any]]] = []
        self.snapshots = 0
        self.connects = 0
        self.disconnects: list[str] = []
        self.connect_errors: Counter[str] = Counter()
        self.gaps = 0
        self.ws: Any = None
        self.sending: set[asyncio.Future[None]] = set()
        self.stop = asyncio.Event()

    def track(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            self.seen.setdefault(job_id, 0)

    async def run(self) -> None:
        from websockets.asyncio.client import connect

        while not self.stop.is_set():
            try:
                async with connect(f"{self.base}/ws/jobs/",
                                   origin=self.base.replace("ws://", "http://"),  # type: ignore[arg-type]
                                   additional_headers={"Authorization": f"Bearer {self.key}"},
                                   open_timeout=5, ping_interval=2, ping_timeout=5,
                                   max_queue=None) as ws:
                    self.ws = ws
                    first = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if first.get("type") != "snapshot":
                        raise RuntimeError(f"first message {first}")
                    self.connects += 1
                    for state in first.get("jobs", []):
                        self._snapshot(state["id"], state)
                    # Resume every known job from the last event this client saw.
                    catching = set(self.seen)
                    for job_id in list(self.seen):
                        await ws.send(json.dumps({"action": "subscribe", "job": job_id,
                                                  "after": self.seen[job_id]}))
                    async for raw in ws:
                        self._receive(json.loads(raw), catching)
                    self.disconnects.append(f"closed {ws.close_code} at "
                                            f"{time.monotonic() - self.t0:.1f}s")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                name = f"{exc.__class__.__name__}: {str(exc)[:80]}"
                if self.ws is not None:
                    self.disconnects.append(f"{name} at {time.monotonic() - self.t0:.1f}s")
                else:
                    self.connect_errors[name] += 1
            self.ws = None
            if not self.stop.is_set():
                await asyncio.sleep(0.5)

    def _send(self, message: dict[str, Any]) -> None:
        if self.ws is not None:
            task = asyncio.ensure_future(self.ws.send(json.dumps(message)))
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)

    def _snapshot(self, job_id: str, state: dict[str, Any]) -> None:
        self.snapshots += 1
        if job_id in self.seen and state["last_event_seq"] >= self.seen[job_id]:
            self.seen[job_id] = state["last_event_seq"]
            self.state[job_id] = state["status"]

    def _receive(self, message: dict[str, Any], catching: set[str]) -> None:
        kind = message.get("type")
        job_id = message.get("job_id", "")
        if kind == "snapshot" and job_id:
            catching.discard(job_id)
            self._snapshot(job_id, message["job"])
            return
        if kind in ("snapshot", "pong", "error") or not job_id or job_id not in self.seen:
            return
        seq = int(message.get("seq", 0))
        if seq <= self.seen[job_id]:
            return
        if seq != self.seen[job_id] + 1 and job_id not in catching:
            # Events were lost (sequence numbers are gap-free): catch up from the last
            # one seen; the replay brings this one too, then a snapshot.
            self.gaps += 1
            catching.add(job_id)
            self._send({"action": "subscribe", "job": job_id, "after": self.seen[job_id]})
            return
        self.seen[job_id] = seq
        if message.get("status"):
            self.state[job_id] = str(message["status"])
        elif kind in ("completed", "failed", "cancelled"):
            self.state[job_id] = kind
        (self.caught_up if job_id in catching else self.live).append(
            (time.monotonic() - self.t0, message))


def drill_redis(args: argparse.Namespace) -> bool:
    began = time.monotonic()
    jobs = args.jobs or 40
    print(f"\n== drill redis: {jobs} jobs followed over /ws/jobs/; a private redis-server is "
          f"SIGKILLed mid-run and a fresh one started ==")
    failures: list[str] = []
    logdir = Path(tempfile.mkdtemp(prefix="brenia-drill-redis-"))
    redis = PrivateRedis(logdir / "redis.log")
    try:
        redis.start()
        emulator = {"latency": "fast", "runners": jobs + 10, "inference_s": 8.0,
                    "dispatch_s": 0.3}
        extra = {"BRENIA_JOB_TIMEOUT": "120"}
        if args.channel_layer:
            extra["BRENIA_CHANNEL_LAYER"] = args.channel_layer
        with stack_of("redis", emulator=emulator, extra=extra, redis_url=redis.url) as stack:
            stack.start_daphne()
            stack.start_worker()
            deadline = time.monotonic() + args.deadline
            result = asyncio.run(supervised(stack, redis_phase(stack, redis, jobs, deadline)))
            print("-- redis: figures --")
            for line in result["lines"]:
                print(line)
            if stack.exits:
                print(f"unexpected exits           : {stack.exits}")
            print_tracebacks(stack)
            if result["stuck"]:
                report_stuck(stack, result["ids"])
            failures.extend(result["failures"])
            if stack.exits:
                failures.append(f"{len(stack.exits)} unexpected process exit(s)")
    finally:
        redis.stop()
        keep_log(redis.log_path)
        with contextlib.suppress(OSError):
            (logdir / "redis.log").unlink()
            logdir.rmdir()
    return verdict("redis", failures, began)


async def redis_phase(stack: Stack, redis: PrivateRedis, jobs: int,
                      deadline: float) -> dict[str, Any]:
    import httpx

    follower = Follower(stack.base.replace("http://", "ws://"), stack.key, stack.t0)
    reader = asyncio.create_task(follower.run())
    while follower.connects == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    sub = Submitter(stack, uuid.uuid4().hex[:8])
    # Jobs are POSTed over ~10 s, so some start before, some during, some after the outage.
    rate = jobs / 10.0
    posting = asyncio.create_task(sub.submit_all(jobs, rate, deadline))

    async def track() -> None:
        while not posting.done():
            follower.track(list(sub.ids.values()))
            await asyncio.sleep(0.2)
        follower.track(list(sub.ids.values()))

    tracking = asyncio.create_task(track())
    wait_until = time.monotonic() + 10.0  # some live events first, as a baseline
    while len(follower.live) < 10 and time.monotonic() < wait_until:
        await asyncio.sleep(0.1)
    before = len(follower.live)
    redis.kill()
    down_at = time.monotonic() - stack.t0
    log(stack.t0, f"redis-server SIGKILLed ({before} live events so far, {len(sub.ids)} jobs "
                  f"POSTed)")
    await asyncio.sleep(3.0)
    await asyncio.to_thread(redis.start)
    up_at = time.monotonic() - stack.t0
    log(stack.t0, f"fresh redis-server up on port {redis.port} (outage {up_at - down_at:.1f}s)")
    await posting
    await tracking
    ids = list(sub.ids.values())
    stuck = not await asyncio.to_thread(wait_terminal, stack, ids, deadline)
    # Let the socket deliver the last events (and a reconnect catch up) for a moment.
    settle_by = min(deadline + 15, time.monotonic() + 15)
    async with httpx.AsyncClient(base_url=stack.base, timeout=15.0, headers={
            "Authorization": f"Bearer {stack.key}"}) as http:
        finals: dict[str, dict[str, Any]] = {}
        while True:
            for job_id in ids:
                with contextlib.suppress(Exception):
                    reply = await http.get(f"/api/jobs/{job_id}")
                    if reply.status_code == 200:
                        finals[job_id] = reply.json()
            matching = [j for j in ids if j in finals
                        and follower.state.get(j) == finals[j]["status"]
                        and follower.seen.get(j) == finals[j]["last_event_seq"]]
            if len(matching) == len(ids) or time.monotonic() > settle_by:
                break
            await asyncio.sleep(1.0)
    follower.stop.set()
    reader.cancel()
    with contextlib.suppress(BaseException):
        await reader
    live_after = [e for t, e in follower.live if t > up_at]
    types_after = Counter(e.get("type") for e in live_after)
    statuses = Counter(f["status"] for f in finals.values())
    codes = Counter(f["error"]["code"] for f in finals.values() if f.get("error"))
    mismatched = [j for j in ids if j not in matching]
    lines = [
        f"outage                     : redis down at {down_at:.1f}s, fresh one up at "
        f"{up_at:.1f}s",
        f"jobs terminal / total      : {sum(statuses[s] for s in TERMINAL)}/{jobs} "
        f"{dict(statuses)}; error codes {dict(codes)}",
        f"POST replies               : {dict(sub.replies)} ({sub.retried} retries)",
        f"socket connects            : {follower.connects} (disconnects: "
        f"{follower.disconnects[:6]}; failed connects: {dict(follower.connect_errors)})",
        f"live events                : {len(follower.live)} in all, {len(live_after)} after "
        f"the restart {dict(types_after)}",
        f"caught up on reconnect     : {len(follower.caught_up)} missed events replayed, "
        f"{follower.snapshots} snapshots; seq gaps seen live {follower.gaps} (each "
        "answered by a re-subscribe with after=<last seen seq>)",
        f"socket's last state == API : {len(matching)}/{len(ids)} jobs (status and "
        f"last_event_seq)",
    ]
    for job_id in mismatched[:8]:
        final = finals.get(job_id, {})
        lines.append(f"    {job_id}: socket saw {follower.state.get(job_id)}#"
                     f"{follower.seen.get(job_id)}, API says {final.get('status')}#"
                     f"{final.get('last_event_seq')}")
    failures = []
    if stuck:
        failures.append("jobs not terminal by the deadline")
    if len(ids) < jobs:
        failures.append(f"{jobs - len(ids)} POST(s) never accepted")
    if not live_after:
        failures.append("no live update after the Redis restart")
    if mismatched:
        failures.append(f"{len(mismatched)} job(s) whose last state on the socket differs "
                        "from the API's")
    not_completed = jobs - statuses["completed"]
    if not_completed:
        failures.append(f"{not_completed} job(s) did not complete "
                        f"(codes {dict(codes)}): the Redis outage failed them")
    return {"lines": lines, "failures": failures, "ids": ids, "stuck": stuck}


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
